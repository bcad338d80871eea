"""Simulation speed of LyraSim/Navigate-v0 on the bundled RGB-D example: scene preparation and env steps,
one env per camera size, then 8 robots at 64x48: NavigateVectorEnv (one batched render per step, or renders
overlapping the physics) beside gymnasium's SyncVectorEnv of single envs, interleaved in one run; the same on
a small stand-in world for a fast renderer; the lower bounds without the render and PyBullet alone (< 3 min).

    python benchmarks/bench_env.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from functools import partial
from unittest import mock

import gymnasium
import numpy as np
import torch
from results import write_section

from lyra_sim.camera import Camera
from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import ENV_ID, render_queue
from lyra_sim.envs.navigate import CONTROL_DT, NavigateEnv
from lyra_sim.envs.scene import prepare_scene
from lyra_sim.envs.vector import NavigateVectorEnv
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
from lyra_sim.rendering import DEFAULT_BACKGROUND, render

DATA = EXAMPLE_DIR


ROBOTS, VECTOR_STEPS, BLOCK = 8, 100, 10
STAND_IN_GAUSSIANS = 5_000  # a world this small renders about as fast as the renderer must for 400 steps/s
ONE_BATCH = "NavigateVectorEnv (`make_env(..., num_envs=8)`): one render of the 8 cameras after the physics"
OVERLAP_GROUP = 2
OVERLAP = (f"NavigateVectorEnv(render_group={OVERLAP_GROUP}): renders of {OVERLAP_GROUP} cameras on a worker thread "
           "during the physics, the cameras left after it split between both threads")
SYNC = "SyncVectorEnv of 8 NavigateEnv"
CAMERA_LOD = 1.25  # the coarsest level of detail whose images stay >= 30 dB from the exact ones here (1.5: 29.3 dB)
LOD = f"NavigateVectorEnv(camera_lod={CAMERA_LOD}): one batch, robot cameras with a level of detail"
CAMERA_PERIOD = 4
PERIOD = f"NavigateVectorEnv(camera_period={CAMERA_PERIOD}): cameras refreshed every {CAMERA_PERIOD}th step"
PERIOD_LOD = f"NavigateVectorEnv(camera_period={CAMERA_PERIOD}, camera_lod={CAMERA_LOD})"
OVERLAP_LOD = f"NavigateVectorEnv(render_group={OVERLAP_GROUP}, camera_lod={CAMERA_LOD})"


def _blank_images(world, camera, threads, lod=None):
    """Stands in for RenderQueue's renderer in the no-render lower bound: blank images of the right shape."""
    shape = (len(camera), camera.height, camera.width)
    return np.zeros((*shape, 3), np.uint8), np.zeros((*shape, 1), np.float32)


