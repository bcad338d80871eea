"""Camera paths for rendering a world: intrinsics at a requested size, and path specs ("fly", "lyra:K", JSON).

The path shapes themselves live in :mod:`lyra_sim.trajectories`; this module chooses one for a
given world (its scene depth and generating camera) from the short specs the CLI accepts.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from lyra_sim.camera import Camera, CameraError
from lyra_sim.trajectories import LYRA_TRAJECTORIES, fly_through, lyra_trajectories
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

DEFAULT_FOV_DEG = 60.0  # horizontal field of view when the world records no generating camera
FLY_RADIUS = 0.15  # fly-through circle radius, as a fraction of the scene depth
FLY_FORWARD = 0.25  # fly-through forward travel, as a fraction of the scene depth


def _reference(world: GaussianWorld | DynamicGaussianWorld) -> GaussianWorld:
    return world.worlds[0] if isinstance(world, DynamicGaussianWorld) else world


def render_intrinsics(world: GaussianWorld | DynamicGaussianWorld, width: int, height: int,
                      fov: float | None = None) -> torch.Tensor:
    """K (3, 3) for rendering at width x height.

    The generating camera's K rescaled to the new size when the world records one (``info["intrinsics"]``
    and ``info["image_size"]``) and no ``fov`` is asked for; else a pinhole of ``fov`` degrees
    (default 60) horizontally, centred.
    """
    info = _reference(world).info
    if fov is None and "intrinsics" in info and "image_size" in info:
        K = torch.tensor(info["intrinsics"], dtype=torch.float32)
        src_w, src_h = info["image_size"]
        K[0] *= width / src_w
        K[1] *= height / src_h
        K[2] = torch.tensor([0.0, 0.0, 1.0])
        return K
    return Camera.intrinsics_from_fov(width, height, fov or DEFAULT_FOV_DEG)


def scene_depth(world: GaussianWorld | DynamicGaussianWorld) -> float:
    """Median z of the Gaussians in front of the origin camera (1.0 when none is)."""
    z = _reference(world).means[:, 2]
    z = z[z > 0]
    return float(z.median()) if len(z) else 1.0


def camera_path(spec: str, K: torch.Tensor, width: int, height: int, frames: int, depth: float) -> Camera:
    """A batch of ``frames`` cameras from a path spec, scaled to a scene ``depth`` in front of the origin camera.

    ``spec``: "fly" (a gentle circle moving forward), "lyra:0" .. "lyra:5" (Lyra's trajectories), or the
    path of a JSON file with "K" and "world_to_cam" (one 4x4 or a list of them) and optional "width"/"height".
    """
    if spec == "fly":
        return fly_through(K, width, height, num_frames=frames, look_at_depth=depth, radius=FLY_RADIUS * depth,
                           forward=FLY_FORWARD * depth)
    if spec.startswith("lyra:"):
        index_text = spec.split(":", 1)[1]
        if not index_text.isdigit() or int(index_text) not in LYRA_TRAJECTORIES:
            raise CameraError(f"--path: Lyra trajectories are lyra:0 .. lyra:5, got {spec}")
        return lyra_trajectories(K, width, height, num_frames=frames, scene_scale=depth, order=(int(index_text),))[0]
    path = Path(spec)
    if not path.is_file():
        raise CameraError(f"--path: expected 'fly', 'lyra:K' or a JSON camera file, got {spec!r}")
    try:
        data = json.loads(path.read_text())
        return Camera(np.asarray(data["K"]), np.asarray(data["world_to_cam"]), data.get("width", width),
                      data.get("height", height))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"--path {path}: expected JSON with 'K' and 'world_to_cam' ({exc})") from exc


def world_camera_path(world: GaussianWorld | DynamicGaussianWorld, spec: str, width: int, height: int,
                      frames: int, fov: float | None = None) -> Camera:
    """``camera_path`` for ``world``: its rendering intrinsics at width x height and its scene depth."""
    K = render_intrinsics(world, width, height, fov)
    return camera_path(spec, K, width, height, frames, scene_depth(world))
