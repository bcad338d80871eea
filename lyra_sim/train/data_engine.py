"""The data engine: varied RGB-D scenes made with PyBullet, run through the 3D-cache teacher along Lyra's six
trajectories, written as safetensors shards (one per scene, no pickle), resumable, with a held-out split."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pybullet_data
import torch
from safetensors.torch import load_file, save

from lyra_sim.io.atomic import atomic_path
from lyra_sim.physics.bullet_camera import render_rgbd
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.scale import parallel_map
from lyra_sim.train.options import DatasetOptions
from lyra_sim.train.teachers import CacheTeacher

p = import_pybullet()

OBJECTS = ("cube_small.urdf", "sphere_small.urdf", "duck_vhacd.urdf", "teddy_vhacd.urdf", "sphere2.urdf",
           "cube.urdf", "lego/lego.urdf", "soccerball.urdf")
NEAR, FAR = 0.05, 30.0
MANIFEST = "manifest.json"


def random_rgbd_scene(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random layout of pybullet_data objects, boxes and a wall; random colours, light and camera.

    Returns rgb (H, W, 3) uint8, metric z-depth (H, W) and K (3, 3).
    """
    client = p.connect(p.DIRECT)
    try:
        p.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        plane = p.loadURDF("plane.urdf", physicsClientId=client)
        p.changeVisualShape(plane, -1, rgbaColor=[*rng.uniform(0.3, 1.0, 3), 1], physicsClientId=client)
        for _ in range(rng.integers(3, 7)):
            position = [rng.uniform(1.0, 3.0), rng.uniform(-1.2, 1.2), rng.uniform(0.05, 0.3)]
            orientation = p.getQuaternionFromEuler(rng.uniform(-math.pi, math.pi, 3).tolist())
            body = p.loadURDF(str(rng.choice(OBJECTS)), position, orientation, globalScaling=float(rng.uniform(1, 4)),
                              physicsClientId=client)
            p.changeVisualShape(body, -1, rgbaColor=[*rng.uniform(0, 1, 3), 1], physicsClientId=client)
        for _ in range(rng.integers(1, 4)):
            half = rng.uniform(0.1, 0.5, 3)
            shape = p.createVisualShape(p.GEOM_BOX, halfExtents=half.tolist(), rgbaColor=[*rng.uniform(0, 1, 3), 1],
                                        physicsClientId=client)
            p.createMultiBody(0, -1, shape, [rng.uniform(1.5, 4.0), rng.uniform(-2, 2), half[2]],
                              p.getQuaternionFromEuler([0, 0, rng.uniform(0, math.pi)]), physicsClientId=client)
        wall = p.createVisualShape(p.GEOM_BOX, halfExtents=[0.05, 4, 1.5], rgbaColor=[*rng.uniform(0.4, 0.9, 3), 1],
                                   physicsClientId=client)
        p.createMultiBody(0, -1, wall, [rng.uniform(4.5, 6.0), 0, 1.5], physicsClientId=client)
        eye = [rng.uniform(-0.5, 0.3), rng.uniform(-0.4, 0.4), rng.uniform(0.6, 1.5)]
        target = [rng.uniform(2.0, 3.0), rng.uniform(-0.5, 0.5), rng.uniform(0.0, 0.5)]
        vfov = float(rng.uniform(45, 65))
        light = [rng.uniform(-1, 1), rng.uniform(-1, 1), rng.uniform(1, 3)]
        return render_rgbd(client, width, height, eye, target, vfov, NEAR, FAR, light=light)
    finally:
        p.disconnect(client)


