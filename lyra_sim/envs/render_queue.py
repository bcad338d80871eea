"""Robot cameras of one vector-env step, rendered in batches.

PyBullet holds the GIL while it steps; the rasterizer's kernels release it. So a batch queued by the first
robots can be drawn on a worker thread while the main thread steps the next robots' physics (``group`` smaller
than the robot count); the cameras still waiting at ``finish`` render on the calling thread (no hand-over to a
worker and back: on a busy machine each costs a wait for the scheduler). Every queue of the process shares ONE
worker thread, and renders are in flight only between ``begin`` and ``finish`` or ``discard``.
"""

from __future__ import annotations

from concurrent.futures import Future

import numba
import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import DEFAULT_BACKGROUND, render
from lyra_sim.thread_pools import ProcessThreadPool

#: The process's one render thread (created on first use; idle threads end with the interpreter).
_RENDER_WORKER = ProcessThreadPool(lambda: 1, "lyra-render")


def _images(world, camera: Camera, threads: int, lod: float | None) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (B,H,W,3) and depth float32 (B,H,W,1) of a camera batch, as ``NavigateEnv._camera_images``."""
    numba.set_num_threads(threads)  # per thread, and queues sharing the worker may want different counts
    with torch.no_grad():  # grad mode is per thread: set it in the worker
        result = render(world, camera, background=DEFAULT_BACKGROUND, lod=lod)
    return result.sensor_images()


class RenderQueue:
    """Queue robot cameras (intrinsics ``K``, ``size`` = (width, height)); every ``group`` cameras of one world
    (None: all the cameras of a step) go to the worker as one batched render. ``threads``: the worker's numba
    threads; ``lod``: the level of detail of the renders (``lyra_sim.render``)."""

    def __init__(self, K: torch.Tensor, size: tuple[int, int], group: int | None, threads: int,
                 lod: float | None = None):
        if group is not None and (int(group) != group or group < 1):
            raise ValueError(f"render_group: expected a positive integer or None, got {group!r}")
        self.K, self.size, self.group, self.threads, self.lod = K, size, group, threads, lod
        self._collecting = False
        self._waiting: list[tuple[object, np.ndarray]] = []  # (key, world_to_cam) not yet submitted
        self._world = None
        self._submitted: list[tuple[list, Future]] = []

    def begin(self) -> None:
        """Start collecting the cameras of one reset or step (dropping anything left from an interrupted one)."""
        self.discard()
        self._collecting = True

    def add(self, key, world, world_to_cam: np.ndarray) -> None:
        """Queue one camera (OpenCV world-to-camera (4, 4)) of ``world``; ``key`` comes back with its images.
        Outside ``begin``/``finish`` (a sub-env reset by hand) nothing is queued: its images stay blank."""
        if not self._collecting:
            return
        if self._waiting and world is not self._world:
            self._submit()
        self._world = world
        self._waiting.append((key, world_to_cam))
        if self.group is not None and len(self._waiting) >= self.group:
            self._submit()

    def _submit(self, here: bool = False) -> None:
        """Render the waiting cameras on the worker, or ``here`` on the calling thread."""
        entries, self._waiting = self._waiting, []
        # One Camera per batch: its checks (many small torch ops) run once per batch, not once per robot.
        poses = torch.from_numpy(np.stack([pose for _, pose in entries])).float()
        camera = Camera(self.K, poses, *self.size)
        if here:
            future = Future()
            future.set_result(_images(self._world, camera, self.threads, self.lod))
        else:
            future = _RENDER_WORKER.get().submit(_images, self._world, camera, self.threads, self.lod)
        self._submitted.append(([key for key, _ in entries], future))

    def finish(self) -> list[tuple[object, np.ndarray, np.ndarray]]:
        """Render what is still waiting and wait for every render: (key, rgb, depth) per queued camera, in order."""
        self._collecting = False
        try:
            if self._waiting:
                self._submit(here=True)
        except BaseException:
            self.discard()  # waits for the renders in flight
            raise
        submitted, self._submitted = self._submitted, []
        done = []
        for keys, future in submitted:
            rgb, depth = future.result()
            done += [(key, rgb[b], depth[b]) for b, key in enumerate(keys)]
        return done

    def discard(self) -> None:
        """Drop queued cameras and wait for renders in flight (so none runs when the caller renders itself)."""
        self._collecting = False
        self._waiting = []
        submitted, self._submitted = self._submitted, []
        for _, future in submitted:
            future.exception()  # waits; the error of a dropped render concerns nobody

