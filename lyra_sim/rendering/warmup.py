"""Compile the CPU renderer's kernels ahead of the first render: at install time (``make`` runs
``python -m lyra_sim.rendering.warmup``) or in the background while a scene is prepared.

numba compiles the kernels once per environment and keeps them in its cache (``__pycache__`` beside the
package, or ``NUMBA_CACHE_DIR``); a process that finds them there loads them in well under a second. The kernels
fall in three groups, each compiled by tiny calls of the real code paths (so they get exactly the argument types a
render gives them): ``exact`` (a render without a level of detail: projection, band split, composite), ``lod``
(the level-of-detail projection) and ``median`` (the collision proxies' median depth).

The groups compile in worker processes (``python -m lyra_sim.rendering.warmup --group NAME``), not in threads of
the caller: numba compiles under one process-wide lock and mostly in Python (measured: 60 % of a first render's
compile CPU outside LLVM), so a compile thread would hold the GIL and the lock while the caller generates a world,
and a ``fork`` taken meanwhile would give the child a held lock. The caller keeps no lock and no thread that its
renders depend on: a render that needs a group still in flight waits for its worker (``wait_for``), then loads
the kernels from the cache. A forked child forgets the workers (they are not its children) and compiles on
demand, as without a background compile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from lyra_sim.camera import Camera
from lyra_sim.world import GaussianWorld

#: The line a worker prints when a group is in the cache.
_READY = "lyra_sim-compiled"
#: Seconds, on the 2-core reference machine, from the start of the background compile until each group is in the
#: cache (benchmarks/RESULTS.md, "First use"): what the progress line announces.
BACKGROUND_SECONDS = 14


def _tiny_world() -> GaussianWorld:
    """A few hundred Gaussians in front of the identity camera (enough for a coarse level of detail)."""
    g = torch.Generator().manual_seed(0)
    n = 600
    means = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([-1.0, -1.0, 2.0])
    return GaussianWorld(means, torch.randn(n, 4, generator=g), torch.full((n, 3), 0.02),
                         torch.full((n,), 0.8), torch.rand(n, 1, 3, generator=g))


def _tiny_camera() -> Camera:
    return Camera.from_fov(32, 24, 60.0)


def _compile_exact() -> None:
    """A render without a level of detail: ``project_chunks``, ``balanced_bands`` and ``composite`` (one camera
    and a batch call the same kernels)."""
    from lyra_sim.rendering import render

    with torch.no_grad():
        render(_tiny_world(), _tiny_camera(), backend="cpu")


def _compile_lod() -> None:
    """The level-of-detail projection ``project_chunks_lod`` alone (its composite is the exact group's)."""
    from lyra_sim.rendering import cpu
    from lyra_sim.rendering.index import scene_index

    camera = _tiny_camera()
    cpu._Projected(scene_index(_tiny_world()), cpu._Views(camera), camera.width, camera.height, 0.01, 1e10, 0.3,
                   lod_px=1.0)


def _compile_median() -> None:
    """The median depth of the collision proxies: ``depth_sort``, ``gather_sorted``, ``bin_tiles``,
    ``raster_median`` (and ``project_chunks``, from the cache when the exact group got there first)."""
    from lyra_sim.rendering.cpu import median_depth_cpu

    median_depth_cpu(_tiny_world(), _tiny_camera(), 0.01, 1e10, 0.3)


#: The kernel groups, in the order a scene's preparation first needs them (the world's colour fit renders, the
#: collider renders median depth, the start views are scored with a level of detail).
GROUPS: dict[str, Callable[[], None]] = {"exact": _compile_exact, "median": _compile_median, "lod": _compile_lod}


def worker_groups(cores: int | None = None) -> tuple[tuple[str, ...], ...]:
    """The groups of each worker process on a machine of ``cores`` (default: this one's). Up to 2 cores: one worker
    with every group, the caller keeps the other core (two workers on a busy 2-core machine took 40 s CPU and 104 s
    wall for what one process compiled in 22 s CPU and 52 s wall). Else the exact group (most of the compile: its
    composite alone ~8 s CPU) apart from the others."""
    cores = cores or os.cpu_count() or 1
    return (tuple(GROUPS),) if cores <= 2 else (("exact",), ("median", "lod"))


def compile_groups(names: Iterable[str], report: Callable[[str], None] | None = None) -> None:
    """Compile (or load from numba's cache) the groups ``names`` in this process, in order; ``report(name)`` after
    each."""
    for name in names:
        GROUPS[name]()
        if report is not None:
            report(name)


class BackgroundCompile:
    """Worker processes compiling groups of kernels into numba's cache; one thread per worker reads which groups
    are done. ``wait(group)`` returns once that group is in the cache or its worker has ended (whatever its exit
    status: a render then compiles what is missing itself)."""

    def __init__(self, workers: tuple[tuple[str, ...], ...]):
        self._done = {name: threading.Event() for group in workers for name in group}
        self.processes: list[subprocess.Popen] = []
        package_root = str(Path(__file__).resolve().parents[2])  # the workers compile this very lyra_sim
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "NUMBA_NUM_THREADS": "1", "PYTHONPATH": path}
        for group in workers:
            process = subprocess.Popen([sys.executable, "-m", "lyra_sim.rendering.warmup", "--worker", *group],
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                       env=env, text=True)
            self.processes.append(process)
            threading.Thread(target=self._follow, args=(process, group), name="lyra-compile-worker",
                             daemon=True).start()

    def _follow(self, process: subprocess.Popen, group: tuple[str, ...]) -> None:
        for line in process.stdout:
            word, _, name = line.strip().partition(" ")
            if word == _READY and name in self._done:
                self._done[name].set()
        process.wait()
        for name in group:
            self._done[name].set()

    def wait(self, group: str) -> None:
        """Block until ``group`` (a key of GROUPS) is compiled or its worker has ended; at once for a group this
        compile does not make."""
        event = self._done.get(group)
        if event is not None:
            event.wait()

    def join(self) -> None:
        """Wait for every worker to end."""
        for process in self.processes:
            process.wait()
        for event in self._done.values():  # set by the readers once they have seen the end of their worker's output
            event.wait()


