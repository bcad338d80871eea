"""Numba kernels of the CPU tile rasterizer: projection of index chunks, depth sort, tile binning, raster.

Why numba and not vectorised torch: a vectorised rasterizer has to materialise (pixels x
Gaussians) blocks and cannot stop a pixel once it is opaque; these loops visit only each
Gaussian's own pixel box and stop early (benchmarks/RESULTS.md has the speeds).
Conventions follow gsplat's ``rasterization()`` exactly: EWA projection
with the 1.3x-FOV clamp, eps2d blur, opacity-aware 3.33-sigma boxes, 16-pixel tiles, pixel
centres at +0.5, alpha = min(0.999, o * exp(-sigma)), skip alpha < 1/255, stop before
transmittance falls to 1e-4.

Every stage has a serial core. One or many cameras go through the same two kernels, so a first render
compiles each once: ``project_chunks`` (``project_chunks_lod`` with a level of detail) over (camera, index
chunk) items, then ``composite`` over (camera, band of tile rows) items. They release the GIL and the caller
(lyra_sim.rendering.cpu) runs one contiguous run of items per thread, split into parts of about equal cost
(chunks of equal Gaussian counts; bands of equal Gaussian counts for one camera, one band per camera in groups
of equal counts for a batch). Python threads
rather than numba's ``parallel=True``: a parallel kernel costs seconds more to compile (measured 4.7 s CPU for
the composite's), and numba's workqueue layer aborts when two threads launch parallel kernels at once.

Compile time (a fresh environment compiles these kernels once; numba's cache keeps them): every kernel is called
with one set of argument types (no integer constants as arguments, which numba would compile again as
literals), and no statement that makes numba compile error messages (array-to-slice assignments, np.argsort).

Threading layer (the differentiable path's parallel kernels): numba's own ``workqueue`` first. It survives
``fork()`` (gymnasium's AsyncVectorEnv forks by default), which GNU OpenMP does not; and it measured as fast
as OpenMP on these kernels.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange

from lyra_sim.rendering.index import CULL_MARGIN_PX, GCUT, GEXT, GOP, GX, GY, GZ, S00, S01, S02, S11, S12, S22

numba.config.THREADING_LAYER_PRIORITY = ["workqueue", "omp", "tbb"]

F32 = np.float32
ALPHA_THRESHOLD = F32(1.0 / 255.0)
MAX_ALPHA = F32(0.999)
T_EPS = F32(1e-4)
HALF = F32(0.5)
ONE = F32(1.0)
ZERO = F32(0.0)
# Columns of a packed Gaussian row (float32): 2D mean, conic (a, b, c), opacity, RGB, depth, radii, and the
# blending cut-off ln(255 opacity) (op exp(-sigma) < 1/255 exactly when sigma exceeds it).
MX, MY, CA, CB, CC, OP, COL, Z, RX, RY, CUT = 0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12
PACKED_WIDTH = 13
FEATURES = 4  # RGB + depth, composited together
RADIX_BITS = 11  # three passes over 32-bit keys; 2048 buckets stay in L1
DEPTH_BUCKET_BITS = 12  # lazy depth order: sign, exponent and 3 mantissa bits (8 buckets per octave of depth)
NO_LIMIT = 1 << 30  # tile count for an unclamped tile rectangle


@njit(cache=True, inline="always")
def _sh_color(sh, g, ch, x, y, z, degree):
    """SH colour channel of Gaussian g along unit direction (x, y, z); same basis as lyra_sim.sh."""
    c = 0.28209479177387814 * sh[g, 0, ch]
    if degree >= 1:
        c += 0.4886025119029199 * (-y * sh[g, 1, ch] + z * sh[g, 2, ch] - x * sh[g, 3, ch])
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        c += (
            1.0925484305920792 * x * y * sh[g, 4, ch]
            - 1.0925484305920792 * y * z * sh[g, 5, ch]
            + 0.31539156525252005 * (2.0 * zz - xx - yy) * sh[g, 6, ch]
            - 1.0925484305920792 * x * z * sh[g, 7, ch]
            + 0.5462742152960396 * (xx - yy) * sh[g, 8, ch]
        )
        if degree >= 3:
            c += (
                -0.5900435899266435 * y * (3 * xx - yy) * sh[g, 9, ch]
                + 2.890611442640554 * x * y * z * sh[g, 10, ch]
                - 0.4570457994644658 * y * (4 * zz - xx - yy) * sh[g, 11, ch]
                + 0.3731763325901154 * z * (2 * zz - 3 * xx - 3 * yy) * sh[g, 12, ch]
                - 0.4570457994644658 * x * (4 * zz - xx - yy) * sh[g, 13, ch]
                + 1.445305721320277 * z * (xx - yy) * sh[g, 14, ch]
                - 0.5900435899266435 * x * (xx - 3 * yy) * sh[g, 15, ch]
            )
    return max(c + 0.5, 0.0)


# ------------------------------------------------------------------------------------------- projection
@njit(cache=True, inline="always")
def _tile_rect(mx, my, rx, ry, tile_size, tiles_x, tiles_y):
    # float64 floor/ceil compile to one instruction; numba calls a helper function for float32 ones.
    x0 = min(max(math.floor(np.float64(mx - rx) / tile_size), 0), tiles_x)
    x1 = min(max(math.ceil(np.float64(mx + rx) / tile_size), 0), tiles_x)
    y0 = min(max(math.floor(np.float64(my - ry) / tile_size), 0), tiles_y)
    y1 = min(max(math.ceil(np.float64(my + ry) / tile_size), 0), tiles_y)
    return x0, x1, y0, y1


@njit(cache=True)
def _project_range(geometry, sh, start, stop, view, cam_pos, intrinsics, width, height, tile_size, eps2d, near, far,
                   rows, depth, slots, tile_rows, out, slot_base):
    """Project index rows start:stop; the visible ones go to rows/depth/slots/tile_rows from position ``out`` on
    (slots: slot_base + the row's index in ``geometry``).

    ``tile_rows[k]`` is the range [first, last + 1) of tile rows (of ``tile_size`` pixels) that row k touches.

    Returns how many were visible. Colours are the SH colours seen from ``cam_pos`` (gsplat's rule: SH + 0.5,
    clamped at 0). The 2D covariance is J W Sigma W^T J^T with the world's precomputed 3D covariance Sigma.
    """
    degree = round(math.sqrt(sh.shape[1])) - 1
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    r00, r01, r02, t0 = view[0, 0], view[0, 1], view[0, 2], view[0, 3]
    r10, r11, r12, t1 = view[1, 0], view[1, 1], view[1, 2], view[1, 3]
    r20, r21, r22, t2 = view[2, 0], view[2, 1], view[2, 2], view[2, 3]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    lim_x, lim_y = max(lim_x_pos, lim_x_neg), max(lim_y_pos, lim_y_neg)
    jac_bound = fx * fx * (1.0 + lim_x * lim_x) + fy * fy * (1.0 + lim_y * lim_y)  # |J|_F^2 z^2
    k = out
    for i in range(start, stop):
        mx, my, mz = geometry[i, GX], geometry[i, GY], geometry[i, GZ]
        z = r20 * mx + r21 * my + r22 * mz + t2
        if z < near or z > far:
            continue
        x = r00 * mx + r01 * my + r02 * mz + t0
        y = r10 * mx + r11 * my + r12 * mz + t1
        rz = 1.0 / z
        px = fx * x * rz + cx
        py = fy * y * rz + cy
        # Early out for a mean far outside the image: bound the footprint radius (ceil(extend sqrt(c)) <=
        # extend sqrt(bound) + 1) by |J|_F^2 trace(Sigma) + eps2d, before computing the covariance.
        off_x = max(-px, px - width) - 1.0
        off_y = max(-py, py - height) - 1.0
        if off_x > 0.0 or off_y > 0.0:
            off = max(off_x, off_y)
            trace = geometry[i, S00] + geometry[i, S11] + geometry[i, S22]
            extend = geometry[i, GEXT]
            if off * off >= extend * extend * (jac_bound * rz * rz * trace + eps2d):
                continue
        tx = z * min(lim_x_pos, max(-lim_x_neg, x * rz))
        ty = z * min(lim_y_pos, max(-lim_y_neg, y * rz))
        # rows of T = J W (2x3)
        j00, j02 = fx * rz, -fx * tx * rz * rz
        j11, j12 = fy * rz, -fy * ty * rz * rz
        a0, a1, a2 = j00 * r00 + j02 * r20, j00 * r01 + j02 * r21, j00 * r02 + j02 * r22
        b0, b1, b2 = j11 * r10 + j12 * r20, j11 * r11 + j12 * r21, j11 * r12 + j12 * r22
        s00, s01, s02 = geometry[i, S00], geometry[i, S01], geometry[i, S02]
        s11, s12, s22 = geometry[i, S11], geometry[i, S12], geometry[i, S22]
        sa0 = s00 * a0 + s01 * a1 + s02 * a2
        sa1 = s01 * a0 + s11 * a1 + s12 * a2
        sa2 = s02 * a0 + s12 * a1 + s22 * a2
        c00 = a0 * sa0 + a1 * sa1 + a2 * sa2 + eps2d
        c01 = b0 * sa0 + b1 * sa1 + b2 * sa2
        c11 = b0 * (s00 * b0 + s01 * b1 + s02 * b2) + b1 * (s01 * b0 + s11 * b1 + s12 * b2) \
            + b2 * (s02 * b0 + s12 * b1 + s22 * b2) + eps2d
        det = c00 * c11 - c01 * c01
        if det <= 0.0:
            continue
        extend = geometry[i, GEXT]
        rad_x = math.ceil(extend * math.sqrt(c00))
        rad_y = math.ceil(extend * math.sqrt(c11))
        if rad_x <= 0.0 and rad_y <= 0.0:
            continue
        if px + rad_x <= 0 or px - rad_x >= width or py + rad_y <= 0 or py - rad_y >= height:
            continue
        inv_det = 1.0 / det
        rows[k, MX] = px
        rows[k, MY] = py
        rows[k, CA] = c11 * inv_det
        rows[k, CB] = -c01 * inv_det
        rows[k, CC] = c00 * inv_det
        rows[k, OP] = geometry[i, GOP]
        dx, dy, dz = mx - cam_pos[0], my - cam_pos[1], mz - cam_pos[2]
        inv = 1.0 / max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        for ch in range(3):
            rows[k, COL + ch] = _sh_color(sh, i, ch, dx * inv, dy * inv, dz * inv, degree)
        rows[k, Z] = z
        rows[k, RX] = rad_x
        rows[k, RY] = rad_y
        rows[k, CUT] = geometry[i, GCUT]
        depth[k] = z
        slots[k] = slot_base + i
        # from the stored float32 values, exactly as the binning's _tile_rect will see them
        _, _, tile_rows[k, 0], tile_rows[k, 1] = _tile_rect(rows[k, MX], rows[k, MY], rows[k, RX], rows[k, RY],
                                                            tile_size, NO_LIMIT, NO_LIMIT)
        k += 1
    return k - out


@njit(cache=True, inline="always")
def _fits(geometry, r, view, fit_scale, near):
    """Whether coarse row r projects to at most ``lod_px`` pixels of standard deviation (sqrt(trace Sigma) f / z at
    its own mean depth, compared squared: trace Sigma <= fit_scale z^2 with fit_scale = (lod_px / f)^2; nothing
    nearer than ``near`` fits)."""
    z = view[2, 0] * geometry[r, GX] + view[2, 1] * geometry[r, GY] + view[2, 2] * geometry[r, GZ] + view[2, 3]
    if z < near:
        return False
    return geometry[r, S00] + geometry[r, S11] + geometry[r, S22] <= fit_scale * z * z


@njit(cache=True, inline="always")
def _sphere_outside(geometry, r, radius, view, intrinsics, width, height, near, far, norms):
    """Whether the sphere of ``radius`` about row r's mean lies wholly outside the camera's view (behind the near
    plane, beyond the far one, or beyond a side plane of the image widened by CULL_MARGIN_PX); ``norms``: the
    four side planes' normal lengths (``_side_plane_norms``)."""
    mx, my, mz = geometry[r, GX], geometry[r, GY], geometry[r, GZ]
    z = view[2, 0] * mx + view[2, 1] * my + view[2, 2] * mz + view[2, 3]
    if z + radius < near or z - radius > far:
        return True
    x = view[0, 0] * mx + view[0, 1] * my + view[0, 2] * mz + view[0, 3]
    y = view[1, 0] * mx + view[1, 1] * my + view[1, 2] * mz + view[1, 3]
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    m = CULL_MARGIN_PX
    # signed distances to the four side planes through the camera centre (positive outside)
    return (fx * x - (width + m - cx) * z > radius * norms[0] or -fx * x - (m + cx) * z > radius * norms[1]
            or fy * y - (height + m - cy) * z > radius * norms[2] or -fy * y - (m + cy) * z > radius * norms[3])


@njit(cache=True, inline="always")
def _side_plane_norms(intrinsics, width, height):
    """Lengths of the (unnormalised) normals of the image's four side planes, as ``_sphere_outside`` uses them."""
    fx, fy, cx, cy = intrinsics[0], intrinsics[1], intrinsics[2], intrinsics[3]
    m = CULL_MARGIN_PX
    return (math.sqrt(fx * fx + (width + m - cx) ** 2), math.sqrt(fx * fx + (m + cx) ** 2),
            math.sqrt(fy * fy + (height + m - cy) ** 2), math.sqrt(fy * fy + (m + cy) ** 2))


@njit(cache=True)
def _walk_chunk(geometry, sh, chunk_starts, coarse_geometry, coarse_sh, coarse_starts, children, radii, num_levels,
                lod_px, c, view, cam_pos, intrinsics, width, height, tile_size, eps2d, near, far, rows, depth, slots,
                tile_rows, out):
    """Project index chunk c with a level of detail ``lod_px`` > 0 (``num_levels`` >= 1 coarse levels) from position
    ``out`` on; returns how many were visible.

    A walk down the chunk's octree from its coarsest level, cell by cell: a cell whose merged Gaussian fits
    ``lod_px`` (``_fits``) is drawn merged (slot = the number of index rows + its coarse row), any other is
    replaced by its children one level down (rows children[r, 0]:children[r, 1] of the level below; below
    level 1 the exact rows), unless its members' sphere (``radii``) is out of view. Consecutive rows drawn the
    same way (merged siblings, the exact rows of neighbouring level-1 cells) are projected as one range: one
    call of ``_project_range`` per run, not per cell (measured 1.5x faster on 64x48 robot cameras).
    """
    exact_slot = chunk_starts[0]  # 0, read from an array: a constant would compile _project_range again (a literal)
    fit_scale = (lod_px / max(intrinsics[0], intrinsics[1])) ** 2
    norms = _side_plane_norms(intrinsics, width, height)
    merged_slot = geometry.shape[0]
    chunks = chunk_starts.shape[0] - 1
    level = np.empty(num_levels, dtype=np.int64)  # a stack of coarse row ranges still to walk, one per level
    row = np.empty(num_levels, dtype=np.int64)
    stop = np.empty(num_levels, dtype=np.int64)
    top = 0
    level[0] = num_levels
    row[0] = coarse_starts[(num_levels - 1) * chunks + c]
    stop[0] = coarse_starts[(num_levels - 1) * chunks + c + 1]
    merged_lo = merged_hi = exact_lo = exact_hi = exact_slot  # the runs not yet projected (from 0, not a literal)
    k = out
    while top >= 0:
        r = row[top]
        if r >= stop[top]:
            top -= 1
            continue
        row[top] = r + 1
        if _fits(coarse_geometry, r, view, fit_scale, near):
            if r != merged_hi:
                k += _project_range(coarse_geometry, coarse_sh, merged_lo, merged_hi, view, cam_pos, intrinsics,
                                    width, height, tile_size, eps2d, near, far, rows, depth, slots, tile_rows, k,
                                    merged_slot)
                merged_lo = r
            merged_hi = r + 1
        elif _sphere_outside(coarse_geometry, r, radii[r], view, intrinsics, width, height, near, far, norms):
            continue
        elif level[top] == 1:
            if children[r, 0] != exact_hi:
                k += _project_range(geometry, sh, exact_lo, exact_hi, view, cam_pos, intrinsics, width, height,
                                    tile_size, eps2d, near, far, rows, depth, slots, tile_rows, k, exact_slot)
                exact_lo = children[r, 0]
            exact_hi = children[r, 1]
        else:
            level[top + 1] = level[top] - 1
            row[top + 1], stop[top + 1] = children[r, 0], children[r, 1]
            top += 1
    k += _project_range(coarse_geometry, coarse_sh, merged_lo, merged_hi, view, cam_pos, intrinsics, width, height,
                        tile_size, eps2d, near, far, rows, depth, slots, tile_rows, k, merged_slot)
    k += _project_range(geometry, sh, exact_lo, exact_hi, view, cam_pos, intrinsics, width, height, tile_size, eps2d,
                        near, far, rows, depth, slots, tile_rows, k, exact_slot)
    return k - out


@njit(cache=True, nogil=True)
def project_chunks(geometry, sh, chunk_starts, chunks, chunk_views, cand_offsets, first, stop, views, cam_positions,
                   intrinsics, width, height, tile_size, eps2d, near, far, rows, depth, slots, tile_rows, counts):
    """Project every Gaussian of the listed chunks first:stop on the calling thread, without the GIL: chunk
    j = chunks[j] seen from camera chunk_views[j] (views (B,4,4) world-to-camera, cam_positions (B,3),
    intrinsics (B,4): fx fy cx cy); its visible rows start at cand_offsets[j], their number goes to counts[j]
    (slot = the row). A kernel of its own, apart from ``project_chunks_lod``: an exact first render compiles no
    octree walk."""
    exact_slot = chunk_starts[0]  # 0, read from an array (not a literal: one compile of _project_range)
    for j in range(first, stop):
        b, c = chunk_views[j], chunks[j]
        counts[j] = _project_range(geometry, sh, chunk_starts[c], chunk_starts[c + 1], views[b], cam_positions[b],
                                   intrinsics[b], width, height, tile_size, eps2d, near, far, rows, depth, slots,
                                   tile_rows, cand_offsets[j], exact_slot)


@njit(cache=True, nogil=True)
def project_chunks_lod(geometry, sh, chunk_starts, coarse_geometry, coarse_sh, coarse_starts, children, radii,
                       num_levels, lod_px, chunks, chunk_views, cand_offsets, first, stop, views, cam_positions,
                       intrinsics, width, height, tile_size, eps2d, near, far, rows, depth, slots, tile_rows, counts):
    """``project_chunks`` with a level of detail: each chunk cell by cell at the coarsest level that fits
    (``_walk_chunk``)."""
    for j in range(first, stop):
        b = chunk_views[j]
        counts[j] = _walk_chunk(geometry, sh, chunk_starts, coarse_geometry, coarse_sh, coarse_starts, children, radii,
                                num_levels, lod_px, chunks[j], views[b], cam_positions[b], intrinsics[b], width,
                                height, tile_size, eps2d, near, far, rows, depth, slots, tile_rows, cand_offsets[j])


# ---------------------------------------------------------------------------------------------- sorting
@njit(cache=True)
def depth_sort(depth, cand_offsets, counts, slot_ids, slots):
    """Positions of all the candidates (regions cand_offsets[j] : +counts[j]) sorted front to back."""
    total = 0
    for j in range(counts.shape[0]):
        total += counts[j]
    positions = np.empty(total, dtype=np.int64)
    n = 0
    for j in range(counts.shape[0]):
        for i in range(cand_offsets[j], cand_offsets[j] + counts[j]):
            positions[n] = i
            n += 1
    return sort_positions(depth, positions, slot_ids, slots)


@njit(cache=True)
def sort_positions(depth, positions, slot_ids, slots):
    """``positions`` (into depth) sorted front to back; equal depths are then ordered by the Gaussians' index in
    the world (``slot_ids[slots[position]]``), so the result does not depend on the index's chunk order."""
    order = radix_order(depth.view(np.uint32), positions)
    total = order.shape[0]
    keys = depth.view(np.uint32)
    k = 0
    while k < total:  # ties: by world index (rare outside synthetic scenes)
        e = k + 1
        while e < total and keys[order[e]] == keys[order[k]]:
            e += 1
        if e - k > 1:
            run = order[k:e].copy()
            world_ids = np.empty(e - k, dtype=np.uint32)
            for r in range(e - k):
                world_ids[r] = slot_ids[slots[run[r]]]
            by_id = radix_order(world_ids, np.arange(e - k))
            for r in range(e - k):
                order[k + r] = run[by_id[r]]
        k = e
    return order


@njit(cache=True)
def radix_order(keys, positions):
    """``positions`` (into the uint32 ``keys``) in ascending key order, stable.

    LSD radix sort, three 11-bit passes whose histograms are all taken in one read (positive float32 depths
    order like their bit patterns). Short lists go by insertion sort (the histograms would cost more).
    """
    total = positions.shape[0]
    out = positions.copy()
    if total <= 32:
        for a in range(1, total):
            p = out[a]
            key = keys[p]
            b = a - 1
            while b >= 0 and keys[out[b]] > key:
                out[b + 1] = out[b]
                b -= 1
            out[b + 1] = p
        return out
    buckets = 1 << RADIX_BITS
    mask = buckets - 1
    hist = np.zeros((3, buckets + 1), dtype=np.int64)
    for k in range(total):
        key = keys[positions[k]]
        hist[0, (key & mask) + 1] += 1
        hist[1, ((key >> RADIX_BITS) & mask) + 1] += 1
        hist[2, (key >> (2 * RADIX_BITS)) + 1] += 1
    for p in range(3):
        for d in range(buckets):
            hist[p, d + 1] += hist[p, d]
    key_a = np.empty(total, dtype=np.uint32)
    for k in range(total):
        i = positions[k]
        d = keys[i] & mask
        at = hist[0, d]
        hist[0, d] += 1
        out[at] = i
        key_a[at] = keys[i]
    pos_b = np.empty_like(out)
    key_b = np.empty_like(key_a)
    for k in range(total):
        d = (key_a[k] >> RADIX_BITS) & mask
        at = hist[1, d]
        hist[1, d] += 1
        pos_b[at] = out[k]
        key_b[at] = key_a[k]
    for k in range(total):
        d = key_b[k] >> (2 * RADIX_BITS)
        at = hist[2, d]
        hist[2, d] += 1
        out[at] = pos_b[k]
    return out


# ------------------------------------------------------------------------------------ gather and binning
@njit(cache=True, inline="always")
def _gather_one(rows, order, slots, slot_ids, k, tile_size, tiles_x, tiles_y, sorted_rows, sorted_ids, rects):
    src = order[k]
    for c in range(PACKED_WIDTH):
        sorted_rows[k, c] = rows[src, c]
    sorted_ids[k] = slot_ids[slots[src]]
    x0, x1, y0, y1 = _tile_rect(rows[src, MX], rows[src, MY], rows[src, RX], rows[src, RY], tile_size, tiles_x,
                                tiles_y)
    rects[k, 0], rects[k, 1], rects[k, 2], rects[k, 3] = x0, x1, y0, y1


@njit(cache=True)
def gather_sorted(rows, order, slots, slot_ids, tile_size, tiles_x, tiles_y):
    """Rows in depth order, their world indices and tile rectangles (x0, x1, y0, y1). Serial: a copy that reads
    each row once; ``parallel=True`` cost 2-3 s more to compile in a fresh environment."""
    n = order.shape[0]
    sorted_rows = np.empty((n, PACKED_WIDTH), dtype=rows.dtype)
    sorted_ids = np.empty(n, dtype=np.int64)
    rects = np.empty((n, 4), dtype=np.int32)
    for k in range(n):
        _gather_one(rows, order, slots, slot_ids, k, tile_size, tiles_x, tiles_y, sorted_rows, sorted_ids, rects)
    return sorted_rows, sorted_ids, rects


@njit(cache=True)
def bin_tiles(rects, tiles_x, tiles_y):
    """Per-tile lists of Gaussian indices from tile rectangles of Gaussians sorted front to back.

    Returns (offsets (T+1,), lists (I,)): tile t owns lists[offsets[t]:offsets[t+1]], in input
    order (a stable counting sort by tile), hence front to back within each tile.
    """
    n = rects.shape[0]
    num_tiles = tiles_x * tiles_y
    offsets = np.zeros(num_tiles + 1, dtype=np.int64)
    for g in range(n):
        for ty in range(rects[g, 2], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 1]):
                offsets[ty * tiles_x + tx + 1] += 1
    for t in range(num_tiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[-1], dtype=np.int32)
    for g in range(n):
        for ty in range(rects[g, 2], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 1]):
                t = ty * tiles_x + tx
                lists[fill[t]] = g
                fill[t] += 1
    return offsets, lists


