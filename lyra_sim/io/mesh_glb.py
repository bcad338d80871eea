"""Triangle meshes (colliders) as GLB in glTF's axes, with pygltflib.

open3d's GLB writer produces files that its own (ASSIMP) reader refuses ("buffer view out of range": the
index view is not padded to 4 bytes) and keeps the world's Z-up axes, where glTF is +Y up; so the
collider is written here: one indexed triangle primitive (uint32 indices, float positions with their
bounds), axes turned from "z_up" to glTF's (x forward, y left, z up -> +Z, +X, +Y), metres.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.gltf import FRAME_TO_GLTF

_FLOAT, _UINT = 5126, 5125
_TRIANGLES = 4


def write_mesh_glb(vertices: np.ndarray, faces: np.ndarray, path: str | os.PathLike) -> Path:
    """Write a Z-up (REP-103) triangle mesh as a GLB in glTF's axes, atomically."""
    import pygltflib

    path = Path(path)
    points = (np.asarray(vertices, np.float64) @ np.asarray(FRAME_TO_GLTF["z_up"]).T).astype("<f4")
    indices = np.ascontiguousarray(faces, "<u4").reshape(-1)
    blob = points.tobytes() + indices.tobytes()
    gltf = pygltflib.GLTF2(
        asset=pygltflib.Asset(version="2.0", generator="lyra_sim collider"), scene=0,
        scenes=[pygltflib.Scene(nodes=[0])], nodes=[pygltflib.Node(mesh=0, name="collider")],
        meshes=[pygltflib.Mesh(name="collider", primitives=[pygltflib.Primitive(
            attributes=pygltflib.Attributes(POSITION=0), indices=1, mode=_TRIANGLES)])],
        accessors=[
            pygltflib.Accessor(bufferView=0, componentType=_FLOAT, count=len(points), type="VEC3",
                               min=points.min(0).tolist(), max=points.max(0).tolist()),
            pygltflib.Accessor(bufferView=1, componentType=_UINT, count=len(indices), type="SCALAR"),
        ],
        bufferViews=[pygltflib.BufferView(buffer=0, byteOffset=0, byteLength=points.nbytes, target=34962),
                     pygltflib.BufferView(buffer=0, byteOffset=points.nbytes, byteLength=indices.nbytes,
                                          target=34963)],
        buffers=[pygltflib.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(blob)
    with atomic_path(path) as tmp:
        gltf.save_binary(str(tmp))
    return path


def read_mesh_glb(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) in Z-up axes, faces (F, 3)) of a GLB written by :func:`write_mesh_glb`."""
    import pygltflib

    path = Path(path)
    try:
        gltf = pygltflib.GLTF2.load_binary(str(path))
        primitive = gltf.meshes[0].primitives[0]
        position, index = gltf.accessors[primitive.attributes.POSITION], gltf.accessors[primitive.indices]
        blob = gltf.binary_blob()
        views = [gltf.bufferViews[a.bufferView] for a in (position, index)]
        points = np.frombuffer(blob, "<f4", position.count * 3, views[0].byteOffset or 0).reshape(-1, 3)
        dtype = {_UINT: "<u4", 5123: "<u2"}[index.componentType]
        faces = np.frombuffer(blob, dtype, index.count, views[1].byteOffset or 0).reshape(-1, 3)
    except Exception as exc:  # pygltflib and numpy raise many kinds on a broken file
        raise WorldFileError(f"{path}: not a readable collider GLB ({type(exc).__name__}: {exc})") from exc
    if len(faces) and int(faces.max()) >= len(points):
        raise WorldFileError(f"{path}: collider faces index past its {len(points)} vertices")
    return points.astype(np.float64) @ np.asarray(FRAME_TO_GLTF["z_up"]), faces.astype(np.int64)
