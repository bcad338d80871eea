"""CPU camera benchmark: lyra_sim's Gaussian rasterizer beside PyBullet's TinyRenderer.

Scene: pybullet_data's samurai monastery. PyBullet renders the textured mesh (samurai.urdf) with
getCameraImage(ER_TINY_RENDERER); lyra_sim renders N Gaussians sampled uniformly on the same
mesh surface (flat discs along the surface normal, sized to the sampling density), seen by the
same camera. Both are timed in one run, so the ratio is robust to machine noise.

    python benchmarks/bench_render.py            # writes benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import math
import platform
import time
from pathlib import Path

import numpy as np
import open3d as o3d
import pybullet_data
import torch
from results import write_section

from lyra_sim import Camera, GaussianWorld, render
from lyra_sim.camera import look_at_matrix
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.rotations import rotmat_to_quat

p = import_pybullet()

EYE, TARGET, UP = (14.0, -18.0, 7.0), (0.0, 0.0, 2.0), (0.0, 0.0, 1.0)
VFOV = 60.0
CASES = [(128, 128, 200_000), (640, 480, 1_000_000)]


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


def time_call(fn, repeats: int) -> float:
    fn()  # warm-up (numba compile / caches)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    client = p.connect(p.DIRECT)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    p.loadURDF("samurai.urdf", physicsClientId=client)
    rows = []
    for width, height, n in CASES:
        view = p.computeViewMatrix(EYE, TARGET, UP)
        proj = p.computeProjectionMatrixFOV(VFOV, width / height, 0.1, 100.0)
        tiny = time_call(lambda: p.getCameraImage(width, height, view, proj, renderer=p.ER_TINY_RENDERER,  # noqa: B023
                                                  physicsClientId=client), repeats=10)  # fmt: skip
        world = monastery_gaussians(n)
        fy = 0.5 * height / math.tan(math.radians(VFOV) / 2)
        K = torch.tensor([[fy, 0, width / 2], [0, fy, height / 2], [0, 0, 1]])
        cam = Camera(K, look_at_matrix(EYE, TARGET, UP), width, height)
        with torch.no_grad():
            ours = time_call(lambda: render(world, cam, backend="cpu"), repeats=10)  # noqa: B023
            coverage = float((render(world, cam, backend="cpu").alpha > 0.5).float().mean())
        rows.append((width, height, n, ours, tiny, coverage))
        print(f"{width}x{height}, {n:,} Gaussians: lyra_sim cpu {1000 * ours:.1f} ms ({1 / ours:.1f} FPS), "
              f"TinyRenderer {1000 * tiny:.1f} ms ({1 / tiny:.1f} FPS), speed ratio {tiny / ours:.2f}x, "
              f"coverage {coverage:.0%}")  # fmt: skip
    p.disconnect(client)
    write_results(rows)


def write_results(rows) -> None:
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, by `python benchmarks/bench_render.py` (one run, both",
        "renderers timed back to back). Scene: pybullet_data samurai monastery; TinyRenderer draws the",
        "textured mesh, lyra_sim draws N Gaussians sampled on the same surface, same camera and image size.",
        "",
        "| image | Gaussians | lyra_sim cpu | TinyRenderer | ratio (TinyRenderer time / ours) | pixels covered |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for w, h, n, ours, tiny, cov in rows:
        lines.append(f"| {w}x{h} | {n:,} | {1000 * ours:.1f} ms ({1 / ours:.1f} FPS) | {1000 * tiny:.1f} ms "
                     f"({1 / tiny:.1f} FPS) | {tiny / ours:.2f}x | {cov:.0%} |")  # fmt: skip
    lines += [
        "",
        "Targets (issue 2): no slower than TinyRenderer at 128x128 with 200k Gaussians; >= 3 FPS at 640x480",
        "with 1M Gaussians.",
    ]
    out = write_section("CPU camera: lyra_sim Gaussian rasterizer vs PyBullet TinyRenderer", "\n".join(lines))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
