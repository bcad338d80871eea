"""Collision meshes as ``UsdGeom.Mesh`` with UsdPhysics collision APIs, and the physics scene."""

from __future__ import annotations

import os

import numpy as np
from pxr import Gf, Usd, UsdGeom, UsdPhysics, Vt

GRAVITY = 9.81


def mesh_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float, faces (F, 3) int) from an object with .vertices/.faces, a pair, or a mesh file."""
    if isinstance(mesh, str | os.PathLike):
        import open3d as o3d

        loaded = o3d.io.read_triangle_mesh(os.fspath(mesh))
        if len(loaded.triangles) == 0:
            raise ValueError(f"{mesh}: no triangles could be read from this mesh file")
        return np.asarray(loaded.vertices, np.float64), np.asarray(loaded.triangles, np.int64)
    if hasattr(mesh, "vertices") and hasattr(mesh, "faces"):
        vertices, faces = mesh.vertices, mesh.faces
    elif hasattr(mesh, "vertices") and hasattr(mesh, "triangles"):  # open3d TriangleMesh
        vertices, faces = mesh.vertices, mesh.triangles
    else:
        vertices, faces = mesh
    vertices = np.asarray(vertices, np.float64)
    faces = np.asarray(faces, np.int64)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or faces.ndim != 2 or faces.shape[1] != 3:
        raise ValueError(f"collision_mesh: expected vertices (V, 3) and faces (F, 3), got {vertices.shape}, "
                         f"{faces.shape}")
    if len(faces) == 0:
        raise ValueError("collision_mesh: the mesh has no faces")
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ValueError(f"collision_mesh: face indices outside [0, {len(vertices)})")
    if not np.isfinite(vertices).all():
        raise ValueError("collision_mesh: vertices contain NaN or infinite values")
    used, faces = np.unique(faces, return_inverse=True)  # drop vertices no face uses (validators flag them)
    return vertices[used], faces.reshape(-1, 3)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (unit; zero-area neighbourhoods get +Z)."""
    corner = vertices[faces[:, 0]]
    face_normals = np.cross(vertices[faces[:, 1]] - corner, vertices[faces[:, 2]] - corner)
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.where(length > 1e-12, normals / np.maximum(length, 1e-12), [0.0, 0.0, 1.0])


def write_collision_mesh(stage: Usd.Stage, path: str, vertices: np.ndarray, faces: np.ndarray,
                         approximation: str = "none") -> UsdGeom.Mesh:
    """A static triangle-mesh collider: no rigid body, guide purpose (not rendered), exact triangles."""
    mesh = UsdGeom.Mesh.Define(stage, path)
    mesh.CreatePointsAttr(Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(vertices, np.float32)))
    mesh.CreateFaceVertexCountsAttr(Vt.IntArray.FromNumpy(np.full(len(faces), 3, np.int32)))
    mesh.CreateFaceVertexIndicesAttr(Vt.IntArray.FromNumpy(np.ascontiguousarray(faces.reshape(-1), np.int32)))
    mesh.CreateNormalsAttr(Vt.Vec3fArray.FromNumpy(vertex_normals(vertices, faces).astype(np.float32)))
    mesh.SetNormalsInterpolation(UsdGeom.Tokens.vertex)
    mesh.CreateSubdivisionSchemeAttr(UsdGeom.Tokens.none)
    mesh.CreatePurposeAttr(UsdGeom.Tokens.guide)
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    mesh.CreateExtentAttr(Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))]))
    UsdPhysics.CollisionAPI.Apply(mesh.GetPrim())
    UsdPhysics.MeshCollisionAPI.Apply(mesh.GetPrim()).CreateApproximationAttr(approximation)
    return mesh


def write_physics_scene(stage: Usd.Stage, path: str) -> UsdPhysics.Scene:
    scene = UsdPhysics.Scene.Define(stage, path)
    scene.CreateGravityDirectionAttr(Gf.Vec3f(0.0, 0.0, -1.0))
    scene.CreateGravityMagnitudeAttr(GRAVITY)
    return scene