# ------------------------------------------------------------------------------------------------ raster
@njit(cache=True, inline="always")
def _pixel_span(m, r, lo, hi):
    """Pixels [start, stop) of [lo, hi) whose centres lie within m +- r (floor/ceil in float64, see _tile_rect)."""
    return max(lo, math.floor(np.float64(m - r))), min(hi, math.ceil(np.float64(m + r)))


@njit(cache=True, inline="always")
def _footprint(packed, g, x0, x1, y0, y1):
    """Gaussian g's blending terms as the per-pixel rasterizers use them (float32): 2D mean, half conic a and c,
    conic b, opacity, cut-off, and its pixel box clipped to [x0, x1) x [y0, y1)."""
    mx, my = packed[g, MX], packed[g, MY]
    sx0, sx1 = _pixel_span(mx, packed[g, RX], x0, x1)
    sy0, sy1 = _pixel_span(my, packed[g, RY], y0, y1)
    return (mx, my, HALF * packed[g, CA], packed[g, CB], HALF * packed[g, CC], packed[g, OP], packed[g, CUT], sx0, sx1,
            sy0, sy1)


@njit(cache=True, inline="always")
def _pixel_alpha(mx, dy, px, ca, cb, cc, op, cut):
    """alpha = min(0.999, o exp(-sigma)) of a footprint (``_footprint``) at pixel column px of the row at dy, or 0
    where sigma is outside [0, cut] (alpha < 1/255 there: no exp computed). The pixel blends it only if it is at
    least ALPHA_THRESHOLD."""
    dx = mx - (F32(px) + HALF)
    sigma = ca * dx * dx + cc * dy * dy + cb * dx * dy
    if sigma < ZERO or sigma > cut:
        return ZERO
    return min(MAX_ALPHA, op * math.exp(-sigma))


