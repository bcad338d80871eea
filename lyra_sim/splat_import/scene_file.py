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

import numpy as np

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


def _scene(path: Path) -> dict:
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
    from lyra_sim.io import load_world

    path = Path(path)
    if frame not in (None, "z_up") or meters_per_unit not in (None, 1.0):
        raise WorldFileError(f"{path}: a scene is aligned (z_up, metres); frame and scale cannot be overridden")
    data = _scene(path)
    world = load_world(path.parent / data["world"])
    world.info = {**world.info, "alignment": data["alignment"]}
    return world


def read_scene_collider(path: str | os.PathLike):
    """The collider of a ``scene.json`` as a CollisionMesh (obstacle faces first, then the floor at floor_z)."""
    from lyra_sim.io.mesh_glb import read_mesh_glb
    from lyra_sim.physics.proxy import CollisionMesh

    path = Path(path)
    data = _scene(path)
    vertices, faces = read_mesh_glb(path.parent / data["collider"])
    if len(faces) == 0:
        raise WorldFileError(f"{path}: the collider {data['collider']} has no triangles")
    floor_z = data.get("floor_z")
    if floor_z is None:
        return CollisionMesh(vertices, faces, len(faces), None)
    on_floor = (np.abs(vertices[faces][:, :, 2] - float(floor_z)) < 1e-5).all(axis=1)
    ordered = np.concatenate([faces[~on_floor], faces[on_floor]])
    return CollisionMesh(vertices, ordered, int((~on_floor).sum()), float(floor_z))
