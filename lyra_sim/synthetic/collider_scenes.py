"""PyBullet scenes with known geometry for judging colliders: one RGB-D view in, the true bodies to ray-test.

Four rooms of the collider issue (a table with chairs, a shelf with thin boards, crates and a ball on the
floor, a corner of two walls with a doorway) and two small test scenes (a box, a 3 cm post, a wall with a
doorway; a table and a board just above the floor). Bodies are boxes, cylinders and spheres with plain
colours; the floor is a 10 m slab whose top is z = 0. Rendered with PyBullet's TinyRenderer
(lyra_sim.physics.bullet_camera): no GPU, no downloads.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lyra_sim.physics.bullet_camera import render_rgbd
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.synthetic.captures import look_at_cam_to_world

p = import_pybullet()

NEAR, FAR = 0.05, 20.0
VFOV_DEG = 50.0
EYE = (0.0, 0.0, 1.2)


@dataclass
class ColliderScene:
    """A PyBullet client holding the true bodies and the input camera (eye, target, vertical FOV)."""

    name: str
    client: int
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    bodies: list[int] = field(default_factory=list)

    def view(self, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(rgb uint8 (H, W, 3), metric z-depth (H, W), K (3, 3), OpenCV camera-to-world (4, 4)) of the input."""
        rgb, depth, K = render_rgbd(self.client, width, height, self.eye, self.target, VFOV_DEG, NEAR, FAR,
                                    light=(1, 1, 3))
        return rgb.copy(), depth.astype(np.float32), K, look_at_cam_to_world(self.eye, self.target)

    def ray_test(self, origins: np.ndarray, directions: np.ndarray, length: float = 15.0):
        """(distance (N,), unit normal (N, 3), body id (N,)) of the first true surface along each ray (inf, 0, -1
        where none), with pybullet's rayTestBatch."""
        distance, normal, body = np.full(len(origins), np.inf), np.zeros((len(origins), 3)), np.full(len(origins), -1)
        batch = p.MAX_RAY_INTERSECTION_BATCH_SIZE - 1
        for start in range(0, len(origins), batch):
            o = origins[start:start + batch]
            ends = o + length * directions[start:start + batch]
            hits = p.rayTestBatch(o.tolist(), ends.tolist(), physicsClientId=self.client)
            for k, (uid, _, fraction, _, hit_normal) in enumerate(hits):
                if uid >= 0:
                    distance[start + k], normal[start + k], body[start + k] = fraction * length, hit_normal, uid
        return distance, normal, body

    def close(self) -> None:
        p.disconnect(self.client)


def _body(client: int, shape: int, size, position, rgba, yaw: float = 0.0) -> int:
    """A static body: a box (half extents), a cylinder (radius, height) or a sphere (radius,)."""
    if shape == p.GEOM_BOX:
        vis_kw = col_kw = {"halfExtents": list(size)}
    elif shape == p.GEOM_CYLINDER:
        vis_kw, col_kw = {"radius": size[0], "length": size[1]}, {"radius": size[0], "height": size[1]}
    else:
        vis_kw = col_kw = {"radius": size[0]}
    vis = p.createVisualShape(shape, rgbaColor=list(rgba), physicsClientId=client, **vis_kw)
    col = p.createCollisionShape(shape, physicsClientId=client, **col_kw)
    return p.createMultiBody(0, col, vis, list(position), p.getQuaternionFromEuler([0, 0, yaw]),
                             physicsClientId=client)


def _box(scene: ColliderScene, half, centre, rgba, yaw: float = 0.0) -> None:
    scene.bodies.append(_body(scene.client, p.GEOM_BOX, half, centre, rgba, yaw))


def _floor(scene: ColliderScene) -> None:
    _box(scene, (5.0, 5.0, 0.05), (2.0, 0.0, -0.05), (0.55, 0.5, 0.45, 1))


def _table(scene: ColliderScene, centre, half=(0.6, 0.4), height=0.72, top=0.03, leg=0.03) -> None:
    x, y = centre
    _box(scene, (*half, top / 2), (x, y, height - top / 2), (0.6, 0.4, 0.25, 1))
    for sx in (-1, 1):
        for sy in (-1, 1):
            lx, ly = x + sx * (half[0] - leg), y + sy * (half[1] - leg)
            _box(scene, (leg / 2, leg / 2, (height - top) / 2), (lx, ly, (height - top) / 2), (0.4, 0.3, 0.2, 1))


def _chair(scene: ColliderScene, centre, yaw: float) -> None:
    x, y = centre
    _box(scene, (0.22, 0.22, 0.02), (x, y, 0.45), (0.3, 0.45, 0.6, 1), yaw)
    back = np.array([math.cos(yaw), math.sin(yaw)]) * 0.2
    _box(scene, (0.02, 0.22, 0.25), (x + back[0], y + back[1], 0.72), (0.3, 0.45, 0.6, 1), yaw)
    for sx in (-1, 1):
        for sy in (-1, 1):
            c, s = math.cos(yaw), math.sin(yaw)
            dx, dy = sx * 0.19, sy * 0.19
            _box(scene, (0.015, 0.015, 0.22), (x + c * dx - s * dy, y + s * dx + c * dy, 0.22), (0.2, 0.2, 0.2, 1))


def table_with_chairs(scene: ColliderScene) -> None:
    _floor(scene)
    _table(scene, (2.4, 0.0))
    for centre, yaw in (((2.4, -0.75), math.pi / 2), ((2.4, 0.75), -math.pi / 2), ((3.3, 0.0), 0.0)):
        _chair(scene, centre, yaw)
    _box(scene, (0.05, 2.5, 1.3), (4.2, 0.0, 1.3), (0.8, 0.8, 0.75, 1))


