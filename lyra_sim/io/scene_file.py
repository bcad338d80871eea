"""``scene.json``: a sim-ready scene on disk (written by ``lyra-sim simready``).

It names the aligned world (``world.usdc``) and the collider (``collider.glb``) beside it and records how
they were made (source file, convention, alignment, floater and agreement reports). ``load_world`` reads
it as the aligned world; ``prepare_scene`` / ``make_env`` and the ROS node take it as a source and reuse its
collider instead of building one.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.guards import MAX_JSON_BYTES, read_json

SCENE_FILE = "scene.json"
FORMAT_KEY = "lyra_sim_scene"
FORMAT_VERSION = 1


def write_scene_file(path: Path, world: str, collider: str, source: Path, convention, alignment: dict,
                     floor_z: float | None, reports: dict) -> Path:
    """Write ``scene.json`` atomically; ``world`` and ``collider`` are file names beside it."""
    data = {FORMAT_KEY: FORMAT_VERSION, "world": world, "collider": collider, "floor_z": floor_z,
            "source": str(source), "convention": asdict(convention), "alignment": alignment, **reports}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, default=str))
    return path


def is_scene_file(path: str | os.PathLike) -> bool:
    """True when ``path`` is a lyra_sim ``scene.json``."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return False
        return FORMAT_KEY in json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, RecursionError):
        return False


def scene_record(path: Path) -> dict:
    """The checked contents of a ``scene.json`` (its world and collider are files beside it)."""
    data = read_json(path, "scene", WorldFileError)
    if not isinstance(data, dict) or data.get(FORMAT_KEY) != FORMAT_VERSION:
        raise WorldFileError(f"{path}: not a lyra_sim scene.json (version {FORMAT_VERSION})")
    for key in ("world", "collider"):
        name = data.get(key)
        target = (path.parent / str(name)).resolve() if isinstance(name, str) else None
        if target is None or target.parent != path.parent.resolve() or not target.is_file():
            raise WorldFileError(f"{path}: its {key} {name!r} is not a file beside it")
    if not isinstance(data.get("alignment"), dict):
        raise WorldFileError(f"{path}: no alignment report")
    return data


def read_scene_world(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None):
    """The aligned world a ``scene.json`` names (Z up, floor at z = 0, metres), its alignment in ``info``."""
    from lyra_sim.io import load_world  # the package this module is registered in: imported when a scene is read

    path = Path(path)
    if frame not in (None, "z_up") or meters_per_unit not in (None, 1.0):
        raise WorldFileError(f"{path}: a scene is aligned (z_up, metres); frame and scale cannot be overridden")
    data = scene_record(path)
    world = load_world(path.parent / data["world"])
    world.info = {**world.info, "alignment": data["alignment"]}
    return world
