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
SKIRT_MARGIN = 0.2  # a side stops this share of the gap short of the surface behind the silhouette
SKIRT_MAX_M = 0.6  # longest side (world units)
SKIRT_FLAT_NZ = 0.7  # a surface whose normal's up component exceeds this is near-horizontal: no sides


def depth_stride(height: int, width: int, max_triangles: int) -> int:
    """Smallest pixel stride whose grid (two triangles per cell) fits ``max_triangles``."""
    return max(1, math.ceil(math.sqrt(2.0 * height * width / max(max_triangles, 2))))


def depth_mesh(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
               max_triangles: int = MEASURED_TRIANGLES, up=None) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) in the world frame of the surfaces a depth image (metres, 0 = none)
    measured: the pixel grid (every ``depth_stride``-th pixel) triangulated within depth layers.

    Each grid cell holds up to two triangles, each kept when its corners hold depth and no layer jump
    (``lyra_sim.single_view.layers``) separates them; K puts pixel centres at +0.5. Foreground surfaces get
    sides (``_side_skirts``) back along the rays; ``up`` (the world's up axis, when known) keeps them off
    near-horizontal surfaces.
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
    # Cell (r, c) with corners a (r, c), b (r, c+1), d (r+1, c), e (r+1, c+1) holds triangle a-d-b when a's two
    # sides join it to b and d (then b and d lie on a's surface, so does the diagonal), b-d-e likewise from e:
    # a cell on a silhouette keeps its half on the surface.
    upper = ok_u[:-1] & ok_v[:, :-1]
    lower = ok_u[1:] & ok_v[:, 1:]
    up = None if up is None else np.asarray(up, np.float64)
    K = np.asarray(K, np.float64)
    x = (cols + 0.5 - K[0, 2]) / K[0, 0]  # pixel centres at +0.5, as lyra_sim.camera.pixel_directions
    y = (rows + 0.5 - K[1, 2]) / K[1, 1]
    dirs = np.stack(np.broadcast_arrays(x[None, :], y[:, None], np.ones((1, 1))), axis=-1)
    points = dirs * grid[..., None]
    cam_to_world = np.linalg.inv(np.asarray(world_to_cam, np.float64))
    points = points.reshape(-1, 3) @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    index = np.arange(len(rows) * len(cols)).reshape(len(rows), len(cols))
    r, c = np.nonzero(upper)
    first = np.stack([index[r, c], index[r + 1, c], index[r, c + 1]], axis=1)
    r, c = np.nonzero(lower)
    second = np.stack([index[r, c + 1], index[r + 1, c], index[r + 1, c + 1]], axis=1)
    faces = np.concatenate([first, second])
    skirt_points, skirt_faces = _side_skirts(points.reshape(len(rows), len(cols), 3), grid, valid, layers.jump_u,
                                             cam_to_world[:3, 3], stride / K[0, 0], up)
    faces = np.concatenate([faces, skirt_faces + len(points)])
    points = np.concatenate([points, skirt_points])
    used, inverse = np.unique(faces, return_inverse=True)
    return points[used], inverse.reshape(-1, 3).astype(np.int64)


def _side_skirts(points: np.ndarray, depth: np.ndarray, valid: np.ndarray, jump_u: np.ndarray, eye: np.ndarray,
                 pixel_angle: float, up: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Quads that close the left and right sides of foreground surfaces: from each vertical run of a silhouette
    (a depth jump between horizontal neighbours, the near side's vertices) back along the camera's rays by
    min(the gap to the surface behind less SKIRT_MARGIN of it, the near layer's width across the row,
    SKIRT_MAX_M), the thickness a seen front suggests. Silhouettes of near-horizontal surfaces (a table top
    seen from above, ``up`` known) get none: space under them stays open. (H, W, 3) grid points in the world."""
    h, w = depth.shape
    if w < 2 or h < 2:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    edge = jump_u & valid[:, 1:] & valid[:, :-1]
    near_left = depth[:, :-1] < depth[:, 1:]
    cols = np.where(near_left, np.arange(w - 1)[None, :], np.arange(1, w)[None, :])
    rows = np.broadcast_to(np.arange(h)[:, None], cols.shape)
    gap = np.abs(depth[:, 1:] - depth[:, :-1])
    # Width of each pixel's run within its row (runs end at jumps and holes), in metres at its depth.
    breaks = np.concatenate([np.ones((h, 1), bool), jump_u | ~valid[:, 1:] | ~valid[:, :-1]], axis=1)
    run_id = np.cumsum(breaks, axis=1) + np.arange(h)[:, None] * (w + 1)
    run_width = np.bincount(run_id.ravel(), minlength=h * (w + 1) + w + 1)[run_id] * depth * pixel_angle
    length = np.minimum(np.minimum((1.0 - SKIRT_MARGIN) * gap, run_width[rows, cols]), SKIRT_MAX_M)
    if up is not None:
        below = np.clip(rows + 1, 0, h - 1)
        right = np.clip(cols + 1, 0, w - 1)
        normal = np.cross(points[rows, right] - points[rows, cols], points[below, cols] - points[rows, cols])
        norm = np.linalg.norm(normal, axis=-1)
        flat = np.abs(normal @ up) > SKIRT_FLAT_NZ * np.maximum(norm, 1e-12)
        edge = edge & ~flat
    # A quad between rows r and r + 1 where both have a jump at the same column pair with the same near side.
    pair = edge[:-1] & edge[1:] & (near_left[:-1] == near_left[1:])
    r, c = np.nonzero(pair)
    if len(r) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    top, bottom = points[r, cols[r, c]], points[r + 1, cols[r + 1, c]]
    length_top, length_bottom = length[r, c], length[r + 1, c]
    ray_top = (top - eye) / np.linalg.norm(top - eye, axis=1, keepdims=True)
    ray_bottom = (bottom - eye) / np.linalg.norm(bottom - eye, axis=1, keepdims=True)
    back_top, back_bottom = top + ray_top * length_top[:, None], bottom + ray_bottom * length_bottom[:, None]
    n = len(r)
    quad = np.concatenate([top, bottom, back_bottom, back_top])
    i = np.arange(n)
    faces = np.concatenate([np.stack([i, i + n, i + 2 * n], axis=1), np.stack([i, i + 2 * n, i + 3 * n], axis=1)])
    return quad, faces

