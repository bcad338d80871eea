"""Obstacle surfaces straight from measured depth: each layer of the layered depth image becomes a triangle
mesh on the measured points, and its edges stop at depth jumps (no rubber sheet spans an occlusion edge).

The measurement is the best evidence there is of where a surface lies; re-rendered splats only fill in
what no depth frame saw (lyra_sim.physics.proxy).
"""

from __future__ import annotations

import math

import numpy as np

from lyra_sim.geometry.tsdf import DepthView
from lyra_sim.single_view.layers import split_layers

MEASURED_TRIANGLES = 60_000  # default budget of one view's mesh (the image is sampled with a stride to fit)
SKIRT_MARGIN = 0.2  # a side stops this share of the gap short of the surface behind the silhouette
SKIRT_MAX_M = 0.6  # longest side (world units)
SKIRT_FLAT_NZ = 0.7  # a surface whose normal's up component exceeds this is near-horizontal: no sides
THIN_LID_M = 0.03  # depth (world units) of the lid on a top edge below the camera: a thin board's (a chair back)


def depth_stride(height: int, width: int, max_triangles: int) -> int:
    """Smallest pixel stride whose grid (two triangles per cell) fits ``max_triangles``."""
    return max(1, math.ceil(math.sqrt(2.0 * height * width / max(max_triangles, 2))))


