"""What lyra_sim knows about a world, as PLY header comments (plain and compressed PLY share them).

Two comment lines, which other PLY readers skip like any comment:
- ``lyra_sim frame=<opencv|z_up> meters_per_unit=<float|none>``: the world's frame and scale;
- ``lyra_sim_info <JSON>``: ``world.info`` (intrinsics, image size, depth source, metric flag, ...), on one
  ASCII line, so a ``.ply`` world renders its input view like a ``.safetensors`` one.
"""

from __future__ import annotations

import json

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.guards import parse_json

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


def info_from_comments(comments: list[str]) -> dict:
    """The ``info`` dict recorded by :func:`info_comments` ({} when absent or not a JSON object)."""
    for comment in comments:
        key, _, text = comment.partition(" ")
        if key == INFO_COMMENT_KEY:
            try:
                info = parse_json(text, INFO_COMMENT_KEY, WorldFileError)
            except WorldFileError:  # unreadable provenance is ignored, as in files from other tools
                return {}
            return info if isinstance(info, dict) else {}
    return {}
