"""USD export of a 2M-Gaussian world (SH degree 3): time and file size, float vs half, .usdc and .usdz.

    python benchmarks/bench_usd.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import platform
import tempfile
import time
from pathlib import Path

import torch
from results import write_section

from lyra_sim import GaussianWorld
from usd_exporters import export_world, import_world

COUNT = 2_000_000


def big_world(n: int = COUNT, sh_degree: int = 3) -> GaussianWorld:
    g = torch.Generator().manual_seed(0)
    return GaussianWorld(
        means=torch.randn(n, 3, generator=g) * 5, quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.05 + 0.001, opacities=torch.rand(n, generator=g),
        sh=torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3, frame="z_up", meters_per_unit=1.0,
    )


def main() -> None:
    world = big_world()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".usdc", ".usdz"):
            for half in (False, True):
                path = Path(tmp) / f"world_{'half' if half else 'float'}{suffix}"
                t0 = time.perf_counter()
                export_world(world, path, half=half)
                export_s = time.perf_counter() - t0
                t0 = time.perf_counter()
                back = import_world(path)
                import_s = time.perf_counter() - t0
                assert len(back) == COUNT
                size = path.stat().st_size / 2**20
                rows.append((suffix, "half" if half else "float", export_s, import_s, size))
                print(f"{suffix} {'half' if half else 'float'}: export {export_s:.2f} s, import {import_s:.2f} s, "
                      f"{size:.0f} MiB")
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} by "
        "`python benchmarks/bench_usd.py`: a random world of 2,000,000 Gaussians with SH degree 3",
        "(16 coefficients each), written by `usd_exporters.export_world` and read back by `import_world`.",
        "",
        "| file | precision | export | import | size |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {s} | {p} | {e:.2f} s | {i:.2f} s | {m:.0f} MiB |" for s, p, e, i, m in rows]
    write_section("USD export, 2M Gaussians", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