_background: BackgroundCompile | None = None
_background_lock = threading.Lock()


def _forget_background() -> None:  # a forked child: the workers are not its children, their reader threads gone
    global _background, _background_lock
    _background, _background_lock = None, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_background)


def _cold_groups() -> list[str]:
    """The groups whose entry kernels numba has neither compiled in this process nor cached."""
    from lyra_sim.rendering import cpu
    from lyra_sim.rendering import cpu_kernels as k

    entry = {"exact": (k.project_chunks, k.balanced_bands, k.composite), "lod": (k.project_chunks_lod,),
             "median": (k.depth_sort, k.gather_sorted, k.bin_tiles, k.raster_median)}
    return [name for name, kernels in entry.items() if not all(cpu._compiled_or_cached(kernel) for kernel in kernels)]


def wait_for(group: str) -> None:
    """Before a render that needs ``group``: wait for this process's background compile of it, if one runs."""
    background = _background
    if background is not None:
        background.wait(group)


def compile_cpu_renderer(background: bool = False) -> BackgroundCompile | None:
    """Compile (or load from numba's cache) every kernel a render without gradients uses.

    ``background``: start worker processes for the groups not yet cached and return at once (their handle; None
    when everything is cached or a background compile already runs); this process's renders wait for the groups they
    need. Otherwise compile in this process."""
    global _background
    if not background:
        compile_groups(GROUPS)
        return None
    with _background_lock:
        if _background is not None:
            return None
        cold = _cold_groups()
        if not cold:
            return None
        workers = tuple(group for group in (tuple(n for n in w if n in cold) for w in worker_groups()) if group)
        print(f"lyra_sim: compiling the CPU renderer in the background, once: ~{BACKGROUND_SECONDS} s "
              "(numba keeps it in its cache)", file=sys.stderr, flush=True)
        try:
            _background = BackgroundCompile(workers)
        except OSError:  # no interpreter to start (a frozen app): renders compile what they need themselves
            return None
        return _background


def _worker(groups: list[str]) -> None:
    """A worker process: compile ``groups``, printing ``lyra_sim-compiled NAME`` after each."""
    compile_groups(groups, lambda name: print(_READY, name, flush=True))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m lyra_sim.rendering.warmup",
                                     description="Compile the CPU renderer's kernels into numba's cache.")
    parser.add_argument("--worker", nargs="+", choices=sorted(GROUPS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args.worker)
        return
    start = time.perf_counter()
    # worker processes only where they run side by side; on up to 2 cores one process compiling everything costs less
    handle = compile_cpu_renderer(background=True) if len(worker_groups()) > 1 else None
    if handle is not None:
        handle.join()
        failed = [p.returncode for p in handle.processes if p.returncode]
        if failed:
            sys.exit(f"lyra_sim: compiling the CPU renderer failed (worker exit status {failed})")
    compile_cpu_renderer()  # load what the workers cached (and compile here what they could not)
    print(f"CPU renderer ready ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