@njit(cache=True, fastmath=True)
def _raster_tile(packed, offsets, lists, t, width, height, tile_size, tiles_x, out, t_final, last):
    """Front-to-back compositing of tile t in float32; the exp is skipped where alpha would be < 1/255."""
    ty, tx = t // tiles_x, t % tiles_x
    x0, y0 = tx * tile_size, ty * tile_size
    x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
    tw = x1 - x0
    npx = tw * (y1 - y0)
    trans = np.ones(npx, dtype=np.float32)
    acc = np.zeros((npx, FEATURES), dtype=np.float32)
    done = np.zeros(npx, dtype=np.bool_)
    last_k = np.zeros(npx, dtype=np.int64)
    n_done = 0
    for k in range(offsets[t], offsets[t + 1]):
        if n_done == npx:
            break
        g = lists[k]
        mx, my, ca, cb, cc, op, cut, sx0, sx1, sy0, sy1 = _footprint(packed, g, x0, x1, y0, y1)
        for py in range(sy0, sy1):
            dy = my - (F32(py) + HALF)
            row = (py - y0) * tw - x0
            for px in range(sx0, sx1):
                p = row + px
                if done[p]:
                    continue
                alpha = _pixel_alpha(mx, dy, px, ca, cb, cc, op, cut)
                if alpha < ALPHA_THRESHOLD:
                    continue
                next_t = trans[p] * (ONE - alpha)
                if next_t <= T_EPS:
                    done[p] = True
                    n_done += 1
                    continue
                w = alpha * trans[p]
                for ch in range(FEATURES):
                    acc[p, ch] += packed[g, COL + ch] * w
                trans[p] = next_t
                last_k[p] = k + 1
    for py in range(y0, y1):
        for px in range(x0, x1):
            p = (py - y0) * tw + (px - x0)
            for ch in range(FEATURES):
                out[py, px, ch] = acc[p, ch]
            t_final[py, px] = trans[p]
            last[py, px] = last_k[p]


