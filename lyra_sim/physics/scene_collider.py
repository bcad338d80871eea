"""The collider of a ``scene.json`` (``lyra_sim.io.scene_file``, written by ``lyra-sim simready``) as a
``CollisionMesh``, so ``prepare_scene`` and the ROS node reuse it instead of building one."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.mesh_glb import read_mesh_glb
from lyra_sim.io.scene_file import scene_record
from lyra_sim.physics.proxy import CollisionMesh


def read_scene_collider(path: str | os.PathLike):
    """The collider of a ``scene.json`` as a CollisionMesh (obstacle faces first, then the floor at floor_z)."""
    path = Path(path)
    data = scene_record(path)
    vertices, faces = read_mesh_glb(path.parent / data["collider"])
    if len(faces) == 0:
        raise WorldFileError(f"{path}: the collider {data['collider']} has no triangles")
    floor_z = data.get("floor_z")
    if floor_z is None:
        return CollisionMesh(vertices, faces, len(faces), None)
    on_floor = (np.abs(vertices[faces][:, :, 2] - float(floor_z)) < 1e-5).all(axis=1)
    ordered = np.concatenate([faces[~on_floor], faces[on_floor]])
    return CollisionMesh(vertices, ordered, int((~on_floor).sum()), float(floor_z))
