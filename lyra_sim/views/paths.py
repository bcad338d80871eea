"""Camera paths for rendering a world: intrinsics at a requested size, and path specs ("fly", "lyra:K", JSON).

The path shapes themselves live in :mod:`lyra_sim.trajectories`; this module chooses one for a
given world (its scene depth and generating camera) from the short specs the CLI accepts.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch

from lyra_sim.camera import DEFAULT_FOV_DEG, Camera, CameraError
from lyra_sim.defaults import JSON_CAMERA_FORMAT, PATH_FRAMES  # noqa: F401  (re-exported: callers import it from here too)
from lyra_sim.io.guards import MAX_PATH_CAMERAS, check_count, read_json
from lyra_sim.provenance import ProvenanceError, recorded_image_size, recorded_intrinsics
from lyra_sim.trajectories import LYRA_TRAJECTORIES, fly_through, lyra_trajectories
from lyra_sim.views.options import CameraPathOptions
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

FLY_RADIUS = 0.15  # fly-through circle radius, as a fraction of the scene depth
FLY_FORWARD = 0.25  # fly-through forward travel, as a fraction of the scene depth
MAX_RENDER_PIXELS = 7680 * 4320  # 8K: larger frames are refused before a renderer allocates them
MAX_RENDER_SIDE = 16_384  # video encoders and image viewers stop here
#: A size recorded in a world file is used up to this many pixels; larger is scaled down (--width/--height choose).
MAX_RECORDED_RENDER_PIXELS = 1920 * 1080
MAX_CAMERA_FILE_BYTES = 8 << 20  # 20,000 cameras of 4x4 and 3x3 in compact JSON fit in ~6 MB
DEFAULT_SIZE = (320, 240)  # render size when the world records no generating image
log = logging.getLogger(__name__)


def render_intrinsics(world: GaussianWorld | DynamicGaussianWorld, width: int, height: int,
                      fov: float | None = None) -> torch.Tensor:
    """K (3, 3) for rendering at width x height.

    The generating camera's K rescaled to the new size when the world records one (``lyra_sim.provenance``)
    and no ``fov`` is asked for; else a pinhole of ``fov`` degrees
    (default 60) horizontally, centred.
    """
    check_frame_size(width, height, "render size")
    if fov is None:
        try:
            K, size = recorded_intrinsics(world.info), recorded_image_size(world.info)
        except ProvenanceError as exc:
            raise CameraError(f"world info: {exc}; pass a field of view") from exc
        if K is not None and size is not None:
            return Camera(torch.from_numpy(K).float(), torch.eye(4), *size).resized(width, height).K[0]
    return Camera.intrinsics_from_fov(width, height, fov or DEFAULT_FOV_DEG)


def check_frame_size(width, height, where: str) -> None:
    """Refuse frame sizes that are not positive integers or exceed MAX_RENDER_PIXELS (before anything allocates)."""
    if isinstance(width, bool) or isinstance(height, bool) or not isinstance(width, int) \
            or not isinstance(height, int) or width < 1 or height < 1:
        raise CameraError(f"{where}: width and height must be positive integers, got {width!r}x{height!r}")
    if max(width, height) > MAX_RENDER_SIDE:
        raise CameraError(f"{where}: {width}x{height} frames exceed the limit of {MAX_RENDER_SIDE:,} pixels a side")
    if width * height > MAX_RENDER_PIXELS:
        raise CameraError(f"{where}: {width}x{height} frames exceed the limit of {MAX_RENDER_PIXELS:,} pixels (8K)")


def load_camera_file(path: str | Path, width: int, height: int) -> Camera:
    """Cameras from a JSON file: "K" (3x3 or a list), "world_to_cam" (4x4 or a list), optional "width"/"height".

    The file's size and nesting, the number of cameras and the frame size are checked before anything is
    built; every error names the file.
    """
    path = Path(path)
    data = read_json(path, "--path", CameraError, max_bytes=MAX_CAMERA_FILE_BYTES)
    where = f"--path {path}"
    if not isinstance(data, dict):
        raise CameraError(f"{where}: expected a JSON object with 'K' and 'world_to_cam'")
    for key in ("K", "world_to_cam"):  # counted before numpy converts nested lists (seconds for huge ones)
        if isinstance(data.get(key), list):
            check_count(len(data[key]), MAX_PATH_CAMERAS, f"{where}: {key!r} entries", "split the path", CameraError)
    try:
        K = np.asarray(data["K"], dtype=np.float64)
        world_to_cam = np.asarray(data["world_to_cam"], dtype=np.float64)
    except KeyError as exc:
        raise CameraError(f"{where}: expected JSON with 'K' and 'world_to_cam' (missing {exc})") from exc
    except (TypeError, ValueError, OverflowError) as exc:
        raise CameraError(f"{where}: 'K' and 'world_to_cam' must be arrays of numbers ({exc})") from exc
    frame_w, frame_h = data.get("width", width), data.get("height", height)
    check_frame_size(frame_w, frame_h, where)
    try:
        return Camera(K, world_to_cam, frame_w, frame_h)
    except CameraError as exc:
        raise CameraError(f"{where}: {exc}") from exc


def scene_depth(world: GaussianWorld | DynamicGaussianWorld) -> float:
    """Median z of the Gaussians in front of the origin camera (1.0 when none is)."""
    z = world.keyframes[0].means[:, 2]
    z = z[z > 0]
    return float(z.median()) if len(z) else 1.0


def _lyra_indices(spec: str) -> tuple[int, ...]:
    """Trajectory indices of "lyra:K" or "lyra:A..B" (inclusive), each in 0..5."""
    text = spec.split(":", 1)[1]
    first, dots, last = text.partition("..")
    if not first.isdigit() or (dots and not last.isdigit()) or len(first) > 3 or len(last) > 3:
        raise CameraError(f"--path: expected lyra:K or lyra:A..B with K, A, B in 0..5, got {spec[:40]!r}")
    a, b = int(first), int(last if dots else first)
    indices = tuple(range(a, b + 1)) if a in LYRA_TRAJECTORIES and b in LYRA_TRAJECTORIES else ()
    if not indices:
        raise CameraError(f"--path: Lyra trajectories are lyra:0 .. lyra:5 (or a range like lyra:0..5), got {spec!r}")
    return indices


def camera_path(spec: str, K: torch.Tensor, width: int, height: int, frames: int, depth: float) -> Camera:
    """A batch of cameras from a path spec, scaled to a scene ``depth`` in front of the origin camera.

    ``spec``: "fly" (a gentle circle moving forward; its first frame is the input view), "lyra:K" (Lyra's
    trajectory K in 0..5), "lyra:A..B" (trajectories A to B one after the other, e.g. lyra:0..5 for all six),
    or the path of a JSON camera file (see :data:`JSON_CAMERA_FORMAT`). ``frames`` cameras per path.
    """
    if isinstance(frames, bool) or not isinstance(frames, (int, float)) or not math.isfinite(frames) \
            or int(frames) != frames or frames < 1:
        raise CameraError(f"frames: expected a positive number of frames, got {frames}")
    paths = len(_lyra_indices(spec)) if spec.startswith("lyra:") else 1
    check_count(int(frames) * paths, MAX_PATH_CAMERAS, "--frames: cameras on the path", "ask for fewer frames",
                CameraError)
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
    return load_camera_file(path, width, height)


def render_size(world: GaussianWorld | DynamicGaussianWorld, width: int | None = None,
                height: int | None = None) -> tuple[int, int]:
    """The image size to render: as given; a missing side from the generating image (its size, or its aspect
    ratio when only one side is given); else 320 x 240."""
    try:
        recorded = recorded_image_size(world.info)
    except ProvenanceError as exc:
        raise CameraError(f"world info: {exc}; pass --width and --height") from exc
    src_w, src_h = recorded or DEFAULT_SIZE
    if width is None and height is None:
        if src_w * src_h > MAX_RECORDED_RENDER_PIXELS:  # a file's header does not choose an 8K render of every frame
            factor = math.sqrt(MAX_RECORDED_RENDER_PIXELS / (src_w * src_h))
            log.warning("the world records a %dx%d image; rendering at %dx%d (pass width/height for more)",
                        src_w, src_h, max(1, int(src_w * factor)), max(1, int(src_h * factor)))
            return max(1, int(src_w * factor)), max(1, int(src_h * factor))
        return src_w, src_h
    if width is None:
        return max(1, round(height * src_w / src_h)), int(height)
    if height is None:
        return int(width), max(1, round(width * src_h / src_w))
    return int(width), int(height)


def world_camera_path(world: GaussianWorld | DynamicGaussianWorld, spec: str,
                      width: int | None = CameraPathOptions.width, height: int | None = CameraPathOptions.height,
                      frames: int = CameraPathOptions.frames, fov: float | None = CameraPathOptions.fov) -> Camera:
    """``camera_path`` for ``world``: its rendering intrinsics at width x height (None: see :func:`render_size`)
    and its scene depth."""
    width, height = render_size(world, width, height)
    K = render_intrinsics(world, width, height, fov)
    return camera_path(spec, K, width, height, frames, scene_depth(world))