@njit(parallel=True, cache=True)
def raster_forward(packed, offsets, lists, width, height, tile_size, tiles_x, out, t_final, last):
    """Front-to-back alpha compositing, tiles in parallel; writes out (H,W,4), t_final (H,W), last (H,W)."""
    for t in prange(offsets.shape[0] - 1):
        _raster_tile(packed, offsets, lists, t, width, height, tile_size, tiles_x, out, t_final, last)


# ------------------------------------------------------------------------------- median depth (colliders)
MEDIAN_T = F32(0.5)  # the median depth is the depth of the Gaussian that takes transmittance to 0.5 or below


@njit(cache=True, fastmath=True)
def _median_tile(packed, offsets, lists, t, width, height, tile_size, tiles_x, median):
    """Median depth of tile t's pixels: ``_raster_tile``'s alpha rules, stopping each pixel at the Gaussian whose
    alpha takes its transmittance to MEDIAN_T or below (0 where transmittance never gets there)."""
    ty, tx = t // tiles_x, t % tiles_x
    x0, y0 = tx * tile_size, ty * tile_size
    x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
    tw = x1 - x0
    npx = tw * (y1 - y0)
    trans = np.ones(npx, dtype=np.float32)
    n_done = 0
    for k in range(offsets[t], offsets[t + 1]):
        if n_done == npx:
            break
        g = lists[k]
        mx, my, ca, cb, cc, op, cut, sx0, sx1, sy0, sy1 = _footprint(packed, g, x0, x1, y0, y1)
        for py in range(sy0, sy1):
            dy = my - (F32(py) + HALF)
            row = (py - y0) * tw - x0
            for px in range(sx0, sx1):
                p = row + px
                if trans[p] <= MEDIAN_T:
                    continue
                alpha = _pixel_alpha(mx, dy, px, ca, cb, cc, op, cut)
                if alpha < ALPHA_THRESHOLD:
                    continue
                trans[p] *= ONE - alpha
                if trans[p] <= MEDIAN_T:
                    median[py, px] = packed[g, Z]
                    n_done += 1


