"""The CPU renderer as it was before issue 13 (float64 blend, every Gaussian projected, sorted and binned).

Kept for tests only: the faster pipeline in lyra_sim.rendering must give the same images. No gradients.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

ALPHA_THRESHOLD = 1.0 / 255.0
MAX_ALPHA = 0.999
T_EPS = 1e-4
EXTEND = 3.33
# Columns of a packed Gaussian row (float32): 2D mean, conic (a, b, c), opacity, RGB, depth, radii.
MX, MY, CA, CB, CC, OP, COL, Z, RX, RY = 0, 1, 2, 3, 4, 5, 6, 9, 10, 11
PACKED_WIDTH = 12
FEATURES = 4  # RGB + depth, composited together


@njit(cache=True)
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


@njit(parallel=True, cache=True, fastmath=False)
def project_gaussians(
    means,
    quats,
    scales,
    opacities,
    sh,
    viewmat,
    cam_pos,
    fx,
    fy,
    cx,
    cy,
    width,
    height,
    eps2d,
    near,
    far,
    packed,
    depth,
):
    """Project N Gaussians into ``packed`` rows (see the column constants) and ``depth`` (N,).

    Culled Gaussians get radius 0 in columns RX and RY. Colours are the SH colours seen from
    ``cam_pos`` (gsplat's rule: SH + 0.5, clamped at 0).
    """
    n = means.shape[0]
    degree = round(math.sqrt(sh.shape[1])) - 1
    r00, r01, r02, t0 = viewmat[0, 0], viewmat[0, 1], viewmat[0, 2], viewmat[0, 3]
    r10, r11, r12, t1 = viewmat[1, 0], viewmat[1, 1], viewmat[1, 2], viewmat[1, 3]
    r20, r21, r22, t2 = viewmat[2, 0], viewmat[2, 1], viewmat[2, 2], viewmat[2, 3]
    tan_fovx = 0.5 * width / fx
    tan_fovy = 0.5 * height / fy
    lim_x_pos = (width - cx) / fx + 0.3 * tan_fovx
    lim_x_neg = cx / fx + 0.3 * tan_fovx
    lim_y_pos = (height - cy) / fy + 0.3 * tan_fovy
    lim_y_neg = cy / fy + 0.3 * tan_fovy
    for i in prange(n):
        packed[i, RX] = 0.0
        packed[i, RY] = 0.0
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        x = r00 * mx + r01 * my + r02 * mz + t0
        y = r10 * mx + r11 * my + r12 * mz + t1
        z = r20 * mx + r21 * my + r22 * mz + t2
        if z < near or z > far:
            continue
        op = opacities[i]
        if op < ALPHA_THRESHOLD:
            continue
        rz = 1.0 / z
        tx = z * min(lim_x_pos, max(-lim_x_neg, x * rz))
        ty = z * min(lim_y_pos, max(-lim_y_neg, y * rz))
        # J (2x3) @ R_cam (3x3)
        j00, j02 = fx * rz, -fx * tx * rz * rz
        j11, j12 = fy * rz, -fy * ty * rz * rz
        a0 = j00 * r00 + j02 * r20
        a1 = j00 * r01 + j02 * r21
        a2 = j00 * r02 + j02 * r22
        b0 = j11 * r10 + j12 * r20
        b1 = j11 * r11 + j12 * r21
        b2 = j11 * r12 + j12 * r22
        # rotation of the Gaussian from its quaternion (normalised)
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        qn = 1.0 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw, qx, qy, qz = qw * qn, qx * qn, qy * qn, qz * qn
        m00 = 1 - 2 * (qy * qy + qz * qz)
        m01 = 2 * (qx * qy - qw * qz)
        m02 = 2 * (qx * qz + qw * qy)
        m10 = 2 * (qx * qy + qw * qz)
        m11 = 1 - 2 * (qx * qx + qz * qz)
        m12 = 2 * (qy * qz - qw * qx)
        m20 = 2 * (qx * qz - qw * qy)
        m21 = 2 * (qy * qz + qw * qx)
        m22 = 1 - 2 * (qx * qx + qy * qy)
        s0, s1, s2 = scales[i, 0], scales[i, 1], scales[i, 2]
        # rows of (J R_cam R_q S)
        u0 = (a0 * m00 + a1 * m10 + a2 * m20) * s0
        u1 = (a0 * m01 + a1 * m11 + a2 * m21) * s1
        u2 = (a0 * m02 + a1 * m12 + a2 * m22) * s2
        v0 = (b0 * m00 + b1 * m10 + b2 * m20) * s0
        v1 = (b0 * m01 + b1 * m11 + b2 * m21) * s1
        v2 = (b0 * m02 + b1 * m12 + b2 * m22) * s2
        c00 = u0 * u0 + u1 * u1 + u2 * u2 + eps2d
        c01 = u0 * v0 + u1 * v1 + u2 * v2
        c11 = v0 * v0 + v1 * v1 + v2 * v2 + eps2d
        det = c00 * c11 - c01 * c01
        if det <= 0.0:
            continue
        extend = min(EXTEND, math.sqrt(2.0 * math.log(op / ALPHA_THRESHOLD)))
        rad_x = math.ceil(extend * math.sqrt(c00))
        rad_y = math.ceil(extend * math.sqrt(c11))
        if rad_x <= 0.0 and rad_y <= 0.0:
            continue
        px = fx * x * rz + cx
        py = fy * y * rz + cy
        if px + rad_x <= 0 or px - rad_x >= width or py + rad_y <= 0 or py - rad_y >= height:
            continue
        inv_det = 1.0 / det
        packed[i, MX] = px
        packed[i, MY] = py
        packed[i, CA] = c11 * inv_det
        packed[i, CB] = -c01 * inv_det
        packed[i, CC] = c00 * inv_det
        packed[i, OP] = op
        dx, dy, dz = mx - cam_pos[0], my - cam_pos[1], mz - cam_pos[2]
        inv = 1.0 / max(math.sqrt(dx * dx + dy * dy + dz * dz), 1e-12)
        for ch in range(3):
            packed[i, COL + ch] = _sh_color(sh, i, ch, dx * inv, dy * inv, dz * inv, degree)
        packed[i, Z] = z
        packed[i, RX] = rad_x
        packed[i, RY] = rad_y
        depth[i] = z


@njit(cache=True)
def _tile_rect(mx, my, rx, ry, tile_size, tiles_x, tiles_y):
    x0 = min(max(math.floor((mx - rx) / tile_size), 0), tiles_x)
    x1 = min(max(math.ceil((mx + rx) / tile_size), 0), tiles_x)
    y0 = min(max(math.floor((my - ry) / tile_size), 0), tiles_y)
    y1 = min(max(math.ceil((my + ry) / tile_size), 0), tiles_y)
    return x0, x1, y0, y1


@njit(cache=True)
def depth_order(depth):
    """Stable argsort of positive float32 depths: LSD radix sort on their IEEE bits (2 x 16-bit passes).

    Positive floats order like their bit patterns; radix sort is ~5x faster than a comparison
    sort here and stable, so ties keep index order as in gsplat's tile sort.
    """
    n = depth.shape[0]
    keys = depth.view(np.uint32).copy()
    keys_tmp = np.empty_like(keys)
    order = np.arange(n).astype(np.int32)
    order_tmp = np.empty_like(order)
    for radix_pass in range(2):
        shift = 16 * radix_pass
        starts = np.zeros(65537, dtype=np.int64)
        for i in range(n):
            starts[((keys[i] >> shift) & 0xFFFF) + 1] += 1
        for d in range(65536):
            starts[d + 1] += starts[d]
        for i in range(n):
            digit = (keys[i] >> shift) & 0xFFFF
            pos = starts[digit]
            starts[digit] += 1
            order_tmp[pos] = order[i]
            keys_tmp[pos] = keys[i]
        keys, keys_tmp = keys_tmp, keys
        order, order_tmp = order_tmp, order
    return order


@njit(parallel=True, cache=True)
def gather_rows(rows, index):
    """rows[index] for a 2D array, in parallel (one cache line per packed row)."""
    out = np.empty((index.shape[0], rows.shape[1]), dtype=rows.dtype)
    for i in prange(index.shape[0]):
        for j in range(rows.shape[1]):
            out[i, j] = rows[index[i], j]
    return out


@njit(parallel=True, cache=True)
def bin_tiles(packed, tile_size, tiles_x, tiles_y):
    """Per-tile lists of Gaussian indices, given Gaussians already sorted front to back.

    Returns (offsets (T+1,), lists (I,)): tile t owns lists[offsets[t]:offsets[t+1]], in input
    order (a stable counting sort by tile), hence front to back within each tile.
    """
    n = packed.shape[0]
    num_tiles = tiles_x * tiles_y
    counts = np.zeros(num_tiles + 1, dtype=np.int64)
    rects = np.empty((n, 4), dtype=np.int32)
    for g in prange(n):
        x0, x1, y0, y1 = _tile_rect(
            packed[g, MX], packed[g, MY], packed[g, RX], packed[g, RY], tile_size, tiles_x, tiles_y
        )
        rects[g, 0], rects[g, 1], rects[g, 2], rects[g, 3] = x0, x1, y0, y1
    for g in range(n):
        for ty in range(rects[g, 2], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 1]):
                counts[ty * tiles_x + tx + 1] += 1
    offsets = np.cumsum(counts)
    fill = offsets[:-1].copy()
    lists = np.empty(offsets[-1], dtype=np.int32)
    for g in range(n):
        x0, x1, y0, y1 = rects[g, 0], rects[g, 1], rects[g, 2], rects[g, 3]
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                t = ty * tiles_x + tx
                lists[fill[t]] = g
                fill[t] += 1
    return offsets, lists


@njit(cache=True)
def _pixel_span(m, r, lo, hi):
    """Pixels [start, stop) of [lo, hi) whose centres lie within m +- r."""
    return max(lo, math.floor(m - r)), min(hi, math.ceil(m + r))


@njit(parallel=True, cache=True)
def raster_forward(packed, offsets, lists, width, height, tile_size, tiles_x, out, t_final, last):
    """Front-to-back alpha compositing per tile; writes out (H,W,4), t_final (H,W), last (H,W)."""
    channels = FEATURES
    num_tiles = offsets.shape[0] - 1
    for t in prange(num_tiles):
        ty, tx = t // tiles_x, t % tiles_x
        x0, y0 = tx * tile_size, ty * tile_size
        x1, y1 = min(x0 + tile_size, width), min(y0 + tile_size, height)
        tw = x1 - x0
        npx = tw * (y1 - y0)
        trans = np.ones(npx)
        acc = np.zeros((npx, channels))
        done = np.zeros(npx, dtype=np.bool_)
        last_k = np.zeros(npx, dtype=np.int64)
        n_done = 0
        for k in range(offsets[t], offsets[t + 1]):
            if n_done == npx:
                break
            g = lists[k]
            mx, my = packed[g, MX], packed[g, MY]
            ca, cb, cc = packed[g, CA], packed[g, CB], packed[g, CC]
            op = packed[g, OP]
            sx0, sx1 = _pixel_span(mx, packed[g, RX], x0, x1)
            sy0, sy1 = _pixel_span(my, packed[g, RY], y0, y1)
            for py in range(sy0, sy1):
                dy = my - (py + 0.5)
                for px in range(sx0, sx1):
                    p = (py - y0) * tw + (px - x0)
                    if done[p]:
                        continue
                    dx = mx - (px + 0.5)
                    sigma = 0.5 * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                    if sigma < 0.0:
                        continue
                    alpha = min(MAX_ALPHA, op * math.exp(-sigma))
                    if alpha < ALPHA_THRESHOLD:
                        continue
                    next_t = trans[p] * (1.0 - alpha)
                    if next_t <= T_EPS:
                        done[p] = True
                        n_done += 1
                        continue
                    w = alpha * trans[p]
                    for ch in range(channels):
                        acc[p, ch] += packed[g, COL + ch] * w
                    trans[p] = next_t
                    last_k[p] = k + 1
        for py in range(y0, y1):
            for px in range(x0, x1):
                p = (py - y0) * tw + (px - x0)
                for ch in range(channels):
                    out[py, px, ch] = acc[p, ch]
                t_final[py, px] = trans[p]
                last[py, px] = last_k[p]


def render_previous(world, camera, near=0.01, far=1e10, eps2d=0.3, tile_size=16):
    """(rgb (H,W,3) without background, alpha (H,W)) of one camera, the pre-issue-13 way."""
    w, h = camera.width, camera.height
    K, w2c = camera.K[0].double(), camera.world_to_cam[0].double()
    n = len(world)
    packed = np.empty((n, PACKED_WIDTH), np.float32)
    depth = np.empty(n, np.float32)

    def arr(t):
        return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)

    project_gaussians(
        arr(world.means), arr(world.quats), arr(world.scales), arr(world.opacities), arr(world.sh),
        w2c.numpy(), camera.position[0].double().numpy(), float(K[0, 0]), float(K[1, 1]), float(K[0, 2]),
        float(K[1, 2]), w, h, eps2d, near, far, packed, depth,
    )
    visible = np.flatnonzero(packed[:, RX] > 0)
    order = visible[depth_order(depth[visible])]
    rows = gather_rows(packed, order.astype(np.int32))
    tiles_x, tiles_y = (w + tile_size - 1) // tile_size, (h + tile_size - 1) // tile_size
    offsets, lists = bin_tiles(rows, tile_size, tiles_x, tiles_y)
    out = np.zeros((h, w, FEATURES), np.float32)
    t_final = np.ones((h, w), np.float32)
    last = np.zeros((h, w), np.int64)
    raster_forward(rows, offsets, lists, w, h, tile_size, tiles_x, out, t_final, last)
    return out[..., :3], 1.0 - t_final
