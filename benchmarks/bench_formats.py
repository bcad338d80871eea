"""World file formats on a 1M-Gaussian world (SH degree 3): size, write and read time, and what the
quantised formats lose (centre error relative to the scene extent, DC colour error; the Gaussians are
matched by nearest centre because compressed PLY reorders them, so the 99th percentile is reported: the
largest values include the odd mismatched pair of close neighbours).

    python benchmarks/bench_formats.py        # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch
from results import write_section
from scipy.spatial import cKDTree

from lyra_sim import GaussianWorld
from lyra_sim.io import load_world, save_world

COUNT = 1_000_000
CASES = [  # (label, file name, save options)
    ("PLY (INRIA)", "w.ply", {}),
    ("native safetensors", "w.safetensors", {}),
    ("compressed PLY (SuperSplat)", "w.compressed.ply", {}),
    ("SPZ v3 (gzip)", "w.spz", {}),
    ("SPZ v4 (zstd)", "w4.spz", {"version": 4}),
]


def big_world(n: int = COUNT) -> GaussianWorld:
    g = torch.Generator().manual_seed(0)
    sh = torch.randn(n, 16, 3, generator=g) * 0.3
    sh[:, 1:] = sh[:, 1:].clamp(-0.9, 0.9)  # inside every format's SH range
    return GaussianWorld(
        means=torch.randn(n, 3, generator=g) * 5, quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.05 + 0.001, opacities=torch.rand(n, generator=g), sh=sh,
    )


def main() -> None:
    world = big_world()
    extent = float((world.means.max(0).values - world.means.min(0).values).max())
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, name, options in CASES:
            path = Path(tmp) / name
            t0 = time.perf_counter()
            save_world(world, path, **options)
            write_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            back = load_world(path)
            read_s = time.perf_counter() - t0
            distance, index = cKDTree(back.means.numpy()).query(world.means.numpy())
            rgb_error = float(torch.quantile((back.rgb[torch.from_numpy(index)] - world.rgb).abs().amax(1), 0.99))
            size = path.stat().st_size
            rows.append((label, size, write_s, read_s, float(torch.quantile(torch.from_numpy(distance), 0.99)) / extent,
                         rgb_error))
            print(f"{label}: {size / 2**20:.1f} MiB ({size / COUNT:.1f} B/Gaussian), write {write_s:.2f} s, "
                  f"read {read_s:.2f} s, centre error {rows[-1][4]:.1e} of extent, rgb error {rgb_error:.4f}")
    body = [
        f"{COUNT:,} random Gaussians, SH degree 3, on {platform.processor() or platform.machine()} "
        f"({datetime.date.today()}); `python benchmarks/bench_formats.py`. Errors (99th percentile over "
        "Gaussians matched by nearest centre): centre distance over the scene extent, view-independent RGB "
        "difference (0..1). Times include gsply's numba "
        "compilation on a first run (cached afterwards).",
        "",
        "| format | size | bytes/Gaussian | write | read | centre error | RGB error |",
        "|---|---|---|---|---|---|---|",
    ]
    body += [f"| {label} | {size / 2**20:.1f} MiB | {size / COUNT:.1f} | {w:.2f} s | {r:.2f} s | {pos:.1e} | "
             f"{rgb:.4f} |" for label, size, w, r, pos, rgb in rows]
    print(f"wrote {write_section('World file formats, 1M Gaussians', chr(10).join(body))}")


if __name__ == "__main__":
    main()
