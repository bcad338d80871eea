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
DEFAULT_SIZE = (320, 240)  # render size when the world records no generating image
#: The camera-path JSON format (``--path cams.json``), for help texts and docs.
JSON_CAMERA_FORMAT = (
    'JSON camera file: {"K": 3x3 or a list of 3x3, "world_to_cam": 4x4 or a list of 4x4 (OpenCV: x right, '
    'y down, z forward; maps world points into the camera), "width": W, "height": H} (width/height optional, '
    "default the render size); one camera per world_to_cam entry"
)


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


def _lyra_indices(spec: str) -> tuple[int, ...]:
    """Trajectory indices of "lyra:K" or "lyra:A..B" (inclusive), each in 0..5."""
    text = spec.split(":", 1)[1]
    first, dots, last = text.partition("..")
    if not first.isdigit() or (dots and not last.isdigit()):
        raise CameraError(f"--path: expected lyra:K or lyra:A..B with K, A, B in 0..5, got {spec!r}")
    indices = tuple(range(int(first), int(last if dots else first) + 1))
    if not indices or any(i not in LYRA_TRAJECTORIES for i in indices):
        raise CameraError(f"--path: Lyra trajectories are lyra:0 .. lyra:5 (or a range like lyra:0..5), got {spec!r}")
    return indices


def camera_path(spec: str, K: torch.Tensor, width: int, height: int, frames: int, depth: float) -> Camera:
    """A batch of cameras from a path spec, scaled to a scene ``depth`` in front of the origin camera.

    ``spec``: "fly" (a gentle circle moving forward; its first frame is the input view), "lyra:K" (Lyra's
    trajectory K in 0..5), "lyra:A..B" (trajectories A to B one after the other, e.g. lyra:0..5 for all six),
    or the path of a JSON camera file (see :data:`JSON_CAMERA_FORMAT`). ``frames`` cameras per path.
    """
    if int(frames) != frames or frames < 1:
        raise CameraError(f"frames: expected a positive number of frames, got {frames}")
    if spec == "fly":
        return fly_through(K, width, height, num_frames=frames, look_at_depth=depth, radius=FLY_RADIUS * depth,
                           forward=FLY_FORWARD * depth)
    if spec.startswith("lyra:"):
        paths = lyra_trajectories(K, width, height, num_frames=frames, scene_scale=depth, order=_lyra_indices(spec))
        if len(paths) == 1:
            return paths[0]
        return Camera(torch.cat([c.K for c in paths]), torch.cat([c.world_to_cam for c in paths]), width, height)
    path = Path(spec)
    if not path.is_file():
        raise CameraError(f"--path: expected 'fly', 'lyra:K', 'lyra:A..B' or a JSON camera file, got {spec!r}")
    try:
        data = json.loads(path.read_text())
        return Camera(np.asarray(data["K"]), np.asarray(data["world_to_cam"]), data.get("width", width),
                      data.get("height", height))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise CameraError(f"--path {path}: expected JSON with 'K' and 'world_to_cam' ({exc})") from exc


def render_size(world: GaussianWorld | DynamicGaussianWorld, width: int | None = None,
                height: int | None = None) -> tuple[int, int]:
    """The image size to render: as given; a missing side from the generating image (its size, or its aspect
    ratio when only one side is given); else 320 x 240."""
    recorded = _reference(world).info.get("image_size")
    src_w, src_h = (int(recorded[0]), int(recorded[1])) if recorded else DEFAULT_SIZE
    if width is None and height is None:
        return src_w, src_h
    if width is None:
        return max(1, round(height * src_w / src_h)), int(height)
    if height is None:
        return int(width), max(1, round(width * src_h / src_w))
    return int(width), int(height)


def world_camera_path(world: GaussianWorld | DynamicGaussianWorld, spec: str, width: int | None, height: int | None,
                      frames: int, fov: float | None = None) -> Camera:
    """``camera_path`` for ``world``: its rendering intrinsics at width x height (None: see :func:`render_size`)
    and its scene depth."""
    width, height = render_size(world, width, height)
    K = render_intrinsics(world, width, height, fov)
    return camera_path(spec, K, width, height, frames, scene_depth(world))
