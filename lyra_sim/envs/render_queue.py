"""Robot cameras of one vector-env step, rendered in batches.

PyBullet holds the GIL while it steps; the rasterizer's kernels release it. So a batch queued by the first
robots can be drawn on a worker thread while the main thread steps the next robots' physics (``group`` smaller
than the robot count). While the physics runs the worker renders on ONE numba thread: beside a render on both
cores' threads (the first version) 4 robots' physics, which every later camera waits for, took 1.6-2.0x its time
alone, beside a one-thread render 1.05-1.5x (measured on a loaded 2-core machine, medians of interleaved repeats).
At ``finish`` the calling thread takes back the batches the worker has not started, and the cameras still to
render are split between a batch queued behind the worker's running one and a render here on the remaining
threads (all of them when the worker is idle), so that both cores end together instead of one waiting for the
other's queue. While renders are in flight the interpreter's switch interval is shortened
(``SWITCH_INTERVAL_S``): the worker needs the GIL for a moment between its kernels, and the physics thread would
otherwise keep it for up to the default 5 ms each time. Every queue of the process shares ONE worker thread, and
renders are in flight only between ``begin`` and ``finish`` or ``discard``.
"""

from __future__ import annotations

import math
import sys
from concurrent.futures import Future

import numba
import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import DEFAULT_BACKGROUND, render
from lyra_sim.thread_pools import ProcessThreadPool

#: The process's one render thread (created on first use; idle threads end with the interpreter).
_RENDER_WORKER = ProcessThreadPool(lambda: 1, "lyra-render")
#: The interpreter's switch interval while a queue's renders are in flight (Python's default: 5 ms).
SWITCH_INTERVAL_S = 2e-4


def _images(world, camera: Camera, threads: int, lod: float | None) -> tuple[np.ndarray, np.ndarray]:
    """RGB uint8 (B,H,W,3) and depth float32 (B,H,W,1) of a camera batch, as ``NavigateEnv._camera_images``."""
    numba.set_num_threads(threads)  # per thread, and queues sharing the worker may want different counts
    with torch.no_grad():  # grad mode is per thread: set it in the worker
        result = render(world, camera, background=DEFAULT_BACKGROUND, lod=lod)
    return result.sensor_images()


class RenderQueue:
    """Queue robot cameras (intrinsics ``K``, ``size`` = (width, height)); every ``group`` cameras of one world
    (None: all the cameras of a step) go to the worker as one batched render. ``threads``: the numba threads of
    the renders on the calling thread; ``lod``: the level of detail of the renders (``lyra_sim.render``)."""

    def __init__(self, K: torch.Tensor, size: tuple[int, int], group: int | None, threads: int,
                 lod: float | None = None):
        if group is not None and (int(group) != group or group < 1):
            raise ValueError(f"render_group: expected a positive integer or None, got {group!r}")
        self.K, self.size, self.group, self.threads, self.lod = K, size, group, threads, lod
        self._collecting = False
        self._waiting: list[tuple[object, np.ndarray]] = []  # (key, world_to_cam) not yet submitted
        self._world = None
        self._submitted: list[tuple[object, list, Future]] = []  # (world, entries, future) in queue order
        self._switch_interval: float | None = None  # the interpreter's own, while renders are in flight

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
            self._submit(self._world, self._take_waiting())
        self._world = world
        self._waiting.append((key, world_to_cam))
        if self.group is not None and len(self._waiting) >= self.group:
            self._submit(self._world, self._take_waiting())

    def _take_waiting(self) -> list[tuple[object, np.ndarray]]:
        entries, self._waiting = self._waiting, []
        return entries

    def _camera(self, entries: list[tuple[object, np.ndarray]]) -> Camera:
        # One Camera per batch: its checks (many small torch ops) run once per batch, not once per robot.
        return Camera(self.K, torch.from_numpy(np.stack([pose for _, pose in entries])).float(), *self.size)

    def _submit(self, world, entries: list[tuple[object, np.ndarray]], threads: int = 1) -> None:
        """Queue a batch on the worker (``threads`` numba threads: one while the physics runs beside it)."""
        if self._switch_interval is None:
            self._switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(min(self._switch_interval, SWITCH_INTERVAL_S))
        future = _RENDER_WORKER.get().submit(_images, world, self._camera(entries), threads, self.lod)
        self._submitted.append((world, entries, future))

    def _render_here(self, world, entries: list[tuple[object, np.ndarray]], threads: int) -> None:
        future = Future()
        future.set_result(_images(world, self._camera(entries), threads, self.lod))
        self._submitted.append((world, entries, future))

    def finish(self) -> list[tuple[object, np.ndarray, np.ndarray]]:
        """Render what is still waiting and wait for every render: (key, rgb, depth) per queued camera."""
        self._collecting = False
        try:
            # (world, entries) still to render, in queue order: the batches the worker has not started, then the
            # waiting cameras
            rest = [(world, entries) for world, entries, future in self._submitted if future.cancel()]
            self._submitted = [batch for batch in self._submitted if not batch[2].cancelled()]
            if self._waiting:
                rest.append((self._world, self._take_waiting()))
            rest = _merged(rest)
            running = [len(entries) for _, entries, future in self._submitted if not future.done()]
            for world, entries in rest:
                if running and self.threads > 1 and len(entries) > 1:
                    # both threads end together if the worker's running batch is half done: of the N cameras
                    # left it takes (N - running / 2) / 2, this thread the others
                    share = min(len(entries) - 1, math.ceil((len(entries) - running[0] / 2) / 2))
                    if share > 0:
                        self._submit(world, entries[:share])
                    self._render_here(world, entries[share:], self.threads - 1)
                else:
                    self._render_here(world, entries, self.threads)
        except BaseException:
            self.discard()  # waits for the renders in flight
            raise
        submitted, self._submitted = self._submitted, []
        done = []
        try:
            for _, entries, future in submitted:
                rgb, depth = future.result()
                done += [(key, rgb[b], depth[b]) for b, (key, _) in enumerate(entries)]
        finally:
            self._restore_switch_interval()
        return done

    def discard(self) -> None:
        """Drop queued cameras and wait for renders in flight (so none runs when the caller renders itself)."""
        self._collecting = False
        self._waiting = []
        submitted, self._submitted = self._submitted, []
        for _, _, future in submitted:
            if not future.cancel():
                future.exception()  # waits; the error of a dropped render concerns nobody
        self._restore_switch_interval()

    def _restore_switch_interval(self) -> None:
        if self._switch_interval is not None:
            sys.setswitchinterval(self._switch_interval)
            self._switch_interval = None


def _merged(batches: list[tuple[object, list]]) -> list[tuple[object, list]]:
    """Consecutive (world, entries) batches of the same world joined into one."""
    merged: list[tuple[object, list]] = []
    for world, entries in batches:
        if merged and merged[-1][0] is world:
            merged[-1] = (world, merged[-1][1] + entries)
        else:
            merged.append((world, list(entries)))
    return merged
