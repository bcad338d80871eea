"""Simulation speed of LyraSim/Navigate-v0 on the bundled RGB-D example: scene preparation and env steps,
one env per camera size, then 8 robots at 64x48: NavigateVectorEnv (one process, one batched render per
step) beside gymnasium's SyncVectorEnv of single envs, interleaved in one run (< 3 min).

    python benchmarks/bench_env.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import os
import platform
import time
from functools import partial

import gymnasium
import numpy as np
import torch
from results import write_section

from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import ENV_ID
from lyra_sim.envs.navigate import CONTROL_DT, NavigateEnv
from lyra_sim.envs.scene import prepare_scene
from lyra_sim.envs.vector import NavigateVectorEnv
from lyra_sim.generate.images import load_depth, load_intrinsics, load_rgb

DATA = EXAMPLE_DIR


ROBOTS, VECTOR_STEPS = 8, 100


def vector_steps_per_second(scene) -> dict[str, tuple[float, float]]:
    """Env steps per second (all robots together) and CPU milliseconds per env step for two vector envs."""
    make = partial(gymnasium.make, ENV_ID, source=scene, image_size=(64, 48), max_steps=200)
    envs = {
        "NavigateVectorEnv (`make_env(..., num_envs=8)`)": NavigateVectorEnv(scene, ROBOTS, image_size=(64, 48),
                                                                             max_steps=200),
        "SyncVectorEnv of 8 NavigateEnv": gymnasium.vector.SyncVectorEnv([make] * ROBOTS),
    }
    rng = np.random.default_rng(0)
    wall, cpu = dict.fromkeys(envs, 0.0), dict.fromkeys(envs, 0.0)
    for env in envs.values():
        env.reset(seed=0)
        env.step(np.zeros((ROBOTS, 2), np.float32))  # warm-up
    for _ in range(VECTOR_STEPS // 10):
        for name, env in envs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(10):
                env.step(rng.uniform(-1, 1, (ROBOTS, 2)).astype(np.float32))
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    physics = envs["NavigateVectorEnv (`make_env(..., num_envs=8)`)"].envs
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(VECTOR_STEPS // 4):
        for env in physics:  # the lower bound: PyBullet alone (0.1 s at 240 Hz per step), no camera, no Python env
            env.bullet.drive(0.2, 0.1, CONTROL_DT)
    physics_wall, physics_cpu = time.perf_counter() - t0, time.process_time() - c0
    for env in envs.values():
        env.close()
    steps = ROBOTS * VECTOR_STEPS
    result = {name: (steps / wall[name], 1000 * cpu[name] / steps) for name in envs}
    physics_steps = ROBOTS * (VECTOR_STEPS // 4)
    result["lower bound: PyBullet steps alone"] = (physics_steps / physics_wall, 1000 * physics_cpu / physics_steps)
    for name, (rate, ms) in result.items():
        print(f"{name}: {rate:.0f} env steps/s, {ms:.2f} CPU ms per env step")
    return result


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
    vector = vector_steps_per_second(scene)
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
    lines += [
        "",
        f"{ROBOTS} robots, 64x48 RGB-D, random actions (autoreset), {VECTOR_STEPS} vector steps each, the two "
        f"interleaved in blocks of 10 steps (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs: other "
        "engineers shared the machine, so compare the rows with each other; CPU ms are less load-sensitive):",
        "",
        "| vector env | env steps/s in total (target >= 400) | CPU ms per env step |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {rate:.0f} | {cpu:.2f} |" for name, (rate, cpu) in vector.items()]
    write_section("Navigate-v0 simulation speed, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