def depth_mesh(depth: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
               max_triangles: int = MEASURED_TRIANGLES, up=None, edge_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(vertices (V, 3), faces (F, 3)) in the world frame of the surfaces a depth image (metres, 0 = none)
    measured: the pixel grid (every ``depth_stride``-th pixel) triangulated within depth layers.

    Each grid cell holds up to two triangles, each kept when its corners hold depth and no layer jump
    (``lyra_sim.single_view.layers``) separates them; K puts pixel centres at +0.5. Foreground surfaces get
    sides (``_side_skirts``) back along the rays; ``up`` (the world's up axis, when known) keeps them off
    near-horizontal surfaces and closes the tops of those above the camera (``_top_lids``). ``edge_px``: how far
    beyond the centre of the last pixel on the near side of a jump the silhouette lies (a depth camera's: half a
    pixel; a splat render's spills already, lyra_sim.physics.splat_collider.SPLAT_EDGE_PX).
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
    # Pixel centres at +0.5 (as lyra_sim.camera.pixel_directions); a vertex on the near side of a jump moves out
    # to its cell's edge (``_silhouette_shift``): the measured surface covers its pixels, not only their centres.
    shift_u, shift_v = _silhouette_shift(layers.jump_u, layers.jump_v, grid, valid, depth, rows, cols, stride, edge_px)
    x = (cols[None, :] + 0.5 + shift_u - K[0, 2]) / K[0, 0]
    y = (rows[:, None] + 0.5 + shift_v - K[1, 2]) / K[1, 1]
    dirs = np.stack(np.broadcast_arrays(x, y, np.ones((1, 1))), axis=-1)
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
    if up is not None:
        lid_points, lid_faces = _top_lids(points[:len(rows) * len(cols)].reshape(len(rows), len(cols), 3), grid,
                                          valid, layers.jump_u, layers.jump_v, cam_to_world[:3, 3],
                                          stride / K[0, 0], up)
        faces = np.concatenate([faces, lid_faces + len(points)])
        points = np.concatenate([points, lid_points])
    used, inverse = np.unique(faces, return_inverse=True)
    return points[used], inverse.reshape(-1, 3).astype(np.int64)


def _silhouette_shift(jump_u: np.ndarray, jump_v: np.ndarray, grid: np.ndarray, valid: np.ndarray, depth: np.ndarray,
                      rows: np.ndarray, cols: np.ndarray, stride: int,
                      edge_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(h, w) image shifts (pixels, along u and v) of the grid vertices on the near side of a layer jump, out to the
    measured edge: past the pixels between the vertex and the next grid vertex that still lie on its surface
    (nearer to its depth than to the farther vertex's, full-resolution ``depth``), then ``edge_px`` (a depth camera's
    edge lies half a pixel out, between the last pixel centre on the surface and the first one off it). Left at the
    vertex, a 3 cm leg at 640x480 (8 pixels, stride 2) lost up to 1.5 pixels a side, and robot rays grazing it passed
    within a few mm of where the true leg stopped them."""
    shift_u, shift_v = np.zeros(grid.shape), np.zeros(grid.shape)
    for axis, jumps, shift in ((1, jump_u, shift_u), (0, jump_v, shift_v)):
        lo = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
        hi = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
        edge = jumps & valid[lo] & valid[hi]
        for near_first in (True, False):
            r, c = np.nonzero(edge & ((grid[lo] < grid[hi]) == near_first))
            near_r, near_c = (r, c + (not near_first)) if axis == 1 else (r + (not near_first), c)
            far_r, far_c = (r, c + near_first) if axis == 1 else (r + near_first, c)
            fixed, near_px = (rows[near_r], cols[near_c]) if axis == 1 else (cols[near_c], rows[near_r])
            step = 1 if near_first else -1
            d_near, d_far = grid[near_r, near_c], grid[far_r, far_c]
            run = np.zeros(len(r))
            on = np.ones(len(r), bool)
            for k in range(1, stride):  # pixels between the two grid vertices, from the near one out
                px = near_px + step * k
                d = depth[fixed, px] if axis == 1 else depth[px, fixed]
                on &= np.isfinite(d) & (d > 0) & (np.abs(d - d_near) < np.abs(d - d_far))
                run += on
            shift[near_r, near_c] += step * (run + edge_px)
    return shift_u, shift_v


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
    run_width = _run_widths(depth, valid, jump_u, pixel_angle)
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



def _run_widths(depth: np.ndarray, valid: np.ndarray, jump_u: np.ndarray, pixel_angle: float) -> np.ndarray:
    """(H, W) width in metres (at each pixel's depth) of the pixel's run within its row: runs end at jumps and
    holes."""
    h, w = depth.shape
    breaks = np.concatenate([np.ones((h, 1), bool), jump_u | ~valid[:, 1:] | ~valid[:, :-1]], axis=1)
    run_id = np.cumsum(breaks, axis=1) + np.arange(h)[:, None] * (w + 1)
    return np.bincount(run_id.ravel(), minlength=h * (w + 1) + w + 1)[run_id] * depth * pixel_angle


def _top_lids(points: np.ndarray, depth: np.ndarray, valid: np.ndarray, jump_u: np.ndarray, jump_v: np.ndarray,
              eye: np.ndarray, pixel_angle: float, up) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal strips closing the top of foreground surfaces whose upper silhouette lies above the camera:
    there the camera cannot see a top face, so the object's depth is unknown (a shelf board seen edge-on above
    eye level is a line of pixels). From each top-silhouette vertex (a depth jump to a farther surface above it
    in the image) back along the ray's horizontal direction by min(the horizontal gap to the surface behind less
    SKIRT_MARGIN of it, the near layer's width across the row, SKIRT_MAX_M). Below the camera a top face the
    camera does not see is a thin object's (a chair back): its lid is THIN_LID_M deep, so a ball dropped on the
    edge rests on it instead of slipping off a sheet. (H, W, 3) grid points in the world, ``up`` the world's up
    axis.
    """
    h, w = depth.shape
    if w < 2 or h < 2:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    up = np.asarray(up, np.float64) / np.linalg.norm(up)
    near, far = points[1:], points[:-1]  # the jump v|v+1 with the nearer surface below (row v + 1)
    edge = jump_v & valid[1:] & valid[:-1] & (depth[1:] < depth[:-1])
    above = (near - eye) @ up > 0.0
    ray = (near - eye) - ((near - eye) @ up)[..., None] * up
    ray /= np.maximum(np.linalg.norm(ray, axis=-1, keepdims=True), 1e-12)
    gap = ((far - near) * ray).sum(axis=-1)
    width = _run_widths(depth, valid, jump_u, pixel_angle)[1:]
    length = np.minimum(np.minimum((1.0 - SKIRT_MARGIN) * gap, width), np.where(above, SKIRT_MAX_M, THIN_LID_M))
    pair = edge[:, :-1] & edge[:, 1:] & (length[:, :-1] > 0) & (length[:, 1:] > 0)
    r, c = np.nonzero(pair)
    if len(r) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    left, right = near[r, c], near[r, c + 1]
    back_left = left + ray[r, c] * length[r, c][:, None]
    back_right = right + ray[r, c + 1] * length[r, c + 1][:, None]
    n = len(r)
    quad = np.concatenate([left, right, back_right, back_left])
    i = np.arange(n)
    faces = np.concatenate([np.stack([i, i + n, i + 2 * n], axis=1), np.stack([i, i + 2 * n, i + 3 * n], axis=1)])
    return quad, faces


def seen_through(points: np.ndarray, views: list[DepthView], margin: float) -> np.ndarray:
    """(N,) bool: points some measured view (DepthViews: depth, K, world_to_cam) saw through: every depth in the
    3x3 pixels around the point's projection lies more than ``margin`` (plus 1 % of the range) behind it."""
    return view_relation(points, views, margin)[1]


def view_relation(points: np.ndarray, views: list[DepthView], margin: float) -> tuple[np.ndarray, np.ndarray]:
    """((N,) bool in some view's image, (N,) bool seen through by some view: ``seen_through``)."""
    from scipy.ndimage import minimum_filter

    through = np.zeros(len(points), bool)
    in_view = np.zeros(len(points), bool)
    for view in views:
        depth = np.where(view.depth > 0, view.depth, np.inf)
        nearest = minimum_filter(depth, size=3, mode="nearest")
        z, u, v, inside = view.pixels_of(points)
        behind = np.zeros(len(points))
        behind[inside] = nearest[v[inside].astype(int), u[inside].astype(int)]
        in_view |= inside
        through |= inside & np.isfinite(behind) & (behind > z + margin + 0.01 * z)
    return in_view, through


def behind_thin_runs(points: np.ndarray, views: list[DepthView], margin: float) -> np.ndarray:
    """(N,) bool: points hidden behind a measured surface that the camera saw past on both sides (a table leg, a
    post, a chair's leg or back seen edge-on), deeper behind it than it is wide across its image row, yet in
    front of the background beside it (``margin`` and 1 % of the range of slack each way).

    The side skirts (``_side_skirts``) take the same prior for the depth of a seen run: as deep as it is wide.
    Invented bulk farther back (the completion gives a 3 cm leg the 0.4 m back of the table it belongs to) sits
    where robot cameras passing the leg look through to what lies behind; what lies as far as the background
    (the background continued behind the leg) stays. (The splats draw that bulk too, lyra_sim.single_view.backs:
    here the collider follows the measurement's prior, not the picture; on bench_colliders' table_chairs at
    640x480 this costs 0.2 points of collider-picture agreement and gains 0.003 of true surfaces within 5 cm.)"""
    out = np.zeros(len(points), bool)
    for view in views:
        depth = np.asarray(view.depth, np.float64)
        valid = np.isfinite(depth) & (depth > 0)
        if valid.sum() < 4 or depth.shape[1] < 3:
            continue
        width, background = _row_runs(depth, valid, 1.0 / float(view.K[0, 0]))
        z, u, v, inside = view.pixels_of(points)
        ui, vi = u[inside].astype(int), v[inside].astype(int)
        measured = depth[vi, ui]
        slack = margin + 0.01 * measured
        deep = valid[vi, ui] & (z[inside] > measured + np.maximum(width[vi, ui], margin) + slack)
        out[np.flatnonzero(inside)] |= deep & (z[inside] < background[vi, ui] - slack)
    return out


def _row_runs(depth: np.ndarray, valid: np.ndarray, pixel_angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel of a depth image: its run's width across its image row (metres at its depth, ``_run_widths``),
    and the nearer of the two depths just outside the run's ends when both ends are jumps to a farther surface
    (0 otherwise: the run is hidden or cut off on a side, so its width is unknown)."""
    h, w = depth.shape
    filled = np.where(valid, depth, np.median(depth[valid]))
    jump_u = split_layers(filled).jump_u
    breaks = jump_u | ~valid[:, 1:] | ~valid[:, :-1]  # (H, W-1): columns u and u+1 lie on different runs
    run = np.concatenate([np.zeros((h, 1), np.int64), np.cumsum(breaks, axis=1)], axis=1) + np.arange(h)[:, None] * w
    farther = jump_u & valid[:, 1:] & valid[:, :-1]
    left_open = np.zeros(h * w + h, bool)  # the run starting at u + 1 has a farther surface at u
    right_open = np.zeros(h * w + h, bool)  # the run ending at u has a farther surface at u + 1
    beside = np.full(h * w + h, np.inf)
    starts = farther & (depth[:, :-1] > depth[:, 1:])
    ends = farther & (depth[:, 1:] > depth[:, :-1])
    left_open[run[:, 1:][starts]] = True
    right_open[run[:, :-1][ends]] = True
    np.minimum.at(beside, run[:, 1:][starts], depth[:, :-1][starts])
    np.minimum.at(beside, run[:, :-1][ends], depth[:, 1:][ends])
    background = np.where(left_open & right_open, beside, 0.0)[run]
    return _run_widths(depth, valid, jump_u, pixel_angle), background
