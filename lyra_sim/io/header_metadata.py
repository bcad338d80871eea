"""What lyra_sim knows about a world, as PLY header comments (plain and compressed PLY share them).

Two comment lines, which other PLY readers skip like any comment:
- ``lyra_sim frame=<opencv|z_up> meters_per_unit=<float|none>``: the world's frame and scale;
- ``lyra_sim_info <JSON>``: ``world.info`` (intrinsics, image size, depth source, metric flag, ...), on one
  ASCII line, so a ``.ply`` world renders its input view like a ``.safetensors`` one.

World info read from a file is untrusted: :func:`check_info` (used by every reader that restores info: PLY,
compressed PLY, native) checks the type and range of each field the package acts on, naming file and field.
"""

from __future__ import annotations

import json
import math

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.guards import parse_json, short_repr
from lyra_sim.world import FRAMES

#: Largest side of a recorded image (the generating camera); the render size it implies is capped separately.
MAX_IMAGE_SIDE = 65_535

FRAME_COMMENT_KEY = "lyra_sim"
INFO_COMMENT_KEY = "lyra_sim_info"
MAX_INFO_BYTES = 64 * 1024  # far above what generate_world records; a header stays small


def world_comments(world) -> list[str]:
    """Header comment lines recording ``world``'s frame, scale and info."""
    mpu = "none" if world.meters_per_unit is None else repr(float(world.meters_per_unit))
    return [f"{FRAME_COMMENT_KEY} frame={world.frame} meters_per_unit={mpu}", *info_comments(world.info)]


def info_comments(info: dict) -> list[str]:
    """The ``lyra_sim_info`` line for ``info`` (none when it is empty or too big to belong in a header)."""
    if not info:
        return []
    text = json.dumps(info, ensure_ascii=True, separators=(",", ":"), default=str)
    if len(text) > MAX_INFO_BYTES:
        return []
    return [f"{INFO_COMMENT_KEY} {text}"]


def frame_scale_from_comments(comments: list[str]) -> dict[str, str]:
    """``{"frame": ..., "meters_per_unit": ...}`` as recorded (strings), {} for files from other tools."""
    meta = {}
    for comment in comments:
        words = comment.split()
        if words and words[0] == FRAME_COMMENT_KEY:
            for item in words[1:]:
                key, _, value = item.partition("=")
                meta[key] = value
    return meta


def recorded_frame_scale(comments: list[str], where: str) -> tuple[str | None, float | None]:
    """(frame, meters_per_unit) recorded by :func:`world_comments`, checked; (None, None) for other tools' files."""
    meta = frame_scale_from_comments(comments)
    frame = meta.get("frame")
    if frame is not None and frame not in FRAMES:
        raise WorldFileError(f"{where}: header comment frame={short_repr(frame)} is not one of {FRAMES}")
    text = meta.get("meters_per_unit", "none")
    if text == "none":
        return frame, None
    try:
        scale = float(text)
    except ValueError:
        scale = math.nan
    if not (math.isfinite(scale) and scale > 0):
        raise WorldFileError(f"{where}: header comment meters_per_unit={short_repr(text)} is not a positive number")
    return frame, scale


def info_from_comments(comments: list[str], where: str = "PLY header") -> dict:
    """The ``info`` dict recorded by :func:`info_comments`, checked (:func:`check_info`); {} when absent or not a
    JSON object (unreadable provenance is ignored, as in files from other tools)."""
    for comment in comments:
        key, _, text = comment.partition(" ")
        if key == INFO_COMMENT_KEY:
            try:
                info = parse_json(text, INFO_COMMENT_KEY, WorldFileError)
            except WorldFileError:
                return {}
            return check_info(info, where) if isinstance(info, dict) else {}
    return {}


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _matrix(value, rows: int, cols: int) -> bool:
    return isinstance(value, list) and len(value) == rows and all(
        isinstance(row, list) and len(row) == cols and all(_number(v) for v in row) for row in value)


def check_info(info: dict, where: str) -> dict:
    """``info`` after checking the fields the package acts on; a bad one is a WorldFileError naming ``where``
    (the file) and the field. Fields it does not act on are kept as they are."""

    def bad(field: str, expected: str):
        raise WorldFileError(f"{where}: world info field {field!r} must be {expected}, got "
                             f"{short_repr(json.dumps(info[field], default=str))}")

    size = info.get("image_size")
    if "image_size" in info and not (isinstance(size, list) and len(size) == 2 and all(
            isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= MAX_IMAGE_SIDE for v in size)):
        bad("image_size", f"[width, height] of integers in 1..{MAX_IMAGE_SIDE}")
    if "intrinsics" in info:
        K = info["intrinsics"]
        if not _matrix(K, 3, 3) or not (K[0][0] > 0 and K[1][1] > 0) or K[2] != [0, 0, 1]:
            bad("intrinsics", "a 3x3 pinhole matrix of finite numbers with positive focal lengths")
    for field in ("target_frame", "voxel_size", "floor_band", "moving_area_m2"):
        if field in info and not _number(info[field]):
            bad(field, "a finite number")
    for field in ("completion", "odometry"):
        if field in info and not isinstance(info[field], dict):
            bad(field, "an object")
    if "input_notes" in info and not (isinstance(info["input_notes"], list)
                                      and all(isinstance(n, str) for n in info["input_notes"])):
        bad("input_notes", "a list of strings")
    if "alignment" in info:
        alignment = info["alignment"]
        if not isinstance(alignment, dict) or not all(
                _matrix(alignment.get(k), 4, 4) for k in ("transform", "camera_to_world") if k in alignment):
            bad("alignment", "an object whose transform and camera_to_world are 4x4 matrices of finite numbers")
    if "reference_cam_to_world" in info and not _matrix(info["reference_cam_to_world"], 4, 4):
        bad("reference_cam_to_world", "a 4x4 matrix of finite numbers")
    return info