def shelf_with_boards(scene: ColliderScene) -> None:
    _floor(scene)
    x, half_w, depth = 2.6, 0.6, 0.18
    for side in (-1, 1):
        _box(scene, (depth, 0.015, 0.9), (x, side * half_w, 0.9), (0.5, 0.35, 0.2, 1))
    for k in range(5):
        _box(scene, (depth, half_w, 0.01), (x, 0.0, 0.05 + 0.42 * k), (0.65, 0.5, 0.3, 1))
    _box(scene, (0.01, half_w, 0.9), (x + depth, 0.0, 0.9), (0.45, 0.3, 0.2, 1))
    for k, y in enumerate((-0.35, 0.0, 0.3)):
        _box(scene, (0.06, 0.05, 0.1), (x - 0.05, y, 0.48 + 0.42 * (k % 2) + 0.1), (0.8, 0.2 + 0.2 * k, 0.2, 1))
    _box(scene, (0.05, 2.5, 1.3), (3.6, 0.0, 1.3), (0.8, 0.8, 0.75, 1))


def crates_and_ball(scene: ColliderScene) -> None:
    _floor(scene)
    for centre, half, yaw in (((2.0, -0.5, 0.25), 0.25, 0.2), ((2.6, 0.4, 0.3), 0.3, -0.3),
                              ((2.6, 0.4, 0.8), 0.2, 0.1)):  # the last one stacked on the second
        _box(scene, (half, half, half), centre, (0.7, 0.55, 0.3, 1), yaw)
    scene.bodies.append(_body(scene.client, p.GEOM_SPHERE, (0.15,), (1.6, 0.3, 0.15), (0.9, 0.2, 0.2, 1)))
    _box(scene, (0.05, 2.5, 1.3), (4.0, 0.0, 1.3), (0.75, 0.8, 0.85, 1))


def corner_with_doorway(scene: ColliderScene) -> None:
    _floor(scene)
    # Far wall x = 3.5 with a 0.9 m doorway (y in [-0.2, 0.7], 2 m high), side wall y = -1.8.
    _box(scene, (0.05, 0.9, 1.25), (3.5, -1.1, 1.25), (0.85, 0.8, 0.7, 1))
    _box(scene, (0.05, 1.0, 1.25), (3.5, 1.7, 1.25), (0.85, 0.8, 0.7, 1))
    _box(scene, (0.05, 0.45, 0.25), (3.5, 0.25, 2.25), (0.85, 0.8, 0.7, 1))
    _box(scene, (2.0, 0.05, 1.25), (1.9, -1.8, 1.25), (0.7, 0.8, 0.85, 1))
    _box(scene, (0.05, 2.5, 1.25), (5.5, 0.0, 1.25), (0.6, 0.6, 0.6, 1))  # seen through the doorway


def box_post_doorway(scene: ColliderScene) -> None:
    """A 0.4 m box, a 3 cm post and a wall with a 1 m doorway, for the collider tests."""
    _floor(scene)
    _box(scene, (0.2, 0.2, 0.2), (2.0, -0.3, 0.2), (0.8, 0.4, 0.2, 1))
    scene.bodies.append(_body(scene.client, p.GEOM_CYLINDER, (0.015, 1.0), (1.7, 0.6, 0.5), (0.2, 0.2, 0.8, 1)))
    _box(scene, (0.05, 1.25, 1.2), (3.2, -1.75, 1.2), (0.8, 0.8, 0.7, 1))
    _box(scene, (0.05, 1.25, 1.2), (3.2, 1.75, 1.2), (0.8, 0.8, 0.7, 1))
    _box(scene, (0.05, 2.5, 1.2), (5.0, 0.0, 1.2), (0.6, 0.65, 0.6, 1))  # beyond the doorway


def table_and_low_board(scene: ColliderScene) -> None:
    """A table (3 cm top at 0.72 m, 3 cm legs) in front of a wall and a 2 cm board whose top is 6 cm above the
    floor (a shelf's bottom board), for the collider tests."""
    _floor(scene)
    _table(scene, (2.4, 0.3), half=(0.4, 0.35))
    _box(scene, (0.25, 0.3, 0.01), (2.2, -0.6, 0.05), (0.65, 0.5, 0.3, 1))
    _box(scene, (0.05, 2.5, 1.3), (3.6, 0.0, 1.3), (0.8, 0.8, 0.75, 1))


SCENES: dict[str, tuple[Callable[[ColliderScene], None], tuple[float, float, float]]] = {
    "table_chairs": (table_with_chairs, (2.6, 0.0, 0.4)),
    "shelf": (shelf_with_boards, (2.6, 0.0, 0.7)),
    "crates_ball": (crates_and_ball, (2.4, 0.0, 0.3)),
    "doorway_corner": (corner_with_doorway, (3.5, 0.0, 0.8)),
    "box_post_doorway": (box_post_doorway, (2.5, 0.0, 0.4)),
    "table_low_board": (table_and_low_board, (2.4, 0.0, 0.4)),
}


def collider_scene(name: str) -> ColliderScene:
    """Build one of SCENES in a fresh PyBullet DIRECT client (call ``close`` when done)."""
    if name not in SCENES:
        raise ValueError(f"collider scene: expected one of {sorted(SCENES)}, got {name!r}")
    build, target = SCENES[name]
    scene = ColliderScene(name, p.connect(p.DIRECT), EYE, target)
    build(scene)
    return scene
