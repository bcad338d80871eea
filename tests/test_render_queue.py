"""RenderQueue's scheduling: one render thread beside the physics, the rest taken back and split at finish."""

import sys
import threading

import numpy as np

from lyra_sim.camera import Camera
from lyra_sim.envs import render_queue
from lyra_sim.envs.render_queue import RenderQueue

K = Camera.intrinsics_from_fov(8, 6, 90.0)


def _pose(key: int) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3] = key  # each camera's pose carries its key, so each image can say whose it is
    return pose


def test_finish_takes_back_unstarted_batches_and_splits_them_between_both_threads(monkeypatch):
    calls = []  # (thread is the worker, numba threads, keys)
    release = threading.Event()
    intervals = []

    def fake_images(world, camera, threads, lod):
        keys = [int(k) for k in camera.world_to_cam[:, 0, 3]]
        on_worker = threading.current_thread() is not threading.main_thread()
        calls.append((on_worker, threads, keys))
        intervals.append(sys.getswitchinterval())
        if on_worker and len(calls) == 1:
            release.wait(10)  # the first batch is still rendering when finish comes
        rgb = np.stack([np.full((6, 8, 3), k, np.uint8) for k in keys])
        return rgb, rgb[..., :1].astype(np.float32)

    monkeypatch.setattr(render_queue, "_images", fake_images)
    before = sys.getswitchinterval()
    queue = RenderQueue(K, (8, 6), group=1, threads=2)
    world = object()
    queue.begin()
    for key in range(7):
        queue.add(key, world, _pose(key))
    timer = threading.Timer(0.3, release.set)
    timer.start()
    done = queue.finish()
    timer.join()
    assert sorted(key for key, _, _ in done) == list(range(7))  # every camera once
    assert all((rgb == key).all() for key, rgb, _ in done)  # with its own images
    assert calls[0] == (True, 1, [0])  # beside the physics the worker renders on one thread
    # cameras 1-6 were taken back from the worker's queue and split: 3 behind its batch, 3 here on the other thread
    assert sorted(calls[1:]) == [(False, 1, [4, 5, 6]), (True, 1, [1, 2, 3])]
    assert max(intervals) <= render_queue.SWITCH_INTERVAL_S  # short switch interval while renders were in flight
    assert sys.getswitchinterval() == before  # and the interpreter's own afterwards


def test_an_idle_worker_leaves_the_rest_to_all_threads(monkeypatch):
    calls = []

    def fake_images(world, camera, threads, lod):
        calls.append((threading.current_thread() is not threading.main_thread(), threads, len(camera)))
        n = len(camera)
        return np.zeros((n, 6, 8, 3), np.uint8), np.zeros((n, 6, 8, 1), np.float32)

    monkeypatch.setattr(render_queue, "_images", fake_images)
    queue = RenderQueue(K, (8, 6), group=None, threads=2)
    queue.begin()
    for key in range(4):
        queue.add(key, None, _pose(key))
    assert len(queue.finish()) == 4
    assert calls == [(False, 2, 4)]  # one batch here on both threads, as without a group
