"""Obstacle surfaces straight from measured depth: each layer of the layered depth image becomes a triangle
mesh on the measured points, and its edges stop at depth jumps (no rubber sheet spans an occlusion edge).

The measurement is the best evidence there is of where a surface lies; re-rendered splats only fill in
what no depth frame saw (lyra_sim.physics.proxy).
"""

from __future__ import annotations

import math

import numpy as np

from lyra_sim.single_view.layers import split_layers

MEASURED_TRIANGLES = 60_000  # default budget of one view's mesh (the image is sampled with a stride to fit)


def depth_stride(height: int, width: int, max_triangles: int) -> int:
    """Smallest pixel stride whose grid (two triangles per cell) fits ``max_triangles``."""
    return max(1, math.ceil(math.sqrt(2.0 * height * width / max(max_triangles, 2))))


def depth_mesh(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
               max_triangles: int = MEASURED_TRIANGLES) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) in the world frame of the surfaces a depth image (metres, 0 = none)
    measured: the pixel grid (every ``depth_stride``-th pixel) triangulated within depth layers.

    A grid cell becomes two triangles when its four corners hold depth and no layer jump
    (``lyra_sim.single_view.layers``) separates neighbouring corners; K puts pixel centres at +0.5.
    """
    depth = np.asarray(depth, np.float64)
    height, width = depth.shape
    stride = depth_stride(height, width, max_triangles)
    rows, cols = np.arange(0, height, stride), np.arange(0, width, stride)
    grid = depth[np.ix_(rows, cols)]
    valid = np.isfinite(grid) & (grid > 0)
    if valid.sum() < 4:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    filled = np.where(valid, grid, np.median(grid[valid]))  # split_layers needs depth everywhere
    layers = split_layers(filled)
    ok_u = ~layers.jump_u & valid[:, 1:] & valid[:, :-1]  # (h, w-1): edge u|u+1 joins one surface
    ok_v = ~layers.jump_v & valid[1:] & valid[:-1]  # (h-1, w)
    # A cell (r, c) joins its corners only when its four sides do; the diagonal then lies on that surface too.
    cell = ok_u[:-1] & ok_u[1:] & ok_v[:, :-1] & ok_v[:, 1:]
    K = np.asarray(K, np.float64)
    x = (cols + 0.5 - K[0, 2]) / K[0, 0]  # pixel centres at +0.5, as lyra_sim.camera.pixel_directions
    y = (rows + 0.5 - K[1, 2]) / K[1, 1]
    dirs = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((1, 1))), axis=-1)
    points = dirs * grid[..., None]
    cam_to_world = np.linalg.inv(np.asarray(world_to_cam, np.float64))
    points = points.reshape(-1, 3) @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    index = np.arange(len(rows) * len(cols)).reshape(len(rows), len(cols))
    r, c = np.nonzero(cell)
    a, b, d, e = index[r, c], index[r, c + 1], index[r + 1, c], index[r + 1, c + 1]
    faces = np.concatenate([np.stack([a, d, b], axis=1), np.stack([b, d, e], axis=1)])
    used, inverse = np.unique(faces, return_inverse=True)
    return points[used], inverse.reshape(-1, 3).astype(np.int64)

