"""TSDF fusion of depth views (open3d's VoxelBlockGrid), the one implementation the capture pipeline and the
collision proxies share.

Pixel centres: the package's K puts pixel (u, v)'s centre at (u + 0.5, v + 0.5) (gsplat, pixel_directions).
open3d's ``integrate`` projects each voxel with K and reads the depth pixel ``int(u), int(v)``: pixel i covers
[i, i + 1), its centre at i + 0.5, the package's convention. So K goes to open3d unchanged (the capture
fusion used to shift the principal point by half a pixel, which put its surfaces half a pixel off:
tests/test_colliders.py measures both against an analytic plane).
(The legacy ScalableTSDFVolume of open3d 0.20 extracts no surface at all; the tensor grid works.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

TRUNCATION_VOXELS = 4.0  # signed distances are truncated at this many voxels
BLOCK_RESOLUTION = 8  # voxels per block side
ALLOCATION_VOXELS = 8.0  # blocks are allocated this many voxels around each depth (open3d's default)
#: Each view adds weight 1 and open3d keeps voxels whose weight is strictly above the threshold: 0.5 keeps
#: what one view saw (open3d's default of 3 drops the edges of a capture).
WEIGHT_THRESHOLD = 0.5


@dataclass
class DepthView:
    """One depth image: metres (H, W), 0 = no measurement; K (3, 3) with pixel centres at +0.5; world_to_cam."""

    depth: np.ndarray
    K: np.ndarray
    world_to_cam: np.ndarray

    def pixels_of(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(z, column, row, inside) of world ``points`` (N, 3) in this view: camera depth, the integer pixel each
        falls in (floats; meaningful where ``inside``), and whether it lies in front of the camera and in the
        image."""
        pc = points @ self.world_to_cam[:3, :3].T + self.world_to_cam[:3, 3]
        z = pc[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.floor(self.K[0, 0] * pc[:, 0] / z + self.K[0, 2])
            v = np.floor(self.K[1, 1] * pc[:, 1] / z + self.K[1, 2])
        h, w = self.depth.shape[:2]
        inside = (z > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
        return z, u, v, inside


def fuse_views(views: Sequence[DepthView], voxel_size: float, depth_max: float,
               truncation_voxels: float = TRUNCATION_VOXELS, progress: bool = False, desc: str = "fusing"):
    """An open3d VoxelBlockGrid ("tsdf", "weight") holding the fused views, or None when no view has depth.

    The grid is sized to the blocks the views touch, so memory follows the scene, not a fixed cap.
    """
    import open3d as o3d
    import open3d.core as o3c

    prepared = []
    for view in views:
        depth = np.ascontiguousarray(view.depth, np.float32)
        if not (depth > 0).any():  # an empty view touches no block
            continue
        prepared.append((o3d.t.geometry.Image(o3c.Tensor(depth)), o3c.Tensor(np.asarray(view.K, np.float64)),
                         o3c.Tensor(np.asarray(view.world_to_cam, np.float64))))
    if not prepared:
        return None

    def grid(blocks: int):
        return o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight"), (o3c.float32, o3c.float32), ((1), (1)),
                                             voxel_size, BLOCK_RESOLUTION, blocks, o3c.Device("CPU:0"))

    probe = grid(1)
    blocks = [probe.compute_unique_block_coordinates(depth, K, extrinsic, 1.0, depth_max, ALLOCATION_VOXELS)
              for depth, K, extrinsic in prepared]
    count = len(np.unique(np.concatenate([b.numpy() for b in blocks]), axis=0))
    fused = grid(max(int(count * 1.2) + 16, 64))
    for (depth, K, extrinsic), coords in tqdm(list(zip(prepared, blocks, strict=True)), desc=desc, unit="view",
                                              disable=not progress):
        fused.integrate(coords, depth, K, extrinsic, 1.0, depth_max, truncation_voxels)
    return fused


def surface_mesh(grid) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3) float64, faces (F, 3) int64) of the grid's zero crossing (marching cubes)."""
    if grid is None:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    mesh = grid.extract_triangle_mesh(weight_threshold=WEIGHT_THRESHOLD)
    if "positions" not in mesh.vertex or "indices" not in mesh.triangle:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return mesh.vertex.positions.numpy().astype(np.float64), mesh.triangle.indices.numpy().astype(np.int64)


def surface_points(grid) -> tuple[np.ndarray, np.ndarray]:
    """(points (G, 3), unit normals (G, 3)) of the grid's zero crossing, one per surface voxel."""
    if grid is None:
        return np.zeros((0, 3)), np.zeros((0, 3))
    try:
        cloud = grid.extract_point_cloud(weight_threshold=WEIGHT_THRESHOLD)
    except RuntimeError:  # open3d 0.20 raises instead of returning an empty cloud when no voxel crosses zero
        return np.zeros((0, 3)), np.zeros((0, 3))
    if "positions" not in cloud.point or len(cloud.point.positions) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3))
    points = cloud.point.positions.numpy().astype(np.float64)
    normals = cloud.point.normals.numpy().astype(np.float64)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    keep = norm[:, 0] > 1e-9
    return points[keep], normals[keep] / norm[keep]
