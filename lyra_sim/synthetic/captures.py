"""Synthetic RGB-D captures rendered with PyBullet: a furnished, textured room, a walking camera, sensor noise.

Ground truth for the sequence pipeline (tests, ``benchmarks/bench_sequences.py``, the README
example): true camera poses, the moving object's pose at every frame, and depth corrupted like a
structured-light sensor's (noise growing with range squared, 1/5000 m quantisation, dropouts).
Everything is made on the fly (TinyRenderer, procedural textures): no GPU, no downloads.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pybullet_data
from PIL import Image

from lyra_sim.camera import look_at_matrix
from lyra_sim.io.atomic import atomic_path
from lyra_sim.physics.bullet_camera import render_rgbd, tiny_renderer_intrinsics
from lyra_sim.physics.pybullet_quiet import import_pybullet

p = import_pybullet()

NEAR, FAR = 0.05, 20.0
LIGHT = (1, 1, 3)  # TinyRenderer light direction
ROOM = (6.0, 5.0, 2.5)  # x, y extent and wall height (m); floor centred on the origin, z up
CAMERA_HEIGHT = 1.3
MOVING_HALF = (0.15, 0.15, 0.15)  # half extents of the moving box (m)


@dataclass
class SimCapture:
    """Frames (uint8 colour, metric depth with 0 = invalid), K, times, true camera-to-world (z-up sim frame)."""

    rgb: list[np.ndarray]
    depth: list[np.ndarray]
    K: np.ndarray
    timestamps: np.ndarray
    cam_to_world: np.ndarray  # (N,4,4), OpenCV camera axes
    object_positions: np.ndarray | None  # (N,3) centre of the moving box per frame, or None
    object_half_extents: tuple[float, float, float] = MOVING_HALF

    def sequence(self, with_poses: bool = False):
        """The capture as an ``RGBDSequence`` (optionally with its true poses)."""
        from lyra_sim.inputs.sequence import sequence_from_arrays

        return sequence_from_arrays(self.rgb, self.depth, self.K, self.timestamps,
                                    self.cam_to_world if with_poses else None, source="sim capture")


def _texture(path: Path, rng: np.random.Generator, base, size: int = 256) -> str:
    """A tileable stained texture around ``base`` colour (gives colour odometry something to lock on)."""
    noise = rng.random((size // 16, size // 16, 3))
    big = np.kron(noise, np.ones((16, 16, 1)))
    fine = rng.random((size, size, 1))
    img = np.clip(np.asarray(base)[None, None] * (0.7 + 0.35 * big + 0.15 * fine), 0, 1)
    Image.fromarray((img * 255).astype(np.uint8)).save(path)
    return str(path)


def _box(client, half, pos, rgba, texture=None, yaw=0.0) -> int:
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=list(half), rgbaColor=list(rgba), physicsClientId=client)
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=list(half), physicsClientId=client)
    body = p.createMultiBody(0, col, vis, list(pos), p.getQuaternionFromEuler([0, 0, yaw]), physicsClientId=client)
    if texture is not None:
        p.changeVisualShape(body, -1, textureUniqueId=texture, rgbaColor=[1, 1, 1, 1], physicsClientId=client)
    return body


def build_room(client: int, tex_dir: Path, seed: int = 0) -> None:
    """Floor, four textured walls, a table with objects, shelves, boxes and a sofa-like block."""
    rng = np.random.default_rng(seed)
    p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
    p.loadURDF("plane.urdf", physicsClientId=client)
    sx, sy, h = ROOM
    walls = [((0.05, sy / 2, h / 2), (sx / 2, 0, h / 2), (0.85, 0.8, 0.7)),
             ((0.05, sy / 2, h / 2), (-sx / 2, 0, h / 2), (0.7, 0.8, 0.85)),
             ((sx / 2, 0.05, h / 2), (0, sy / 2, h / 2), (0.8, 0.75, 0.85)),
             ((sx / 2, 0.05, h / 2), (0, -sy / 2, h / 2), (0.75, 0.85, 0.75))]
    for i, (half, pos, colour) in enumerate(walls):
        tex = p.loadTexture(_texture(tex_dir / f"wall{i}.png", rng, colour), physicsClientId=client)
        _box(client, half, pos, (1, 1, 1, 1), tex)
    p.loadURDF("table/table.urdf", [1.6, 0.9, 0], p.getQuaternionFromEuler([0, 0, 0.3]), physicsClientId=client)
    p.loadURDF("duck_vhacd.urdf", [1.5, 0.8, 0.66], p.getQuaternionFromEuler([math.pi / 2, 0, 1.0]),
               globalScaling=1.5, physicsClientId=client)
    p.loadURDF("teddy_vhacd.urdf", [1.8, 1.1, 0.64], p.getQuaternionFromEuler([math.pi / 2, 0, -2.0]),
               globalScaling=2.0, physicsClientId=client)
    furniture = [((0.4, 0.2, 0.9), (-2.4, 1.5, 0.9), (0.55, 0.35, 0.2)),  # shelf
                 ((1.0, 0.45, 0.4), (-1.5, -1.9, 0.4), (0.3, 0.35, 0.6)),  # sofa
                 ((0.25, 0.25, 0.25), (2.3, -1.6, 0.25), (0.8, 0.3, 0.25)),  # boxes
                 ((0.2, 0.3, 0.45), (2.5, -0.8, 0.45), (0.25, 0.6, 0.3)),
                 ((0.3, 0.3, 0.35), (-0.6, 2.0, 0.35), (0.9, 0.75, 0.2))]
    for i, (half, pos, colour) in enumerate(furniture):
        tex = p.loadTexture(_texture(tex_dir / f"furniture{i}.png", rng, colour, 64), physicsClientId=client)
        _box(client, half, pos, (1, 1, 1, 1), tex, yaw=float(rng.uniform(-0.3, 0.3)))


def walk(num_frames: int, kind: str = "loop") -> tuple[np.ndarray, np.ndarray]:
    """Eye positions and look-at targets (N,3) of the camera.

    ``loop``: a closed 5 m walk (circle of radius 0.8 m) looking outwards and down at the room;
    ``arc``: a 2.5 m arc facing the room's centre, where the moving object travels.
    """
    s = np.arange(num_frames) / num_frames
    if kind == "loop":
        a = 2 * math.pi * s
        r = 5.0 / (2 * math.pi)
        eye = np.stack([r * np.cos(a), r * np.sin(a), CAMERA_HEIGHT + 0.05 * np.sin(3 * a)], axis=1)
        heading = a + 0.6  # looking outwards, ahead of the walking direction's normal
        target = eye + np.stack([2.5 * np.cos(heading), 2.5 * np.sin(heading), np.full_like(a, -1.0)], axis=1)
        return eye, target
    if kind == "arc":
        a = math.radians(-60) + math.radians(60) * s
        eye = np.stack([-2.4 * np.cos(a), -2.4 * np.sin(a), np.full_like(a, CAMERA_HEIGHT)], axis=1)
        return eye, np.tile([0.3, 0.0, 0.2], (num_frames, 1))
    raise ValueError(f"walk: unknown kind {kind!r} (loop or arc)")


def look_at_cam_to_world(eye, target) -> np.ndarray:
    """OpenCV camera-to-world (x right, y down, z forward) at ``eye`` looking at ``target`` (z-up world; batched
    like ``lyra_sim.camera.look_at_matrix``, whose inverse it is)."""
    return np.linalg.inv(look_at_matrix(eye, target, up=(0.0, 0.0, 1.0)).numpy())


def sensor_noise(depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Structured-light depth errors: sigma = 1.2 mm + 1.9 mm (z - 0.4 m)^2, 1/5000 m steps, 0.5 % dropouts."""
    sigma = 0.0012 + 0.0019 * (depth - 0.4) ** 2
    noisy = depth + rng.standard_normal(depth.shape) * sigma
    noisy = np.round(noisy * 5000) / 5000
    noisy[(rng.random(depth.shape) < 0.005) | (depth <= 0)] = 0.0
    return noisy.astype(np.float32)