def _interleaved(envs: dict, rng) -> dict[str, tuple[float, float]]:
    """Env steps/s and CPU ms per env step of each vector env: the same random actions for all, in blocks
    of BLOCK steps taken in turn (autoreset included)."""
    wall, cpu = dict.fromkeys(envs, 0.0), dict.fromkeys(envs, 0.0)
    for env in envs.values():
        env.reset(seed=0)
        env.step(np.zeros((ROBOTS, 2), np.float32))  # warm-up
    for _ in range(VECTOR_STEPS // BLOCK):
        block = rng.uniform(-1, 1, (BLOCK, ROBOTS, 2)).astype(np.float32)
        for name, env in envs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for actions in block:
                env.step(actions)
            wall[name] += time.perf_counter() - t0
            cpu[name] += time.process_time() - c0
    steps = ROBOTS * VECTOR_STEPS
    return {name: (steps / wall[name], 1000 * cpu[name] / steps) for name in envs}


def _physics_alone(envs: list, rng) -> tuple[float, float]:
    """PyBullet alone (0.1 s at 240 Hz per env step, random actions), no camera and no env Python: a robot
    that touches an obstacle is put back at its start, as the env's reset would."""
    starts = [env.bullet.robot_state()[:3] for env in envs]
    wall = cpu = 0.0
    for _ in range(VECTOR_STEPS // 4):
        actions = rng.uniform(-1, 1, (ROBOTS, 2))
        t0, c0 = time.perf_counter(), time.process_time()
        for env, (forward, turn) in zip(envs, actions, strict=True):
            env.bullet.drive(forward * env.max_speed, turn * env.max_turn, CONTROL_DT)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        for env, start in zip(envs, starts, strict=True):
            if env.bullet.in_collision():
                env.bullet.set_robot_pose(*start)
    steps = ROBOTS * (VECTOR_STEPS // 4)
    return steps / wall, 1000 * cpu / steps


def _batch_render_ms(env: NavigateVectorEnv, repeats: int = 10, lod: float | None = None) -> float:
    """Wall milliseconds per camera of one batched render of the robots' current cameras (the renderer alone)."""
    first = env.robots[0]
    poses = torch.from_numpy(np.stack([e.bullet.camera_world_to_cam() for e in env.robots])).float()
    camera = Camera(first.camera_K, poses, *first.image_size)
    with torch.no_grad():
        render(first.scene.world, camera, background=DEFAULT_BACKGROUND, lod=lod)
        t0 = time.perf_counter()
        for _ in range(repeats):
            render(first.scene.world, camera, background=DEFAULT_BACKGROUND, lod=lod)
    return 1000 * (time.perf_counter() - t0) / repeats / len(camera)


def tiny_renderer_ms(env: NavigateVectorEnv, repeats: int = 10) -> dict[str, float]:
    """CPU ms per camera of PyBullet's TinyRenderer drawing each robot's view of the collision proxy at the robot
    camera's size (what a CPU user would use instead), beside our batched render exact and with CAMERA_LOD,
    interleaved."""
    import pybullet as p

    first = env.robots[0]
    w, h = first.image_size
    fy = float(first.camera_K[1, 1])
    proj = p.computeProjectionMatrixFOV(math.degrees(2 * math.atan(0.5 * h / fy)), w / h, 0.05, 50.0)
    flip = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV camera axes -> OpenGL's
    poses = [e.bullet.camera_world_to_cam() for e in env.robots]
    camera = Camera(first.camera_K, torch.from_numpy(np.stack(poses)).float(), w, h)
    # TinyRenderer draws visual shapes: the proxy's obstacle triangles and the floor as visual meshes of a client
    client = p.connect(p.DIRECT)
    vertices, faces = first.scene.proxies[0].obstacle_mesh
    mesh = p.createVisualShape(p.GEOM_MESH, vertices=vertices.astype(float).tolist(),
                               indices=faces.reshape(-1).astype(int).tolist(), physicsClientId=client)
    p.createMultiBody(0, baseVisualShapeIndex=mesh, physicsClientId=client)
    floor = p.createVisualShape(p.GEOM_BOX, halfExtents=[50, 50, 0.01], physicsClientId=client)
    p.createMultiBody(0, baseVisualShapeIndex=floor, basePosition=[0, 0, first.bullet.floor_z - 0.01],
                      physicsClientId=client)

    def tiny():
        for pose in poses:
            view = (flip @ pose).T.ravel().tolist()
            p.getCameraImage(w, h, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=client)

    fns = {"TinyRenderer, collision proxy": tiny,
           "ours, exact": lambda: render(first.scene.world, camera, background=DEFAULT_BACKGROUND),
           f"ours, camera_lod={CAMERA_LOD}": lambda: render(first.scene.world, camera, background=DEFAULT_BACKGROUND,
                                                            lod=CAMERA_LOD)}
    cpu = dict.fromkeys(fns, 0.0)
    with torch.no_grad():
        for fn in fns.values():
            fn()
        for _ in range(repeats):
            for name, fn in fns.items():
                c0 = time.process_time()
                fn()
                cpu[name] += time.process_time() - c0
    p.disconnect(client)
    return {name: 1000 * t / repeats / len(poses) for name, t in cpu.items()}


def _lod_psnr(env: NavigateVectorEnv, lod: float) -> float:
    """PSNR (dB) of the robots' current camera images with level of detail ``lod`` against the exact ones."""
    first = env.robots[0]
    poses = torch.from_numpy(np.stack([e.bullet.camera_world_to_cam() for e in env.robots])).float()
    camera = Camera(first.camera_K, poses, *first.image_size)
    with torch.no_grad():
        exact = render(first.scene.world, camera, background=DEFAULT_BACKGROUND).rgb
        coarse = render(first.scene.world, camera, background=DEFAULT_BACKGROUND, lod=lod).rgb
    return 10 * math.log10(1.0 / max(float(((exact - coarse) ** 2).mean()), 1e-12))


def vector_steps_per_second(scene) -> dict[str, dict]:
    """Env steps/s (all robots together) and CPU ms per env step: the vector envs on the bundled world and on a
    stand-in for a fast renderer (the world cut to its STAND_IN_GAUSSIANS most opaque Gaussians), the lower
    bounds (no render; PyBullet alone), and the renderer's batched time per camera."""
    rng = np.random.default_rng(0)
    options = {"image_size": (64, 48), "max_episode_steps": 200}
    make = partial(gymnasium.make, ENV_ID, source=scene, **options)
    envs = {ONE_BATCH: NavigateVectorEnv(scene, ROBOTS, **options),
            OVERLAP: NavigateVectorEnv(scene, ROBOTS, render_group=OVERLAP_GROUP, **options),
            LOD: NavigateVectorEnv(scene, ROBOTS, camera_lod=CAMERA_LOD, **options),
            OVERLAP_LOD: NavigateVectorEnv(scene, ROBOTS, render_group=OVERLAP_GROUP, camera_lod=CAMERA_LOD, **options),
            PERIOD: NavigateVectorEnv(scene, ROBOTS, camera_period=CAMERA_PERIOD, **options),
            PERIOD_LOD: NavigateVectorEnv(scene, ROBOTS, camera_period=CAMERA_PERIOD, camera_lod=CAMERA_LOD,
                                          **options),
            SYNC: gymnasium.vector.SyncVectorEnv([make] * ROBOTS)}
    results = {"bundled": _interleaved(envs, rng)}
    render_ms = {"bundled": _batch_render_ms(envs[ONE_BATCH]),
                 "bundled, level of detail": _batch_render_ms(envs[ONE_BATCH], lod=CAMERA_LOD)}
    render_ms["level of detail PSNR"] = _lod_psnr(envs[ONE_BATCH], CAMERA_LOD)
    render_ms["tiny"] = tiny_renderer_ms(envs[ONE_BATCH])
    for env in envs.values():
        env.close()
    small = dataclasses.replace(scene, world=scene.world.most_opaque(STAND_IN_GAUSSIANS))
    envs = {ONE_BATCH: NavigateVectorEnv(small, ROBOTS, **options),
            OVERLAP: NavigateVectorEnv(small, ROBOTS, render_group=OVERLAP_GROUP, **options)}
    results["stand-in"] = _interleaved(envs, rng)
    render_ms["stand-in"] = _batch_render_ms(envs[ONE_BATCH])
    with mock.patch.object(render_queue, "_images", _blank_images):
        results["lower bound"] = _interleaved({"physics + env Python, no camera render": envs[ONE_BATCH]}, rng)
    results["lower bound"]["PyBullet steps alone (random actions)"] = _physics_alone(envs[ONE_BATCH].robots, rng)
    for env in envs.values():
        env.close()
    for group, rows in results.items():
        for name, (rate, ms) in rows.items():
            print(f"{group}: {name}: {rate:.0f} env steps/s, {ms:.2f} CPU ms per env step")
    print("batched render, wall ms per camera:", {k: v if isinstance(v, dict) else round(v, 2)
                                                  for k, v in render_ms.items()})
    return {"rows": results, "render_ms": render_ms}


FIRST_RENDER = """
import time, torch
import lyra_sim
from lyra_sim.synthetic.gaussian_rooms import room_surfaces, surfels_world
world = surfels_world(room_surfaces(), spacing=0.05)
camera = lyra_sim.Camera.look_at([0.3, 0, 1.3], [3, 0, 0.4], up=(0, 0, 1), width=320, height=240)
t, c = time.perf_counter(), time.process_time()
with torch.no_grad():
    lyra_sim.render(world, camera, backend="cpu")
print(time.perf_counter() - t, time.process_time() - c)
"""
FIRST_MAKE_ENV = """
import time, numpy as np
from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import make_env
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
rgb = load_rgb(EXAMPLE_DIR / "tabletop_rgb.png")
depth = load_depth(EXAMPLE_DIR / "tabletop_depth.png", rgb.shape[:2])
K = load_intrinsics(EXAMPLE_DIR / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
t, c = time.perf_counter(), time.process_time()
env = make_env((rgb, depth), intrinsics=K, image_size=(64, 48))
env.reset(seed=0)
env.step(np.zeros(2))
print(time.perf_counter() - t, time.process_time() - c)
"""


def first_use() -> dict[str, tuple[float, float]]:
    """Wall and CPU seconds of a fresh environment's first ``render`` (320x240) and first ``make_env`` on the bundled
    example with its reset and first step, each in a new process whose numba cache is an empty folder."""
    results = {}
    for name, code in (("first render", FIRST_RENDER), ("first make_env", FIRST_MAKE_ENV)):
        with tempfile.TemporaryDirectory() as cache:
            env = {**os.environ, "NUMBA_CACHE_DIR": cache}
            out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            results[name] = tuple(float(v) for v in out.stdout.split()[-2:])
            print(f"{name}, empty numba cache: {results[name][0]:.1f} s wall, {results[name][1]:.1f} s CPU")
    return results


def main() -> None:
    rgb = load_rgb(DATA / "tabletop_rgb.png")
    depth = load_depth(DATA / "tabletop_depth.png", rgb.shape[:2])
    K = load_intrinsics(DATA / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
    prepare_scene((rgb, depth), intrinsics=K)  # warm-up: numba compilation, open3d start
    t0 = time.perf_counter()
    scene = prepare_scene((rgb, depth), intrinsics=K)
    prepare_s = time.perf_counter() - t0
    rows_single = []
    rng = np.random.default_rng(0)
    for size in ((64, 48), (160, 120), (320, 240)):
        env = NavigateEnv(scene, image_size=size)  # never truncates by itself
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
        rows_single.append((size, seconds))
        print(f"{size[0]}x{size[1]}: {1000 * seconds:.1f} ms per step ({1 / seconds:.0f} steps/s)")
    fresh = first_use()
    vector = vector_steps_per_second(scene)
    load, cpus = os.getloadavg()[0], os.cpu_count() or 1
    rows, render_ms = vector["rows"], vector["render_ms"]
    no_render_rate = rows["lower bound"]["physics + env Python, no camera render"][0]
    budget_ms = 1000 / 400 - 1000 / no_render_rate  # one-batch step: the physics and Python, then the render
    no_render_cpu = rows["lower bound"]["physics + env Python, no camera render"][1]
    budget_cpu_ms = 2 * (1000 / 400 - no_render_cpu)  # idle 2 cores: the render's CPU time is split over both
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
    lines += [f"| {w}x{h} | {1000 * s:.1f} ms | {1 / s:.0f} |" for (w, h), s in rows_single]
    shared = (": other processes shared the machine, so compare the rows of a table with each other (they were "
              "interleaved); CPU ms are less load-sensitive" if load > cpus + 1 else "")
    lines += [
        "",
        f"{ROBOTS} robots, 64x48 RGB-D, the same random actions for every env (autoreset), {VECTOR_STEPS} vector "
        f"steps each, the envs of a table interleaved in blocks of {BLOCK} steps; 1-minute load average "
        f"{load:.1f} at the end, on {cpus} CPUs{shared}.",
        "",
        "| world | vector env | env steps/s in total (target >= 400) | CPU ms per env step |",
        "| --- | --- | --- | --- |",
    ]
    worlds = {"bundled": f"bundled ({len(scene.world):,})",
              "stand-in": f"{STAND_IN_GAUSSIANS:,} most opaque (a fast renderer's stand-in)", "lower bound": "-"}
    lines += [f"| {worlds[group]} | {name} | {rate:.0f} | {cpu:.2f} |"
              for group, table in rows.items() for name, (rate, cpu) in table.items()]
    lines += [
        "",
        f"The renderer alone, one batched call of the 8 robot cameras: {render_ms['bundled']:.2f} ms per camera",
        f"on the bundled world ({render_ms['bundled, level of detail']:.2f} ms with camera_lod={CAMERA_LOD}, whose "
        f"images are {render_ms['level of detail PSNR']:.1f} dB PSNR from the exact ones),",
        f"{render_ms['stand-in']:.2f} ms on the stand-in (wall, both cores). With the default",
        "one render per step, a step costs the physics and env Python (the no-render row) plus that render, so 400",
        (f"env steps/s needs a batched render of at most {budget_ms:.2f} ms per camera at this load; on 2 idle"
         if budget_ms > 0 else "env steps/s is out of reach at this load (the no-render row is below it); on 2 idle"),
        "cores (the no-render row's CPU time as its wall time, the render's CPU time split over both) at most",
        f"{budget_cpu_ms:.2f} CPU ms per camera. PyBullet holds the GIL while it steps and numba's kernels release",
        f"it, so render_group={OVERLAP_GROUP} draws cameras on a worker thread during the other robots' physics; "
        + ", ".join(
            f"on the {group} world it ran at {table[OVERLAP][0] / table[ONE_BATCH][0]:.2f}x the one-batch env's "
            f"steps/s and {table[OVERLAP][1] / table[ONE_BATCH][1]:.2f}x its CPU"
            for group, table in rows.items() if OVERLAP in table)
        + f"; with camera_lod={CAMERA_LOD} on the bundled world "
        f"{rows['bundled'][OVERLAP_LOD][0] / rows['bundled'][LOD][0]:.2f}x the one-batch env's steps/s and "
        f"{rows['bundled'][OVERLAP_LOD][1] / rows['bundled'][LOD][1]:.2f}x its CPU.",
    ]
    lines += ["", "CPU ms per robot camera, one batch of the 8 robots' current views at 64x48, interleaved: "
              + ", ".join(f"{name} {ms:.2f}" for name, ms in render_ms["tiny"].items()) + "."]
    lines += [
        "",
        f"Camera refresh period (`camera_period`, a sensor rate): every {CAMERA_PERIOD}th step renders, the steps "
        "between repeat the last images; the table's camera_period rows are the speed of that option, the rows "
        "above it the default (every step).",
        "",
        "First use in a fresh environment (a new process, numba cache an empty folder; the renderer prints "
        "`compiling the CPU renderer, once: ~N s` and `make` compiles it at install time): first `lyra_sim.render` "
        f"(320x240) {fresh['first render'][0]:.1f} s wall / {fresh['first render'][1]:.1f} s CPU; first `make_env` "
        f"on the bundled example with its reset and first step {fresh['first make_env'][0]:.1f} s wall / "
        f"{fresh['first make_env'][1]:.1f} s CPU (targets: <= 5 s and <= 15 s).",
    ]
    write_section("Navigate-v0 simulation speed, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