def scene_tensors(rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, frames: int,
                  teacher: CacheTeacher | None = None) -> dict[str, torch.Tensor]:
    """The teacher's six trajectories of one RGB-D input, as the tensors a shard stores."""
    trajectories = (teacher or CacheTeacher()).trajectories(rgb, depth, K, frames)
    return {
        "frames": torch.stack([(t.frames * 255).round().to(torch.uint8) for t in trajectories]),  # (V, F, H, W, 3)
        "depth": torch.stack([t.depth for t in trajectories]),  # (V, F, H, W)
        "masks": torch.stack([t.masks for t in trajectories]).to(torch.uint8),
        "world_to_cam": torch.stack([t.cameras.world_to_cam for t in trajectories]),  # (V, F, 4, 4)
        "K": torch.stack([t.cameras.K for t in trajectories]),  # (V, F, 3, 3)
        "view_index": torch.tensor([t.index for t in trajectories]),
        "input_rgb": torch.from_numpy(np.ascontiguousarray(rgb)),
        "input_depth": torch.from_numpy(depth.astype(np.float32)),
    }


def scene_shard(index: int, seed: int, width: int, height: int, frames: int) -> bytes:
    """The safetensors bytes of scene ``index``: a pure function of its arguments, wherever it runs."""
    rgb, depth, K = random_rgbd_scene(np.random.default_rng([seed, index]), width, height)
    tensors = scene_tensors(rgb, depth, K, frames, CacheTeacher())
    # One metadata entry: safetensors orders several by a per-process random hash, which would make the
    # bytes of a shard depend on the process that wrote it.
    provenance = json.dumps({"format": "lyra_sim.train.scene", "seed": seed, "index": index}, sort_keys=True)
    return save({k: v.contiguous() for k, v in tensors.items()}, metadata={"lyra_sim": provenance})


def make_dataset(output: str | os.PathLike, num_scenes: int = DatasetOptions.num_scenes,
                 held_out: int = DatasetOptions.held_out, width: int = DatasetOptions.width,
                 height: int = DatasetOptions.height, frames: int = DatasetOptions.frames,
                 seed: int = DatasetOptions.seed, progress: bool = True, workers: int = DatasetOptions.workers,
                 ray_address: str | None = DatasetOptions.ray_address) -> Path:
    """Write ``num_scenes`` shards (``scene_00000.safetensors``, ...) and a manifest; the last ``held_out``
    scenes form the evaluation split. Existing shards are kept, so an interrupted run resumes.

    ``workers`` > 1 or a ``ray_address`` makes the scenes on Ray (``lyra_sim.scale``); every shard is
    written here, atomically, and holds the same bytes whichever way it was made."""
    if width % 16 or height % 16:
        raise ValueError(f"width/height must be multiples of 16 (8x latents, 2x patches), got {width}x{height}")
    if (frames - 1) % 8:
        raise ValueError(f"frames: expected 1 + 8k, got {frames}")
    if not 0 <= held_out < num_scenes:
        raise ValueError(f"held_out: expected 0 <= held_out < num_scenes, got {held_out} of {num_scenes}")
    root = Path(output)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"scene_{i:05d}.safetensors" for i in range(num_scenes)]
    todo = [i for i, name in enumerate(names) if not (root / name).exists()]
    jobs = [(i, seed, width, height, frames) for i in todo]
    for job, shard in parallel_map(scene_shard, jobs, workers, ray_address, "teacher scenes", progress):
        with atomic_path(root / names[todo[job]]) as tmp:
            tmp.write_bytes(shard)
    manifest = {"format": "lyra_sim.train.dataset", "version": 1, "width": width, "height": height,
                "frames": frames, "seed": seed, "train": names[: num_scenes - held_out],
                "held_out": names[num_scenes - held_out:]}
    with atomic_path(root / MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return root / MANIFEST


class SceneDataset:
    """Shards of one split, loaded on demand."""

    def __init__(self, root: str | os.PathLike, split: str = "train"):
        self.root = Path(root)
        manifest_path = self.root / MANIFEST
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: not a dataset made by `lyra-sim make-dataset`")
        self.manifest = json.loads(manifest_path.read_text())
        if split not in ("train", "held_out"):
            raise ValueError(f"split: expected 'train' or 'held_out', got {split!r}")
        self.names = self.manifest[split]

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return load_file(str(self.root / self.names[index]))