def render_capture(num_frames: int = 100, width: int = 640, height: int = 480, moving_object: bool = False,
                   noise: bool = True, walk_kind: str | None = None, fps: float = 15.0, vfov_deg: float = 50.0,
                   seed: int = 0, only_first: int | None = None, cam_to_world: np.ndarray | None = None,
                   ) -> SimCapture:
    """Render a capture of the room; with ``moving_object`` a box slides 1.2 m across the floor meanwhile.

    ``only_first`` renders just the first frames of the ``num_frames`` walk (a shorter capture at the same pace);
    ``cam_to_world`` (N,4,4) renders these OpenCV camera poses instead of a walk (e.g. novel views).
    """
    if cam_to_world is None:
        walk_kind = walk_kind or ("arc" if moving_object else "loop")
        eyes, targets = walk(num_frames, walk_kind)
        eyes, targets = eyes[:only_first], targets[:only_first]
        cam_to_world = look_at_cam_to_world(eyes, targets)
    K = tiny_renderer_intrinsics(width, height, vfov_deg)
    rng = np.random.default_rng(seed)
    client = p.connect(p.DIRECT)
    rgbs, depths, objects = [], [], []
    try:
        with tempfile.TemporaryDirectory() as tex_dir:
            build_room(client, Path(tex_dir), seed)
            box = None
            if moving_object:
                tex = p.loadTexture(_texture(Path(tex_dir) / "moving.png", rng, (0.9, 0.2, 0.2), 64),
                                    physicsClientId=client)
                box = _box(client, MOVING_HALF, (0, 0, MOVING_HALF[2]), (1, 1, 1, 1), tex)
            for i, pose in enumerate(cam_to_world):
                if box is not None:
                    pos = np.array([-0.2 + 1.2 * i / max(num_frames - 1, 1), -0.3, MOVING_HALF[2]])
                    p.resetBasePositionAndOrientation(box, pos.tolist(), [0, 0, 0, 1], physicsClientId=client)
                    objects.append(pos)
                eye, forward, up = pose[:3, 3], pose[:3, 2], -pose[:3, 1]
                rgb, depth, _ = render_rgbd(client, width, height, eye, eye + forward, vfov_deg, NEAR, FAR,
                                            light=LIGHT, up=up)
                rgbs.append(rgb.copy())
                depths.append(sensor_noise(depth, rng) if noise else depth.astype(np.float32))
    finally:
        p.disconnect(client)
    return SimCapture(rgbs, depths, K, np.arange(len(cam_to_world)) / fps, np.asarray(cam_to_world, float),
                      np.stack(objects) if objects else None)