@njit(cache=True, nogil=True)
def raster_median(packed, offsets, lists, first, stop, width, height, tile_size, tiles_x, median):
    """Median depth (H,W) of tiles first:stop of Gaussians sorted front to back and binned (``bin_tiles``), on the
    calling thread without the GIL (the caller runs runs of tiles on its threads, as for ``composite``: a
    ``parallel=True`` kernel measured several seconds more to compile); ``median`` comes in as zeros."""
    for t in range(first, stop):
        _median_tile(packed, offsets, lists, t, width, height, tile_size, tiles_x, median)


# ----------------------------------------------------------------- progressive composite (no gradients)
FIRST_BATCH = 1024  # Gaussians gathered, binned and blended in the first batch; later batches double


@njit(cache=True, fastmath=True)
def _blend_tile_batch(batch_rows, offsets, lists, t, band_t0, y_top, width, height, tile_size, tiles_x, acc, trans,
                      done, left, row_left):
    """Continue compositing tile t of the band (tile rows from band_t0; ``done`` rows from pixel row y_top) with
    this batch's list; the state (acc, trans, done, left, row_left) persists between batches. ``left[t]`` and
    ``row_left[y - y_top, tile column]`` count the pixels still open in the tile and in each of its pixel rows:
    a Gaussian's pass over a row whose pixels are all done is skipped before its exps are computed.

    Along a pixel row a Gaussian is exp(-sigma) with sigma quadratic in x, so one exp per row and two
    multiplications per pixel give it (forward differences in float64: e(x+1) = e(x) f(x), f(x+1) = f(x) q),
    where the per-pixel form pays an exp for every pixel.
    """
    ty, tx = band_t0 + t // tiles_x, t % tiles_x
    x0, y0 = tx * tile_size, ty * tile_size
    x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
    for k in range(offsets[t], offsets[t + 1]):
        if left[t] == 0:
            break
        g = lists[k]
        mx, my = np.float64(batch_rows[g, MX]), np.float64(batch_rows[g, MY])
        ha, hc = 0.5 * np.float64(batch_rows[g, CA]), 0.5 * np.float64(batch_rows[g, CC])
        cb = np.float64(batch_rows[g, CB])
        op, cut = batch_rows[g, OP], np.float64(batch_rows[g, CUT])
        sx0, sx1 = _pixel_span(batch_rows[g, MX], batch_rows[g, RX], x0, x1)
        sy0, sy1 = _pixel_span(batch_rows[g, MY], batch_rows[g, RY], y0, y1)
        q = math.exp(-2.0 * ha) if sx1 - sx0 > 2 else 1.0
        for py in range(sy0, sy1):
            if row_left[py - y_top, tx] == 0:
                continue
            dy = my - (py + 0.5)
            dx = mx - (sx0 + 0.5)
            sigma = ha * dx * dx + cb * dx * dy + hc * dy * dy
            step = ha * (1.0 - 2.0 * dx) - cb * dy  # sigma(x + 1) - sigma(x)
            e = math.exp(-sigma)
            f = math.exp(-step) if sx1 - sx0 > 1 else 1.0
            for px in range(sx0, sx1):
                if not done[py - y_top, px] and ZERO <= sigma <= cut:
                    alpha = min(MAX_ALPHA, op * F32(e))
                    if alpha >= ALPHA_THRESHOLD:
                        t_now = trans[py, px]
                        next_t = t_now * (ONE - alpha)
                        if next_t <= T_EPS:
                            done[py - y_top, px] = True
                            left[t] -= 1
                            row_left[py - y_top, tx] -= 1
                        else:
                            w = alpha * t_now
                            for ch in range(FEATURES):
                                acc[py, px, ch] += batch_rows[g, COL + ch] * w
                            trans[py, px] = next_t
                sigma += step
                step += 2.0 * ha
                e *= f
                f *= q


