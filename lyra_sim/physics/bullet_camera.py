"""RGB-D images from a PyBullet scene: its OpenGL depth buffer turned into metric z-depth, with the pinhole K."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from lyra_sim.physics.pybullet_quiet import import_pybullet

p = import_pybullet()


def depth_from_zbuffer(zbuffer: np.ndarray, near: float, far: float) -> np.ndarray:
    """PyBullet's OpenGL depth buffer (values in [0, 1]) -> metric z-depth; 0 where nothing was hit (1.0)."""
    zbuffer = np.asarray(zbuffer, dtype=np.float64)
    depth = far * near / (far - (far - near) * zbuffer)
    depth[zbuffer >= 1.0] = 0.0
    return depth


def pinhole_from_vfov(width: int, height: int, vfov_deg: float) -> np.ndarray:
    """K (3, 3) of OpenGL's projection with a vertical field of view: square pixels, centred principal point."""
    focal = 0.5 * height / math.tan(math.radians(vfov_deg) / 2)
    return np.array([[focal, 0.0, width / 2], [0.0, focal, height / 2], [0.0, 0.0, 1.0]])


def tiny_renderer_intrinsics(width: int, height: int, vfov_deg: float) -> np.ndarray:
    """K (3, 3) of PyBullet TinyRenderer's images in the package's pixel convention (centres at +0.5).

    TinyRenderer's pixel (u, v) shows the ray that ``pinhole_from_vfov``'s K sends through the image point
    (u, v + 1), not through the pixel's centre (u + 0.5, v + 0.5), at every image size (fitted on tilted planes:
    tests/test_physics.py), so its images' principal point lies half a pixel right of and half a pixel above the
    image centre. A centred K misplaces every depth pixel by half a pixel (4-6 mm of a 3 cm
    table leg 2 m away).
    """
    K = pinhole_from_vfov(width, height, vfov_deg)
    K[0, 2] += 0.5
    K[1, 2] -= 0.5
    return K


def render_rgbd(client: int, width: int, height: int, eye: Sequence[float], target: Sequence[float],
                vfov_deg: float, near: float, far: float, light: Sequence[float] | None = None,
                up: Sequence[float] = (0.0, 0.0, 1.0)) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB (H, W, 3) uint8, metric z-depth (H, W; 0 = nothing) and K (3, 3) of a look-at camera
    (``tiny_renderer_intrinsics``).

    Rendered with PyBullet's CPU TinyRenderer (deterministic, no GPU); ``light`` is the light direction.
    """
    view = p.computeViewMatrix(list(eye), list(target), list(up))
    projection = p.computeProjectionMatrixFOV(vfov_deg, width / height, near, far)
    options = {} if light is None else {"lightDirection": list(light)}
    _, _, rgba, zbuffer, _ = p.getCameraImage(width, height, view, projection, renderer=p.ER_TINY_RENDERER,
                                              physicsClientId=client, **options)
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(height, width, 4)[..., :3]
    depth = depth_from_zbuffer(np.asarray(zbuffer).reshape(height, width), near, far)
    return rgb, depth, tiny_renderer_intrinsics(width, height, vfov_deg)