def write_capture(capture: SimCapture, folder: str | os.PathLike, layout: str = "tum", poses: bool = True) -> Path:
    """Write a capture as a sequence folder (``tum`` or ``plain`` layout) with intrinsics.json (+ poses)."""
    if layout not in ("tum", "plain"):
        raise ValueError(f"layout: expected 'tum' or 'plain', got {layout!r}")
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    h, w = capture.depth[0].shape
    K = capture.K
    intrinsics = {"fx": K[0, 0], "fy": K[1, 1], "cx": K[0, 2], "cy": K[1, 2], "width": w, "height": h}
    names = [f"{i:04d}" for i in range(len(capture.rgb))]
    scale = 5000.0 if layout == "tum" else 1000.0
    (root / "rgb").mkdir(exist_ok=True)
    (root / "depth").mkdir(exist_ok=True)
    for name, rgb, depth in zip(names, capture.rgb, capture.depth, strict=True):
        Image.fromarray(rgb).save(root / "rgb" / f"{name}.png")
        Image.fromarray(np.round(depth * scale).clip(0, 65535).astype(np.uint16)).save(root / "depth" / f"{name}.png")
    if layout == "tum":
        stamps = [f"{t:.6f}" for t in capture.timestamps]
        for kind in ("rgb", "depth"):
            lines = [f"# {kind} images"] + [f"{t} {kind}/{n}.png" for t, n in zip(stamps, names, strict=True)]
            (root / f"{kind}.txt").write_text("\n".join(lines) + "\n")
        if poses:
            from lyra_sim.inputs.sequence import write_tum_trajectory

            write_tum_trajectory(root / "groundtruth.txt", capture.timestamps, capture.cam_to_world)
    else:
        (root / "timestamps.txt").write_text("\n".join(f"{t:.6f}" for t in capture.timestamps) + "\n")
        if poses:
            with atomic_path(root / "poses.json") as tmp:
                tmp.write_text(json.dumps([m.round(8).tolist() for m in capture.cam_to_world]))
    (root / "intrinsics.json").write_text(json.dumps(intrinsics, indent=2) + "\n")
    return root