@njit(cache=True)
def _band_candidates(depth, tile_rows, cand_offsets, counts, band_t0, band_t1, near, far):
    """Positions of the projected Gaussians whose tile rows overlap the band [band_t0, band_t1) and whose depth
    lies in [near, far)."""
    n = 0
    for j in range(counts.shape[0]):
        for i in range(cand_offsets[j], cand_offsets[j] + counts[j]):
            n += tile_rows[i, 0] < band_t1 and tile_rows[i, 1] > band_t0 and near <= depth[i] < far
    positions = np.empty(n, dtype=np.int64)
    n = 0
    for j in range(counts.shape[0]):
        for i in range(cand_offsets[j], cand_offsets[j] + counts[j]):
            if tile_rows[i, 0] < band_t1 and tile_rows[i, 1] > band_t0 and near <= depth[i] < far:
                positions[n] = i
                n += 1
    return positions


@njit(cache=True)
def _depth_buckets(depth, positions):
    """``positions`` grouped by the top DEPTH_BUCKET_BITS of their depth's float32 bits, nearest bucket first
    (a counting sort; order within a bucket is arbitrary), and the buckets' starts (2^bits + 1)."""
    keys = depth.view(np.uint32)
    shift = 32 - DEPTH_BUCKET_BITS
    starts = np.zeros((1 << DEPTH_BUCKET_BITS) + 1, dtype=np.int64)
    for k in range(positions.shape[0]):
        starts[(keys[positions[k]] >> shift) + 1] += 1
    for b in range(1 << DEPTH_BUCKET_BITS):
        starts[b + 1] += starts[b]
    fill = starts[:-1].copy()
    grouped = np.empty_like(positions)
    for k in range(positions.shape[0]):
        b = keys[positions[k]] >> shift
        grouped[fill[b]] = positions[k]
        fill[b] += 1
    return grouped, starts


