"""CPU camera benchmark: lyra_sim's Gaussian rasterizer beside PyBullet's TinyRenderer (issue 13's targets).

Scenes (pybullet's Z-up world): pybullet_data's samurai monastery. PyBullet renders the textured mesh
(samurai.urdf) with getCameraImage(ER_TINY_RENDERER); lyra_sim renders N Gaussians sampled uniformly
on the same mesh surface (flat discs along the surface normal, sized to the sampling density), or N
random Gaussians filling the same camera's view (log-scales in [-4, -2], depths 2-25 m), seen by the
same camera. Timings are interleaved in one run (TinyRenderer, ours on 2 threads, ours on 1 thread,
the pre-issue-13 renderer from tests/), so the ratios hold on a busy machine; the absolute times do not.

    python benchmarks/bench_render.py            # writes its section of benchmarks/RESULTS.md (< 3 min)
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import sys
import time
import timeit
from pathlib import Path

import numba
import numpy as np
import open3d as o3d
import pybullet_data
import torch
from PIL import Image
from results import write_section

from lyra_sim import Camera, GaussianWorld, render
from lyra_sim.camera import look_at_matrix
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.rendering import cpu as cpu_backend
from lyra_sim.rendering import cpu_kernels as kernels
from lyra_sim.rendering.index import scene_index
from lyra_sim.rendering.lod import coarse_levels
from lyra_sim.rotations import rotmat_to_quat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from previous_cpu_renderer import render_previous  # the pre-issue-13 renderer, for the speed-up

p = import_pybullet()

EYE, TARGET, UP = (14.0, -18.0, 7.0), (0.0, 0.0, 2.0), (0.0, 0.0, 1.0)
ROBOT_EYE, ROBOT_TARGET = (10.0, 0.0, 1.6), (-10.0, 5.0, 2.0)  # in the courtyard, looking at the main hall
VFOV = 60.0


def monastery_gaussians(n: int) -> GaussianWorld:
    """N surface Gaussians on the monastery mesh, in pybullet's Z-up world frame."""
    mesh = o3d.io.read_triangle_mesh(str(Path(pybullet_data.getDataPath()) / "samurai_monastry.obj"))
    rot = np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], dtype=np.float64)  # the URDF's rpy (pi/2, 0, 0)
    mesh.rotate(rot, center=(0, 0, 0))
    mesh.compute_triangle_normals()
    o3d.utility.random.seed(0)
    pcd = mesh.sample_points_uniformly(number_of_points=n, use_triangle_normal=True)
    pts, normals = np.asarray(pcd.points), np.asarray(pcd.normals)
    radius = math.sqrt(mesh.get_surface_area() / n)
    helper = np.where(np.abs(normals[:, :1]) < 0.9, [[1.0, 0, 0]], [[0.0, 1, 0]])
    t1 = np.cross(helper, normals)
    t1 /= np.linalg.norm(t1, axis=1, keepdims=True)
    frames = np.stack([t1, np.cross(normals, t1), normals], axis=-1)
    shade = 0.35 + 0.6 * np.abs(normals @ np.array([0.3, -0.4, 0.87]))  # simple fixed lighting
    rgb = np.clip(shade[:, None] * np.array([[0.85, 0.78, 0.68]]), 0, 1)
    return GaussianWorld.from_rgb(
        torch.from_numpy(pts).float(),
        torch.from_numpy(rgb).float(),
        torch.from_numpy(np.tile([0.6 * radius, 0.6 * radius, 0.06 * radius], (n, 1))).float(),
        torch.full((n,), 0.9),
        quats=rotmat_to_quat(torch.from_numpy(frames)).float(),
        frame="z_up",
    )


def frustum_gaussians(n: int, camera: Camera, seed: int = 0, sh_degree: int = 0) -> GaussianWorld:
    """N random Gaussians filling the camera's view, 2-25 m deep, log-scales uniform in [-4, -2]."""
    g = torch.Generator().manual_seed(seed)
    K, cam_to_world = camera.K[0], camera.cam_to_world[0]
    depth = torch.rand(n, generator=g) * 23 + 2
    u, v = torch.rand(n, generator=g) * camera.width, torch.rand(n, generator=g) * camera.height
    cam_points = torch.stack([(u - K[0, 2]) / K[0, 0] * depth, (v - K[1, 2]) / K[1, 1] * depth, depth], -1)
    means = cam_points @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.3
    return GaussianWorld(means, torch.randn(n, 4, generator=g), torch.exp(torch.rand(n, 3, generator=g) * 2 - 4),
                         torch.rand(n, generator=g) * 0.9 + 0.05, sh, frame="z_up")


