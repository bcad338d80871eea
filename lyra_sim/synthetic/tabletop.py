"""The bundled example's scene: a floor, a table with a duck, a teddy, a cube and a ball, and two walls
(pybullet_data assets), seen by a tabletop camera. ``examples/make_example_rgbd.py`` renders the package's
``lyra_sim/data/tabletop_*`` files from it; benchmarks and tests rebuild it to hold worlds against the truth."""

from __future__ import annotations

import math

import numpy as np
import pybullet_data

from lyra_sim.physics.bullet_camera import render_rgbd
from lyra_sim.physics.pybullet_quiet import import_pybullet

p = import_pybullet()

NEAR, FAR = 0.05, 20.0  # clip planes (m)
VFOV_DEG = 50.0
CAMERA_EYE, CAMERA_TARGET = (-0.6, 0.0, 1.25), (1.2, 0.0, 0.5)  # a tabletop camera looking down at the table
LIGHT = (-1, -0.5, 2)  # light direction


def build_scene(client: int) -> None:
    """A floor, a table with a few objects, and two walls, from pybullet_data assets."""
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    p.loadURDF("plane.urdf", physicsClientId=client)
    p.loadURDF(
        "table/table.urdf",
        [0.9, 0.0, 0.0],
        p.getQuaternionFromEuler([0, 0, math.pi / 2]),
        physicsClientId=client,
    )
    p.loadURDF(
        "duck_vhacd.urdf",
        [0.75, -0.15, 0.65],
        p.getQuaternionFromEuler([math.pi / 2, 0, 2.2]),
        globalScaling=1.2,
        physicsClientId=client,
    )
    p.loadURDF(
        "teddy_vhacd.urdf",
        [0.95, 0.2, 0.63],
        p.getQuaternionFromEuler([math.pi / 2, 0, -2.0]),
        globalScaling=1.5,
        physicsClientId=client,
    )
    p.loadURDF("cube_small.urdf", [0.7, 0.25, 0.65], globalScaling=1.6, physicsClientId=client)
    p.loadURDF("sphere_small.urdf", [1.05, -0.3, 0.66], globalScaling=1.5, physicsClientId=client)
    wall = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.05, 2.0, 1.2], physicsClientId=client)
    wall_vis = p.createVisualShape(
        p.GEOM_BOX, halfExtents=[0.05, 2.0, 1.2], rgbaColor=[0.75, 0.72, 0.65, 1], physicsClientId=client
    )
    p.createMultiBody(0, wall, wall_vis, [2.3, 0.0, 1.2], physicsClientId=client)
    side_vis = p.createVisualShape(
        p.GEOM_BOX, halfExtents=[1.2, 0.05, 1.2], rgbaColor=[0.55, 0.62, 0.7, 1], physicsClientId=client
    )
    p.createMultiBody(
        0,
        wall,
        side_vis,
        [1.1, 1.6, 1.2],
        p.getQuaternionFromEuler([0, 0, math.pi / 2]),
        physicsClientId=client,
    )
    for _ in range(10):
        p.stepSimulation(physicsClientId=client)


def example_view(client: int, width: int, height: int,
                 vfov_deg: float = VFOV_DEG) -> tuple[np.ndarray, np.ndarray, dict]:
    """RGB (H,W,3) uint8, metric z-depth (H,W) and pinhole intrinsics of the example camera."""
    rgb, depth, K = render_rgbd(client, width, height, CAMERA_EYE, CAMERA_TARGET, vfov_deg, NEAR, FAR, light=LIGHT)
    fx, fy, cx, cy = (float(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    intrinsics = {"fx": fx, "fy": fy, "cx": cx, "cy": cy, "width": width, "height": height}
    return rgb, depth, intrinsics
