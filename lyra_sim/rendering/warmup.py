"""Compile the CPU renderer's kernels ahead of the first render: at install time (``make`` runs
``python -m lyra_sim.rendering.warmup``) or in the background while a scene is prepared.

numba compiles the kernels once per environment and keeps them in its cache (``__pycache__`` beside the
package, or ``NUMBA_CACHE_DIR``); a process that finds them there loads them in well under a second. Two small
renders, exact and with a level of detail, compile every kernel the no-gradient path uses (one camera and
batches go through the same kernels).
"""

from __future__ import annotations

import threading
import time

import torch

from lyra_sim.camera import Camera
from lyra_sim.world import GaussianWorld


def _tiny_world() -> GaussianWorld:
    """A few hundred Gaussians in front of the identity camera (enough for a coarse level of detail)."""
    g = torch.Generator().manual_seed(0)
    n = 600
    means = torch.rand(n, 3, generator=g) * torch.tensor([2.0, 2.0, 1.0]) + torch.tensor([-1.0, -1.0, 2.0])
    return GaussianWorld(means, torch.randn(n, 4, generator=g), torch.full((n, 3), 0.02),
                         torch.full((n,), 0.8), torch.rand(n, 1, 3, generator=g))


def compile_cpu_renderer(background: bool = False) -> threading.Thread | None:
    """Compile (or load from numba's cache) the CPU renderer's no-gradient kernels; with ``background`` on a daemon
    thread, returned (renders started meanwhile wait for the kernel they need, they never compile it twice)."""
    if background:
        thread = threading.Thread(target=compile_cpu_renderer, name="lyra-compile", daemon=True)
        thread.start()
        return thread
    from lyra_sim.rendering import render

    camera = Camera.from_fov(32, 24, 60.0)
    with torch.no_grad():
        for lod in (None, 1.0):  # the exact and the level-of-detail projection kernels
            render(_tiny_world(), camera, backend="cpu", lod=lod)
    return None


if __name__ == "__main__":
    start = time.perf_counter()
    compile_cpu_renderer()
    print(f"CPU renderer ready ({time.perf_counter() - start:.1f} s)")
