"""Ray casting against a triangle mesh (open3d's RaycastingScene, Embree underneath)."""

from __future__ import annotations

import numpy as np


def cast_rays(vertices: np.ndarray, faces: np.ndarray, origins: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance (N,) along each unit direction to the first triangle hit, inf where the ray hits nothing."""
    import open3d as o3d
    import open3d.core as o3c

    if len(faces) == 0:
        return np.full(len(origins), np.inf)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3c.Tensor(np.ascontiguousarray(vertices, np.float32)),
                        o3c.Tensor(np.ascontiguousarray(faces, np.uint32)))
    rays = np.ascontiguousarray(np.concatenate([origins, directions], axis=1), np.float32)
    return scene.cast_rays(o3c.Tensor(rays))["t_hit"].numpy().astype(np.float64)