def with_sh(world: GaussianWorld, degree: int, seed: int = 0) -> GaussianWorld:
    """The world with view-dependent colour: random higher SH bands (0.1 amplitude) on its base colour."""
    g = torch.Generator().manual_seed(seed)
    rest = torch.randn(len(world), (degree + 1) ** 2 - 1, 3, generator=g) * 0.1
    return GaussianWorld(world.means, world.quats, world.scales, world.opacities,
                         torch.cat([world.sh, rest], dim=1), frame=world.frame)


def monastery_camera(width: int, height: int, eye=EYE, target=TARGET) -> Camera:
    fy = 0.5 * height / math.tan(math.radians(VFOV) / 2)
    K = torch.tensor([[fy, 0, width / 2], [0, fy, height / 2], [0, 0, 1]])
    return Camera(K, look_at_matrix(eye, target, UP), width, height)


RATIO_RUNS, RUN_REPEATS = 5, 5  # the 200k targets count runs: ratios of RATIO_RUNS separate interleaved runs


def interleaved(fns: dict, repeats: int) -> tuple[dict, dict]:
    """Median wall and CPU (process) seconds of each callable, run round-robin so a busy machine slows them
    alike. On a shared machine CPU time is the fairer measure of single-threaded work."""
    for fn in fns.values():
        fn()  # warm-up (numba compile / caches)
    wall, cpu = {name: [] for name in fns}, {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            fn()
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
    return ({name: statistics.median(t) for name, t in wall.items()},
            {name: statistics.median(t) for name, t in cpu.items()})


def threads(count: int, fn):
    """fn run with ``count`` numba threads."""

    def run():
        before = numba.get_num_threads()
        numba.set_num_threads(count)
        try:
            return fn()
        finally:
            numba.set_num_threads(before)

    return run


def read_once_seconds(world: GaussianWorld) -> float:
    """Time to read the world's index once (geometry + SH): the lower bound of any frame that visits it all."""
    index = scene_index(world)
    return min(timeit.repeat(lambda: (index.geometry.sum(), index.sh.sum()), number=1, repeat=5))


def stage_cpu_ms(world: GaussianWorld, camera: Camera) -> dict[str, float]:
    """CPU milliseconds of each stage of one frame on one thread (median of 5): chunk culling, projection of
    the kept chunks, composite (one band: depth sort, then gather, bin and blend in batches until the tiles
    saturate), and the depth sort alone."""
    index, view, (w, h) = scene_index(world), cpu_backend._Views(camera), (camera.width, camera.height)
    projected = cpu_backend._Projected(index, view, w, h, 0.01, 1e10, 0.3)
    chunks = index.visible_chunks(view.world_to_cam[0], view.K[0], w, h, 0.01, 1e10)
    tiles_y = -(-h // cpu_backend.TILE_SIZE)
    one = np.zeros(1, np.int64)
    steps = {
        "cull": lambda: index.visible_chunks(view.world_to_cam[0], view.K[0], w, h, 0.01, 1e10),
        "project": lambda: cpu_backend._Projected(index, view, w, h, 0.01, 1e10, 0.3),
        "composite": lambda: kernels.composite(projected.rows, projected.depth, projected.tile_rows,
                                               projected.offsets, projected.counts, projected.view_items, index.ids,
                                               projected.slots, one, one, one + tiles_y, 0, 1, np.zeros(1),
                                               np.full(1, np.inf), w, h, cpu_backend.TILE_SIZE,
                                               np.zeros((1, h, w, 4), np.float32), np.ones((1, h, w), np.float32),
                                               *cpu_backend.fresh_state(1, w, h)),
        "sort": lambda: projected.sorted_order(),
    }
    _, cpu_times = interleaved({name: threads(1, fn) for name, fn in steps.items()}, repeats=5)
    result = {name: 1000 * t for name, t in cpu_times.items()}
    result["project"] -= result["cull"]
    result["visible"] = int(projected.counts.sum())
    result["chunks"] = len(chunks)
    return result


def main() -> None:
    client = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    p.loadURDF("samurai.urdf", physicsClientId=client)
    view = p.computeViewMatrix(EYE, TARGET, UP)
    proj = p.computeProjectionMatrixFOV(VFOV, 1.0, 0.1, 100.0)

    def tiny():
        return p.getCameraImage(128, 128, view, proj, renderer=p.ER_TINY_RENDERER, physicsClientId=client)

    cam = monastery_camera(128, 128)
    rows, ratios = [], {}
    scenes = (("mesh-sampled", monastery_gaussians(200_000)), ("frustum-filling", frustum_gaussians(200_000, cam)))
    for label, world in scenes:
        with torch.no_grad():
            fns = {"tiny": tiny, "ours2": threads(2, lambda w=world: render(w, cam, backend="cpu")),
                   "ours1": threads(1, lambda w=world: render(w, cam, backend="cpu")),
                   "prev2": threads(2, lambda w=world: render_previous(w, cam))}
            t, cpu = interleaved(fns, repeats=15)
            coverage = float((render(world, cam, backend="cpu").alpha > 0.5).float().mean())
            runs = [interleaved({name: fns[name] for name in ("tiny", "ours2", "ours1")}, repeats=RUN_REPEATS)[0]
                    for _ in range(RATIO_RUNS)]
        ratios[label] = [(r["ours2"] / r["tiny"], r["ours1"] / r["tiny"]) for r in runs]
        rows.append((label, t, cpu, coverage, stage_cpu_ms(world, cam)))
        print(f"{label} 200k 128x128: TinyRenderer {1000 * t['tiny']:.1f} ms, ours 2 threads {1000 * t['ours2']:.1f} ms"
              f" (ratio {t['ours2'] / t['tiny']:.2f}), 1 thread {1000 * t['ours1']:.1f} ms (ratio "
              f"{t['ours1'] / t['tiny']:.2f}; CPU-time ratio {cpu['ours1'] / cpu['tiny']:.2f}), previous renderer "
              f"{1000 * t['prev2']:.1f} ms, coverage {coverage:.0%}")
    p.disconnect(client)

    big = with_sh(monastery_gaussians(2_000_000), 3)
    robot = monastery_camera(640, 480, eye=ROBOT_EYE, target=ROBOT_TARGET)
    index = scene_index(big)
    kept = index.visible_chunks(robot.world_to_cam[0].double().numpy(), robot.K[0].double().numpy(), 640, 480,
                                0.01, 1e10)
    seen = int((index.chunk_starts[kept + 1] - index.chunk_starts[kept]).sum())
    with torch.no_grad():
        t, _ = interleaved({"ours2": threads(2, lambda: render(big, robot, backend="cpu")),
                            "prev2": threads(2, lambda: render_previous(big, robot))}, repeats=5)
        picture = render(big, robot, backend="cpu", background=(1.0, 1.0, 1.0))
    read_once = read_once_seconds(big)
    lod_rows = level_of_detail_rows(big, {"overview 128x128": cam, "robot 640x480": robot,
                                          "robot 64x48": monastery_camera(64, 48, eye=ROBOT_EYE,
                                                                          target=ROBOT_TARGET)})
    rows.append(("2M SH3 robot camera 640x480", None, None, None, stage_cpu_ms(big, robot)))
    Image.fromarray(picture.to_uint8().numpy()).save(Path(__file__).with_name("robot_camera_2m.png"))
    print(f"2M SH3 640x480 robot camera: {1000 * t['ours2']:.0f} ms ({1 / t['ours2']:.1f} frames/s), previous "
          f"{1000 * t['prev2']:.0f} ms; {seen:,} Gaussians in the chunks kept; reading the index once "
          f"{1000 * read_once:.1f} ms")
    write_results(rows, ratios, t, seen, read_once, lod_rows)


LOD_PIXELS = (0.5, 1.0)


def level_of_detail_rows(world: GaussianWorld, cameras: dict[str, Camera]) -> list[str]:
    """Table rows: each camera exact and with each LOD_PIXELS level of detail: time (2 threads, interleaved),
    Gaussians drawn, PSNR against the exact picture."""
    index = scene_index(world)
    started = time.perf_counter()
    coarse_levels(index)
    build = time.perf_counter() - started
    lines = []
    for name, camera in cameras.items():
        view = cpu_backend._Views(camera)
        with torch.no_grad():
            exact = render(world, camera, backend="cpu")
            fns = {lod: threads(2, lambda lod=lod, camera=camera: render(world, camera, backend="cpu", lod=lod))
                   for lod in (None, *LOD_PIXELS)}
            t, _ = interleaved(fns, repeats=5)
            for lod in fns:
                drawn = cpu_backend._Projected(index, view, camera.width, camera.height, 0.01, 1e10, 0.3, lod)
                out = render(world, camera, backend="cpu", lod=lod)
                mse = float(((out.rgb - exact.rgb) ** 2).mean())
                psnr = "exact" if mse == 0 else f"{10 * math.log10(1 / mse):.1f} dB"
                label = "exact" if lod is None else f"lod={lod}"
                lines.append(f"| {name} | {label} | {1000 * t[lod]:.1f} ms | {int(drawn.counts.sum()):,} | {psnr} |")
                print(f"LOD {name} {label}: {1000 * t[lod]:.1f} ms, {int(drawn.counts.sum()):,} drawn, PSNR {psnr}")
    return [f"Building the coarse levels once: {build:.1f} s.", "",
            "| camera (2M SH3 monastery) | level of detail | frame, 2 threads | Gaussians drawn | PSNR vs exact |",
            "| --- | --- | --- | --- | --- |", *lines]


def write_results(rows, ratios: dict[str, list[tuple[float, float]]], big, seen: int, read_once: float,
                  lod_rows: list[str]) -> None:
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} ({os.cpu_count()} CPUs) by "
        "`python benchmarks/bench_render.py`: one run, timings interleaved round-robin (medians), so the",
        "ratios are robust to a busy machine; absolute times are not (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end of the run).",
        "Scene: pybullet_data samurai monastery; TinyRenderer draws the textured mesh, lyra_sim draws 200k",
        "Gaussians sampled on the same surface, or 200k random Gaussians filling the same view (depths 2-25 m,",
        "log-scales in [-4, -2]); same camera, 128x128. \"previous\" is the renderer before issue 13 (tests/).",
        "",
        "| scene (128x128, 200k) | TinyRenderer | ours, 2 threads | ours, 1 thread | previous, 2 threads "
        "| ours/Tiny 2 threads (target <= 0.5) | ours/Tiny 1 thread (target <= 1.0) | same, CPU time "
        "| pixels covered |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for label, t, cpu, cov, _ in rows[:2]:
        lines.append(f"| {label} | {1000 * t['tiny']:.1f} ms | {1000 * t['ours2']:.1f} ms | {1000 * t['ours1']:.1f} ms "
                     f"| {1000 * t['prev2']:.1f} ms | {t['ours2'] / t['tiny']:.2f} | {t['ours1'] / t['tiny']:.2f} "
                     f"| {cpu['ours1'] / cpu['tiny']:.2f} | {cov:.0%} |")
    lines += ["", f"The same ratios in {RATIO_RUNS} separate runs of {RUN_REPEATS} interleaved repeats each (the "
              "target: 2 threads <= 0.5 in at least 4 of 5 runs, 1 thread <= 1.0):", ""]
    for label, per_run in ratios.items():
        two, one = [r[0] for r in per_run], [r[1] for r in per_run]
        lines.append(f"- {label}: 2 threads {', '.join(f'{r:.2f}' for r in two)} ({sum(r <= 0.5 for r in two)} of "
                     f"{len(two)} <= 0.5); 1 thread {', '.join(f'{r:.2f}' for r in one)} ({sum(r <= 1.0 for r in one)} "
                     f"of {len(one)} <= 1.0)")
    lines += [
        "",
        f"2,000,000 Gaussians (the monastery surface, SH degree 3), 640x480 robot camera inside the courtyard "
        f"(1.6 m high), 2 threads: **{1000 * big['ours2']:.0f} ms = {1 / big['ours2']:.1f} frames/s** (target >= 5; "
        f"previous renderer {1000 * big['prev2']:.0f} ms, {big['prev2'] / big['ours2']:.1f}x slower). The chunk "
        f"culling keeps {seen:,} of the 2M Gaussians for this view. Lower bound: reading the world's index "
        f"once takes {1000 * read_once:.1f} ms here (the frame is {big['ours2'] / read_once:.0f}x that). "
        "Picture: benchmarks/robot_camera_2m.png.",
        "",
        "Stages of one frame, CPU ms on one thread (median of 5; a frame's parts, each measured alone):",
        "",
        "| frame | Gaussians drawn | cull chunks | project | composite (sort, bin, blend) | of which depth sort |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for label, _, _, _, st in rows:
        lines.append(f"| {label} | {st['visible']:,} visible | {st['cull']:.1f} | {st['project']:.1f} "
                     f"| {st['composite']:.1f} | {st['sort']:.1f} |")
    lines += ["", "Level of detail (`render(..., lod=px)`, lyra_sim/rendering/lod.py): each octree "
              "cell drawn as one merged Gaussian when that projects below `lod` pixels of standard deviation at "
              "its own depth, else as its children; far, dense parts gain, near surfaces stay exact.", "", *lod_rows]
    out = write_section("CPU camera: lyra_sim Gaussian rasterizer vs PyBullet TinyRenderer", "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
