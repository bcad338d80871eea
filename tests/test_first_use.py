"""First use in a fresh environment: the background compile (lyra_sim.rendering.warmup) in worker processes."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import cpu_kernels, render, warmup
from lyra_sim.rendering.cpu import median_depth_cpu

ROOT = Path(__file__).resolve().parents[1]
ENTRY_KERNELS = ("project_chunks", "project_chunks_lod", "composite", "balanced_bands", "depth_sort", "gather_sorted",
                 "bin_tiles", "raster_median")

FORK_WHILE_COMPILING = textwrap.dedent("""
    import json, os, signal, sys
    import numpy as np, torch
    from numba import njit
    from lyra_sim.rendering import cpu_kernels, render, warmup

    out = sys.argv[1]
    world, camera = warmup._tiny_world(), warmup._tiny_camera()
    handle = warmup.compile_cpu_renderer(background=True)
    handle.wait("exact")  # the first group is in the cache, the workers still compile the others
    assert any(p.poll() is None for p in handle.processes), "a worker should still be compiling"
    pid = os.fork()
    if pid == 0:  # the child: its parent's workers are not its children and no lock is held for it
        signal.alarm(900)  # a deadlock ends the child (and fails the test) instead of hanging it
        twice = njit(lambda x: 2 * x)  # takes numba's compiler lock
        with torch.no_grad():
            image = render(world, camera, backend="cpu").rgb.numpy()
        np.save(os.path.join(out, "child.npy"), image)
        os._exit(0 if twice(21) == 42 else 3)
    _, status = os.waitpid(pid, 0)
    handle.join()
    codes = [p.returncode for p in handle.processes]
    with torch.no_grad():
        exact = render(world, camera, backend="cpu").rgb.numpy()
        lod = render(world, camera, backend="cpu", lod=1.0).rgb.numpy()
    misses = sum(cpu_kernels.composite.stats.cache_misses.values())
    hits = sum(cpu_kernels.composite.stats.cache_hits.values())
    np.save(os.path.join(out, "parent.npy"), exact)
    np.save(os.path.join(out, "parent_lod.npy"), lod)
    print("RESULT", json.dumps({"child": os.waitstatus_to_exitcode(status), "workers": codes, "hits": hits,
                                "misses": misses}))
""")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_fork_during_the_background_compile_renders_and_the_parent_loads_what_the_workers_compiled(tmp_path):
    """A fresh environment (empty numba cache): the process forks while the background compile's workers still
    compile (the exact group already cached, so the child loads it rather than compiling it again); the child
    compiles a function of its own (numba's compiler lock) and renders (no deadlock, no wait for workers it does
    not own), the parent's renders load the workers' kernels from the cache (numba counts a cache hit, no miss) and
    every image equals the one this process renders with its own kernels (the foreground path)."""
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", FORK_WHILE_COMPILING, str(tmp_path)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.split("RESULT", 1)[1])
    assert result["child"] == 0 and result["workers"] == [0] * len(warmup.worker_groups()), result
    assert result["hits"] >= 1 and result["misses"] == 0  # composite came from the workers' cache, not compiled here
    world, camera = warmup._tiny_world(), warmup._tiny_camera()
    with torch.no_grad():
        foreground = render(world, camera, backend="cpu").rgb.numpy()
        foreground_lod = render(world, camera, backend="cpu", lod=1.0).rgb.numpy()
    assert foreground.std() > 0.05  # a picture, not a blank
    np.testing.assert_array_equal(np.load(tmp_path / "child.npy"), foreground)
    np.testing.assert_array_equal(np.load(tmp_path / "parent.npy"), foreground)
    np.testing.assert_array_equal(np.load(tmp_path / "parent_lod.npy"), foreground_lod)


def test_the_warmup_groups_compile_the_signatures_renders_use():
    """The warmup's tiny calls and real renders of every kind (one camera, a batch, a level of detail, median depth)
    leave one specialisation of each entry kernel: the groups compile what a render needs, nothing else."""
    warmup.compile_groups(warmup.GROUPS)
    world = warmup._tiny_world()
    single = Camera.look_at([0, 0, 0], [0, 0, 3.0], width=40, height=30)
    batch = Camera.look_at([[0, 0, 0], [0.2, 0, 0]], [[0, 0, 3.0], [0, 0.5, 3.0]], width=40, height=30)
    with torch.no_grad():
        for camera in (single, batch):
            for lod in (None, 1.0):
                render(world, camera, backend="cpu", lod=lod)
        median_depth_cpu(world, batch, 0.01, 1e10, 0.3)
    for name in ENTRY_KERNELS:
        assert len(getattr(cpu_kernels, name).signatures) == 1, name


def test_no_background_compile_when_the_cache_has_every_kernel(monkeypatch):
    """A warm environment starts no worker process; a render with none running does not wait."""
    warmup.compile_groups(warmup.GROUPS)  # every group compiled in this process
    monkeypatch.setattr(warmup, "_background", None)
    assert warmup._cold_groups() == []
    assert warmup.compile_cpu_renderer(background=True) is None
    warmup.wait_for("exact")  # returns at once


def test_a_failed_worker_releases_the_renders_waiting_for_it():
    """A worker that dies (here: an unknown group makes argparse exit 2) ends the wait of every group it had; the
    renders then compile what they need themselves."""
    handle = warmup.BackgroundCompile((("exact", "no-such-group"),))
    handle.wait("exact")
    handle.join()
    assert [p.returncode for p in handle.processes] == [2]
