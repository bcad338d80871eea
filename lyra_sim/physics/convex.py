"""Convex decomposition of collider pieces for objects that move (pybullet's V-HACD).

A static scene collides as one concave triangle mesh; a body that moves needs convex parts (PhysX and Bullet
simulate dynamic concave meshes only as convex hulls). ``object_parts`` splits the obstacle mesh into its
connected pieces, keeps those small enough to be objects, and decomposes each with V-HACD.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from lyra_sim.io.atomic import atomic_path

VHACD_RESOLUTION = 100_000  # voxels of V-HACD's voxelisation (its default)
OBJECT_MAX_EXTENT = 1.5  # metres: larger connected pieces (walls, the room) are not objects


def _write_obj(path: Path, vertices: np.ndarray, faces: np.ndarray) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in vertices]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")


def _read_obj_parts(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """The ``o`` objects of an OBJ file (global vertex numbering), each as (vertices, faces)."""
    parts, vertices, faces = [], [], []
    for line in path.read_text().splitlines():
        if line.startswith("o ") and faces:
            parts.append(faces)
            faces = []
        elif line.startswith("v "):
            vertices.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("f "):
            faces.append([int(token.split("/")[0]) - 1 for token in line.split()[1:4]])
    if faces:
        parts.append(faces)
    vertices = np.asarray(vertices, np.float64)
    out = []
    for part in parts:
        used, inverse = np.unique(np.asarray(part, np.int64), return_inverse=True)
        out.append((vertices[used], inverse.reshape(-1, 3)))
    return out


def convex_decomposition(vertices: np.ndarray, faces: np.ndarray,
                         resolution: int = VHACD_RESOLUTION) -> list[tuple[np.ndarray, np.ndarray]]:
    """Convex parts (vertices, faces) of a triangle mesh, by pybullet's V-HACD."""
    from lyra_sim.physics.pybullet_quiet import import_pybullet

    p = import_pybullet()
    if len(faces) == 0:
        return []
    with tempfile.TemporaryDirectory(prefix="lyra-vhacd-") as tmp:
        source, target, log = Path(tmp) / "in.obj", Path(tmp) / "out.obj", Path(tmp) / "log.txt"
        _write_obj(source, vertices, faces)
        # V-HACD prints its progress on the C++ stdout; send it to the log instead.
        stdout = os.dup(1)
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            try:
                p.vhacd(str(source), str(target), str(log), resolution=int(resolution))
            finally:
                os.dup2(stdout, 1)
                os.close(stdout)
        return _read_obj_parts(target) if target.exists() else []


def object_pieces(vertices: np.ndarray, faces: np.ndarray,
                  max_extent: float = OBJECT_MAX_EXTENT) -> list[tuple[np.ndarray, np.ndarray]]:
    """The connected pieces (vertices, faces) of the mesh whose bounding box is under ``max_extent`` on every axis
    (objects, not walls or the room)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(faces) == 0:
        return []
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    graph = coo_matrix((np.ones(len(edges)), (edges[:, 0], edges[:, 1])), shape=(len(vertices),) * 2)
    _, label = connected_components(graph, directed=False)
    pieces = []
    for piece in np.unique(label[faces[:, 0]]):
        piece_faces = faces[label[faces[:, 0]] == piece]
        used, inverse = np.unique(piece_faces, return_inverse=True)
        points = vertices[used]
        if (points.max(axis=0) - points.min(axis=0) < max_extent).all() and len(piece_faces) >= 4:
            pieces.append((points, inverse.reshape(-1, 3)))
    return pieces


def object_parts(vertices: np.ndarray, faces: np.ndarray, max_extent: float = OBJECT_MAX_EXTENT,
                 resolution: int = VHACD_RESOLUTION) -> list[list[tuple[np.ndarray, np.ndarray]]]:
    """Convex parts of each object piece of the mesh (``object_pieces``; one list of parts per object)."""
    return [convex_decomposition(v, f, resolution) for v, f in object_pieces(vertices, faces, max_extent)]


def save_parts(path: str | os.PathLike, objects: list[list[tuple[np.ndarray, np.ndarray]]]) -> Path:
    """An OBJ with one ``o object<i>_part<j>`` per convex part, written atomically."""
    path = Path(path)
    lines, base = [], 1
    for i, parts in enumerate(objects):
        for j, (v, f) in enumerate(parts):
            lines.append(f"o object{i}_part{j}")
            lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
            lines += [f"f {a + base} {b + base} {c + base}" for a, b, c in f]
            base += len(v)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines) + "\n")
    return path