@njit(cache=True)
def _bin_open_tiles(rows, order, start, count, left, band_t0, band_t1, tile_size, tiles_x, batch_rows):
    """Copy rows[order[start:start+count]] to batch_rows (front to back, so the blend reads them in order)
    and return their lists for the band's tiles (offsets, batch_rows indices), leaving out the tiles whose
    pixels are all done."""
    num_tiles = tiles_x * (band_t1 - band_t0)
    offsets = np.zeros(num_tiles + 1, dtype=np.int64)
    for k in range(count):
        src = order[start + k]
        for c in range(PACKED_WIDTH):
            batch_rows[k, c] = rows[src, c]
        x0, x1, y0, y1 = _tile_rect(batch_rows[k, MX], batch_rows[k, MY], batch_rows[k, RX], batch_rows[k, RY],
                                    tile_size, tiles_x, band_t1)
        for ty in range(max(y0, band_t0), y1):
            for tx in range(x0, x1):
                t = (ty - band_t0) * tiles_x + tx
                if left[t] > 0:
                    offsets[t + 1] += 1
    for t in range(num_tiles):
        offsets[t + 1] += offsets[t]
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[-1], dtype=np.int32)
    for k in range(count):
        x0, x1, y0, y1 = _tile_rect(batch_rows[k, MX], batch_rows[k, MY], batch_rows[k, RX], batch_rows[k, RY],
                                    tile_size, tiles_x, band_t1)
        for ty in range(max(y0, band_t0), y1):
            for tx in range(x0, x1):
                t = (ty - band_t0) * tiles_x + tx
                if left[t] > 0:
                    lists[fill[t]] = k
                    fill[t] += 1
    return offsets, lists


@njit(cache=True)
def composite_band(rows, depth, tile_rows, cand_offsets, counts, slot_ids, slots, band_t0, band_t1, near, far,
                   width, height, tile_size, acc, trans, done, left, row_left):
    """Front-to-back compositing of the Gaussians with depth in [near, far) into the tile rows [band_t0, band_t1)
    of acc (H,W,4) and trans (H,W); ``done``, ``left`` and ``row_left`` (``cpu.fresh_state``) carry the pixels'
    saturation from one call to the next (a frame composited in depth ranges gives the same picture).

    The band takes the projected Gaussians that touch it in depth order, and gathers, bins and blends them in
    batches (1024, then doubling), binning each batch only into the tiles that still have pixels to fill;
    when every pixel of the band is opaque the rest is never touched (dense scenes saturate after a few
    percent of their Gaussians). The depth order is made lazily: the candidates are bucketed by the top bits
    of their depth once (``_depth_buckets``), and runs of buckets are sorted (``sort_positions``) only as the
    batches reach them. Same result as sorting, binning and blending everything at once.
    """
    tiles_x = (width + tile_size - 1) // tile_size
    band_left = left[band_t0 * tiles_x:band_t1 * tiles_x]
    if not (band_left > 0).any():
        return
    positions = _band_candidates(depth, tile_rows, cand_offsets, counts, band_t0, band_t1, near, far)
    order, bucket_starts = _depth_buckets(depth, positions)
    sorted_end, next_bucket = 0, 0
    y_top, y_end = band_t0 * tile_size, min(band_t1 * tile_size, height)
    band_done, band_row_left = done[y_top:y_end], row_left[y_top:y_end]
    num_tiles = tiles_x * (band_t1 - band_t0)
    batch_rows = np.empty((min(order.shape[0], FIRST_BATCH * 64), PACKED_WIDTH), dtype=np.float32)
    start, size = np.int64(0), np.int64(FIRST_BATCH)  # int64, not literals: one compile of the callees
    while start < order.shape[0] and (band_left > 0).any():
        count = min(size, order.shape[0] - start, batch_rows.shape[0])
        while sorted_end < start + count:  # sort the next run of buckets that covers this batch
            stop = next_bucket + 1
            while bucket_starts[stop] < start + count:
                stop += 1
            run_end = bucket_starts[stop]
            run = sort_positions(depth, order[sorted_end:run_end], slot_ids, slots)
            for r in range(run.shape[0]):  # a loop: a slice assignment compiles shape checks and messages (seconds)
                order[sorted_end + r] = run[r]
            sorted_end, next_bucket = run_end, stop
        offsets, lists = _bin_open_tiles(rows, order, start, count, band_left, band_t0, band_t1, tile_size, tiles_x,
                                         batch_rows)
        for t in range(num_tiles):
            _blend_tile_batch(batch_rows, offsets, lists, t, band_t0, y_top, width, height, tile_size, tiles_x, acc,
                              trans, band_done, band_left, band_row_left)
        start += count
        size *= 2


