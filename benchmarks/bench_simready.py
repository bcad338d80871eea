"""``lyra-sim simready`` on a 2M-Gaussian splat: seconds per stage (load, floaters, align, collider, USD, other
outputs), target <= 60 s in all on the 2-core machine.

The splat is the analytic room of ``lyra_sim.synthetic.gaussian_rooms`` (floor, four walls, a box) sampled
densely, at SH degree 3, written as an INRIA-trainer PLY in a Y-down frame with an arbitrary heading, origin
and scale (so the gravity search runs) plus 1 % faint and 1 % far isolated floaters; ``--known-size 4``.

    python benchmarks/bench_simready.py [SPACING_M]      # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import plyfile
import torch
from results import write_section

from lyra_sim import GaussianWorld
from lyra_sim.io.ply import world_to_ply_array
from lyra_sim.splat_import import SimReadyOptions, make_sim_ready
from lyra_sim.synthetic.gaussian_rooms import room_surfaces, surfels_world
from lyra_sim.world import OPENCV_TO_Z_UP

SPACING = 0.0045  # metres between surfels: ~2.05M Gaussians


def trainer_splat(spacing: float, path: Path) -> int:
    room = surfels_world(room_surfaces(), spacing=spacing).with_sh_degree(3)
    g = torch.Generator().manual_seed(0)
    room.sh[:, 1:] = torch.randn(len(room), 15, 3, generator=g) * 0.05
    n = len(room) // 100
    faint = room.subset(torch.arange(n))
    faint.opacities = torch.full((n,), 0.01)
    far = room.subset(torch.arange(n, 2 * n))
    far.means = far.means + torch.randn(n, 3, generator=g) * 20
    world = GaussianWorld.concatenate([room, faint, far])
    yaw = math.radians(30)
    spin = torch.tensor([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    trainer = world.transformed(rotation=torch.tensor(OPENCV_TO_Z_UP).T @ spin,
                                translation=torch.tensor([5.0, -1.0, 2.0]), scale=2.5)
    plyfile.PlyData([plyfile.PlyElement.describe(world_to_ply_array(trainer), "vertex")]).write(str(path))
    return len(trainer)


def main(spacing: float = SPACING) -> None:
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP")) as tmp:
        source = Path(tmp) / "point_cloud.ply"
        count = trainer_splat(spacing, source)
        print(f"{count:,} Gaussians, {source.stat().st_size / 2**20:.0f} MiB", flush=True)
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = make_sim_ready(source, Path(tmp) / "out", SimReadyOptions(known_size=4.0, progress=False))
        total, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        for note in result.notes:
            print(note)
    stages = ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items())
    print(f"total {total:.1f} s wall, {cpu:.1f} s CPU (all threads): {stages}")
    body = "\n".join([
        f"`python benchmarks/bench_simready.py`: {count:,} Gaussians at SH degree 3 (an analytic room as an "
        "INRIA-trainer PLY, Y-down, arbitrary heading/origin/scale, 2 % floaters; `--known-size 4`), on "
        f"{platform.processor() or platform.machine()} ({datetime.date.today()}, load average "
        f"{os.getloadavg()[0]:.1f} at the end: the machine is shared with other jobs).",
        "",
        "| stage | seconds (wall) |",
        "|---|---|",
        *[f"| {stage} | {seconds:.1f} |" for stage, seconds in result.timings.items()],
        f"| **total** | **{total:.1f}** wall (target <= 60); {cpu:.1f} s of CPU over all threads |",
        "",
        *[f"- {note}" for note in result.notes],
    ])
    print(f"wrote {write_section('simready on a 2M-Gaussian splat', body)}")


if __name__ == "__main__":
    main(float(sys.argv[1]) if len(sys.argv) > 1 else SPACING)
