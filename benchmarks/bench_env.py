"""Simulation speed of LyraSim/Navigate-v0 on the bundled RGB-D example: scene preparation and env steps.

    python benchmarks/bench_env.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import platform
import time

import numpy as np
import torch
from results import write_section

from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs.navigate import NavigateEnv
from lyra_sim.envs.scene import prepare_scene
from lyra_sim.generate.images import load_depth, load_intrinsics, load_rgb

DATA = EXAMPLE_DIR


def main() -> None:
    rgb = load_rgb(DATA / "tabletop_rgb.png")
    depth = load_depth(DATA / "tabletop_depth.png", rgb.shape[:2])
    K = load_intrinsics(DATA / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
    prepare_scene((rgb, depth), intrinsics=K)  # warm-up: numba compilation, open3d start
    t0 = time.perf_counter()
    scene = prepare_scene((rgb, depth), intrinsics=K)
    prepare_s = time.perf_counter() - t0
    rows = []
    rng = np.random.default_rng(0)
    for size in ((64, 48), (160, 120), (320, 240)):
        env = NavigateEnv(scene, image_size=size, max_steps=10_000)
        env.reset(seed=0)
        env.step(np.zeros(2))
        steps, t0 = 0, time.perf_counter()
        while steps < 200:
            _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=2))
            steps += 1
            if terminated or truncated:
                env.reset(seed=steps)
        seconds = (time.perf_counter() - t0) / steps
        env.close()
        rows.append((size, seconds))
        print(f"{size[0]}x{size[1]}: {1000 * seconds:.1f} ms per step ({1 / seconds:.0f} steps/s)")
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, by `python benchmarks/bench_env.py`: the bundled RGB-D",
        f"example ({len(scene.world):,} Gaussians). `prepare_scene` (generate, align, render 72 proxy views,",
        f"TSDF, clean, free-space map): {prepare_s:.2f} s, {len(scene.proxies[0].faces):,} proxy triangles.",
        "One env step = 0.1 s of PyBullet at 240 Hz + one Gaussian render of the robot camera (RGB + depth);",
        "random actions, resets included, 200 steps.",
        "",
        "| robot camera | per step | steps/s |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {w}x{h} | {1000 * s:.1f} ms | {1 / s:.0f} |" for (w, h), s in rows]
    write_section("Navigate-v0 simulation speed, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