@njit(cache=True)
def balanced_bands(depth, tile_rows, cand_offsets, counts, near, far, tiles_y, bands):
    """Boundaries (tile rows, ascending, first 0 and last tiles_y) of at most ``bands`` bands holding about the
    same number of the projected Gaussians with depth in [near, far) each (a Gaussian counts in every tile row
    it touches): a frame's work sits where its geometry is, so bands of equal height would leave one thread
    with most of it."""
    cover = np.zeros(tiles_y + 1, dtype=np.int64)
    for j in range(counts.shape[0]):
        for i in range(cand_offsets[j], cand_offsets[j] + counts[j]):
            if near <= depth[i] < far:
                cover[min(tile_rows[i, 0], tiles_y)] += 1
                cover[min(tile_rows[i, 1], tiles_y)] -= 1
    for r in range(tiles_y):
        cover[r + 1] += cover[r]
    total = 0
    for r in range(tiles_y):
        total += cover[r]
    bands = max(1, min(bands, tiles_y))
    bounds = np.empty(bands + 1, dtype=np.int64)
    bounds[0] = 0
    made, run = 1, 0
    for r in range(tiles_y):
        run += cover[r]
        # close the band after row r once the bands so far hold their shares (the last band takes the rest)
        if made < bands and run * bands >= made * total and r + 1 < tiles_y:
            bounds[made] = r + 1
            made += 1
    bounds[made] = tiles_y
    return bounds[:made + 1]


@njit(cache=True, nogil=True)
def composite(rows, depth, tile_rows, cand_offsets, counts, view_items, slot_ids, slots, band_views, band_t0, band_t1,
              first, stop, near, far, width, height, tile_size, acc, trans, done, left, row_left):
    """``composite_band`` for the bands first:stop of one or more cameras, in turn, on the calling thread and
    without the GIL. Band k covers tile rows [band_t0[k], band_t1[k]) of camera band_views[k], whose projected
    chunks are items view_items[b]:view_items[b + 1] of cand_offsets/counts. Camera b composites its Gaussians
    with depth in [near[b], far[b]) into acc[b] (H,W,4), trans[b] (H,W) with the state done[b], left[b],
    row_left[b]; two calls on disjoint bands may run at once."""
    for k in range(first, stop):
        b = band_views[k]
        items, items_end = view_items[b], view_items[b + 1]
        composite_band(rows, depth, tile_rows, cand_offsets[items:items_end], counts[items:items_end], slot_ids, slots,
                       band_t0[k], band_t1[k], near[b], far[b], width, height, tile_size, acc[b], trans[b], done[b],
                       left[b], row_left[b])


# --------------------------------------------------------------------------------------------- backward
@njit(parallel=True, cache=True)
def raster_backward(
    packed,
    offsets,
    lists,
    width,
    height,
    tile_size,
    tiles_x,
    t_final,
    last,
    v_out,
    v_alpha_out,
    v_mean2d,
    v_conic,
    v_colors,
    v_opac,
):
    """Gradients per tile-list slot (I,...) of the forward composite; each slot belongs to one tile,
    so tiles run in parallel without races. The caller sums slots per Gaussian."""
    channels = FEATURES
    num_tiles = offsets.shape[0] - 1
    for t in prange(num_tiles):
        ty, tx = t // tiles_x, t % tiles_x
        x0, y0 = tx * tile_size, ty * tile_size
        x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
        start = offsets[t]
        for py in range(y0, y1):
            for px in range(x0, x1):
                stop = last[py, px]
                if stop <= start:
                    continue
                tf = t_final[py, px]
                trans = tf
                buf = np.zeros(channels)
                for k in range(stop - 1, start - 1, -1):
                    g = lists[k]
                    mx, my = packed[g, MX], packed[g, MY]
                    sx0, sx1 = _pixel_span(mx, packed[g, RX], px, px + 1)
                    sy0, sy1 = _pixel_span(my, packed[g, RY], py, py + 1)
                    if sx0 >= sx1 or sy0 >= sy1:
                        continue
                    dx = mx - (px + 0.5)
                    dy = my - (py + 0.5)
                    ca, cb, cc = packed[g, CA], packed[g, CB], packed[g, CC]
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0:
                        continue
                    vis = math.exp(-sigma)
                    op = packed[g, OP]
                    alpha = min(MAX_ALPHA, op * vis)
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    ra = 1.0 / (1.0 - alpha)
                    trans *= ra
                    fac = alpha * trans
                    v_alpha = 0.0
                    for ch in range(channels):
                        v_colors[k, ch] += fac * v_out[py, px, ch]
                        color = packed[g, COL + ch]
                        v_alpha += (color * trans - buf[ch] * ra) * v_out[py, px, ch]
                        buf[ch] += color * fac
                    v_alpha += tf * ra * v_alpha_out[py, px]
                    if op * vis <= MAX_ALPHA:
                        v_sigma = -op * vis * v_alpha
                        v_conic[k, 0] += 0.5 * v_sigma * dx * dx
                        v_conic[k, 1] += v_sigma * dx * dy
                        v_conic[k, 2] += 0.5 * v_sigma * dy * dy
                        v_mean2d[k, 0] += v_sigma * (ca * dx + cb * dy)
                        v_mean2d[k, 1] += v_sigma * (cb * dx + cc * dy)
                        v_opac[k] += vis * v_alpha
