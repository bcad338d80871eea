"""The CPU rendering backend: numba tile rasterizer, differentiable through a custom autograd op.

Pipeline per camera: cull the world's index chunks against the view (lyra_sim.rendering.index) ->
project the Gaussians of the remaining chunks (numba) -> radix-sort the visible ones front to back ->
gather their packed rows -> bin them into 16x16 tiles -> composite each tile. A batch of cameras
renders one camera per thread. Without gradients everything stays in numba. With gradients, the
visible Gaussians' 2D means, conics, colours and depths are recomputed in torch
(lyra_sim.rendering.projection) so autograd reaches the world's tensors, and the raster step's
backward pass is the numba kernel.
"""

from __future__ import annotations

import threading

import numba
import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import cpu_kernels as kernels
from lyra_sim.rendering.index import SceneIndex, _corners, scene_index
from lyra_sim.rendering.lod import choose_levels
from lyra_sim.rendering.projection import project_ewa
from lyra_sim.sh import eval_sh_colors
from lyra_sim.world import GaussianWorld

TILE_SIZE = 16
BANDS_PER_THREAD = 1
FIRST_WAVE_SHARE = 0.25  # share of a view's Gaussians (nearest chunks first) projected before the others
WAVE_MIN_LAYERS = 2  # Gaussians per pixel the first share must hold for two waves to be worth it
_workspace = threading.local()


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable per-thread buffer: fresh multi-megabyte arrays cost page faults on every frame."""
    buf = getattr(_workspace, name, None)
    size = int(np.prod(shape))
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        setattr(_workspace, name, buf)
    return buf[:size].reshape(shape)


def _np(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def _tile_grid(width: int, height: int) -> tuple[int, int]:
    return (width + TILE_SIZE - 1) // TILE_SIZE, (height + TILE_SIZE - 1) // TILE_SIZE


class _View:
    """One camera's parameters as the kernels take them."""

    def __init__(self, camera: Camera, index: int):
        self.world_to_cam = camera.world_to_cam[index].double().numpy()
        K = camera.K[index].double().numpy()
        self.K = K
        self.intrinsics = np.array([K[0, 0], K[1, 1], K[0, 2], K[1, 2]])
        self.position = camera.position[index].double().numpy()


class _DrawList:
    """The index chunks one camera draws exactly (``chunks``) and, with a level of detail ``lod_px``, the
    coarse-level chunks it draws instead (``coarse``: ids into ``CoarseLevels.chunk_starts``)."""

    def __init__(self, index: SceneIndex, view: _View, width: int, height: int, near: float, far: float,
                 lod_px: float | None):
        self.levels = index.coarse_levels() if lod_px else None
        if self.levels is None:
            self.chunks = index.visible_chunks(view.world_to_cam, view.K, width, height, near, far)
            self.coarse = np.zeros(0, np.int64)
            self.slot_ids = index.ids
            return
        chunks = index.visible_chunks(view.world_to_cam, view.K, width, height, near, far, self.levels.extent_boxes)
        level = choose_levels(index, self.levels, chunks, view.world_to_cam, max(view.K[0, 0], view.K[1, 1]), near,
                              lod_px)
        self.chunks = chunks[level == 0]
        self.coarse = (level[level > 0] - 1) * index.num_chunks + chunks[level > 0]
        self.slot_ids = self.levels.slot_ids

    def sizes(self, index: SceneIndex) -> np.ndarray:
        """Gaussians in each chunk drawn: the exact chunks', then the coarse ones'."""
        sizes = index.chunk_starts[self.chunks + 1] - index.chunk_starts[self.chunks]
        if self.levels is None:
            return sizes
        starts = self.levels.chunk_starts
        return np.concatenate([sizes, starts[self.coarse + 1] - starts[self.coarse]])


class _Projected:
    """One camera's projected Gaussians: drawn chunk j's visible rows are rows[offsets[j] : offsets[j] + counts[j]]
    (packed rows, depths, index slots, tile-row ranges); ``slot_ids`` maps slots to tie-break ids. Every chunk
    is projected unless ``project_all`` is False (then ``project`` the chunks when needed)."""

    def __init__(self, index: SceneIndex, view: _View, width: int, height: int, near: float, far: float,
                 eps2d: float, lod_px: float | None = None, project_all: bool = True):
        self.index, self.view, self.size, self.clip, self.eps2d = index, view, (width, height), (near, far), eps2d
        self.draw = _DrawList(index, view, width, height, near, far, lod_px)
        self.slot_ids = self.draw.slot_ids
        sizes = self.draw.sizes(index)
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        capacity = int(self.offsets[-1])
        self.rows = _scratch("rows", (capacity, kernels.PACKED_WIDTH), np.float32)
        self.depth = _scratch("depth", (capacity,), np.float32)
        self.slots = _scratch("slots", (capacity,), np.int64)
        self.tile_rows = _scratch("tile_rows", (capacity, 2), np.int32)
        self.counts = np.zeros(len(sizes), np.int64)
        if project_all:
            self.project(np.arange(len(sizes)))

    def project(self, selected: np.ndarray) -> None:
        """Project the drawn chunks ``selected`` (positions in the draw list: exact chunks, then coarse ones)."""
        index, draw, view, (width, height), (near, far) = self.index, self.draw, self.view, self.size, self.clip
        fine = len(draw.chunks)
        parts = [(index.geometry, index.sh, index.chunk_starts, draw.chunks, selected[selected < fine], 0, 0)]
        if len(draw.coarse):
            levels = draw.levels
            parts.append((levels.geometry, levels.sh, levels.chunk_starts, draw.coarse,
                          selected[selected >= fine], fine, len(index.ids)))
        for geometry, sh, chunk_starts, chunks, chosen, first, slot_base in parts:
            if len(chosen) == 0:
                continue
            counts = np.zeros(len(chosen), np.int64)
            kernels.project_chunks(geometry, sh, chunk_starts, chunks[chosen - first], self.offsets[chosen],
                                   view.world_to_cam, view.position, view.intrinsics, width, height, TILE_SIZE,
                                   self.eps2d, near, far, self.rows, self.depth, self.slots, self.tile_rows, counts,
                                   slot_base)
            self.counts[chosen] = counts

    def nearest_depths(self) -> np.ndarray:
        """Each drawn chunk's smallest mean depth (no Gaussian of the chunk is nearer), float64."""
        index, draw = self.index, self.draw
        chunks = np.concatenate([draw.chunks, draw.coarse % max(index.num_chunks, 1)]).astype(np.int64)
        w2c = self.view.world_to_cam
        return (_corners(index.mean_boxes[chunks]) @ w2c[2, :3] + w2c[2, 3]).min(axis=1)

    def sorted_order(self) -> np.ndarray:
        """Positions of the visible rows, front to back."""
        return kernels.depth_sort(self.depth, self.offsets, self.counts, self.slot_ids, self.slots)


def _front_end(index: SceneIndex, view: _View, width: int, height: int, near: float, far: float, eps2d: float):
    """Sorted packed rows (front to back), their world indices and tile rectangles for one camera."""
    projected = _Projected(index, view, width, height, near, far, eps2d)
    return kernels.gather_sorted(projected.rows, projected.sorted_order(), projected.slots, index.ids,
                                 TILE_SIZE, *_tile_grid(width, height))


def _band_count(height: int, threads: int) -> int:
    """Bands of the parallel composite: BANDS_PER_THREAD per thread. numba's workqueue threading layer splits
    a prange into one contiguous run per thread whatever ``parallel_chunksize`` says (measured: 8 bands on
    2 threads ran 1.2x faster than one band, 2 balanced bands 1.8x), so more bands would only add the work of
    the Gaussians that cross a band's edge (each band sorts and bins them)."""
    return BANDS_PER_THREAD * max(1, threads)


class _Tiles:
    """Tile lists and image geometry shared by the forward and backward raster passes."""

    def __init__(self, rects: np.ndarray, width: int, height: int):
        self.width, self.height = width, height
        self.tiles_x, tiles_y = _tile_grid(width, height)
        self.offsets, self.lists = kernels.bin_tiles(rects, self.tiles_x, tiles_y)

    def forward(self, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        out = np.zeros((self.height, self.width, kernels.FEATURES), dtype=np.float32)
        t_final = np.ones((self.height, self.width), dtype=np.float32)
        last = np.zeros((self.height, self.width), dtype=np.int64)
        kernels.raster_forward(packed, self.offsets, self.lists, self.width, self.height, TILE_SIZE, self.tiles_x,
                               out, t_final, last)
        return out, t_final, last


def _pack(mean2d, conic, features, opacities, radii) -> np.ndarray:
    """Packed float32 rows (see cpu_kernels column constants) from separate tensors."""
    cut = torch.log(opacities * 255.0).unsqueeze(-1)
    cols = [mean2d, conic, opacities.unsqueeze(-1), features, radii.to(features), cut]
    return _np(torch.cat([c.detach().to(features.dtype) for c in cols], dim=-1))


class _RasterizeFunction(torch.autograd.Function):
    """(mean2d, conic, features, opacities) of sorted Gaussians -> (accumulated features, alpha)."""

    @staticmethod
    def forward(ctx, mean2d, conic, features, opacities, radii, rects, width, height):
        packed = _pack(mean2d, conic, features, opacities, radii)
        tiles = _Tiles(rects, width, height)
        out, t_final, last = tiles.forward(packed)
        ctx.tiles, ctx.packed, ctx.t_final, ctx.last = tiles, packed, t_final, last
        dtype = features.dtype
        return torch.from_numpy(out).to(dtype), torch.from_numpy(1.0 - t_final).to(dtype)

    @staticmethod
    def backward(ctx, v_out, v_alpha):
        tiles, packed = ctx.tiles, ctx.packed
        dtype = np.float64
        slots = tiles.lists.shape[0]
        v_mean2d = np.zeros((slots, 2), dtype)
        v_conic = np.zeros((slots, 3), dtype)
        v_features = np.zeros((slots, kernels.FEATURES), dtype)
        v_opac = np.zeros(slots, dtype)
        kernels.raster_backward(
            packed, tiles.offsets, tiles.lists, tiles.width, tiles.height, TILE_SIZE, tiles.tiles_x,
            ctx.t_final, ctx.last, _np(v_out, dtype), _np(v_alpha, dtype), v_mean2d, v_conic, v_features, v_opac,
        )
        index = torch.from_numpy(tiles.lists.astype(np.int64))
        count = packed.shape[0]

        def per_gaussian(slot_grads: np.ndarray) -> torch.Tensor:
            grads = torch.from_numpy(slot_grads)
            summed = torch.zeros((count, *grads.shape[1:]), dtype=grads.dtype).index_add_(0, index, grads)
            return summed.to(v_out.dtype)

        return (per_gaussian(v_mean2d), per_gaussian(v_conic), per_gaussian(v_features), per_gaussian(v_opac),
                None, None, None, None)


def _needs_grad(world: GaussianWorld) -> bool:
    return torch.is_grad_enabled() and any(
        t.requires_grad for t in (world.means, world.quats, world.scales, world.opacities, world.sh)
    )


def _render_differentiable(world: GaussianWorld, camera: Camera, b: int, near: float, far: float, eps2d: float):
    """One camera with autograd: the numba front end picks and sorts the visible Gaussians, torch recomputes
    their projection and colours, the raster op's backward is the numba kernel."""
    w, h = camera.width, camera.height
    view = _View(camera, b)
    sorted_rows, ids, rects = _front_end(scene_index(world), view, w, h, near, far, eps2d)
    idx = torch.from_numpy(ids).to(world.device)
    means = world.means[idx]
    w2c, K = torch.from_numpy(view.world_to_cam), torch.from_numpy(view.K)
    mean2d, conic, depth = project_ewa(means, world.quats[idx], world.scales[idx], w2c.float(), K, w, h, eps2d)
    colors = eval_sh_colors(world.sh[idx], means - torch.from_numpy(view.position).to(means))
    features = torch.cat([colors, depth.unsqueeze(-1)], dim=-1)
    radii = torch.from_numpy(sorted_rows[:, kernels.RX : kernels.RY + 1].copy())
    return _RasterizeFunction.apply(mean2d, conic, features, world.opacities[idx], radii, rects, w, h)


def _render_one(index: SceneIndex, camera: Camera, b: int, near: float, far: float, eps2d: float,
                lod_px: float | None, acc: np.ndarray, trans: np.ndarray) -> None:
    """One camera without autograd into acc (H,W,4) and trans (H,W), nearest chunks first: the chunks holding the
    nearest FIRST_WAVE_SHARE of the Gaussians are projected and composited up to the depth where the others
    begin; only if some pixel is still not opaque are the others projected and composited (a dense view
    never projects most of what lies behind its first surfaces). A view whose first share could not cover
    its pixels WAVE_MIN_LAYERS deep goes in one wave: two waves cost a second parallel launch of each stage
    (measured 1.07-1.13x the wall time of one on 2 threads when the second wave has to run). Projection is
    parallel over index chunks, compositing over bands of tile rows; the picture is that of compositing
    everything at once."""
    w, h = camera.width, camera.height
    p = _Projected(index, _View(camera, b), w, h, near, far, eps2d, lod_px, project_all=False)
    nearest = p.nearest_depths()
    by_depth = np.argsort(nearest, kind="stable")
    sizes = np.diff(p.offsets)[by_depth]
    first = min(len(by_depth), int(np.searchsorted(np.cumsum(sizes), FIRST_WAVE_SHARE * sizes.sum())) + 1)
    if FIRST_WAVE_SHARE * sizes.sum() < WAVE_MIN_LAYERS * w * h:
        first = len(by_depth)
    # Every Gaussian of a later chunk is at least this deep (less a margin for the float32 means and depths).
    boundary = nearest[by_depth[first]] if first < len(by_depth) else np.inf
    boundary = float(np.float32(boundary - 1e-5 * abs(boundary) - 1e-6)) if np.isfinite(boundary) else np.inf
    done, left, row_left = kernels.fresh_state(w, h, TILE_SIZE)
    tiles_y = _tile_grid(w, h)[1]
    for selected, lo, hi in ((by_depth[:first], 0.0, boundary), (by_depth[first:], boundary, np.inf)):
        if not left.any() or lo == hi:
            break
        p.project(selected)
        bounds = kernels.balanced_bands(p.depth, p.tile_rows, p.offsets, p.counts, lo, hi, tiles_y,
                                        _band_count(h, numba.get_num_threads()))
        kernels.composite(p.rows, p.depth, p.tile_rows, p.offsets, p.counts, p.slot_ids, p.slots, bounds, lo, hi,
                          w, h, TILE_SIZE, acc, trans, done, left, row_left)


def _offsets(lists: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated int64 lists and the offsets of each."""
    return (np.concatenate([*lists, np.zeros(0, np.int64)]),
            np.concatenate([[0], np.cumsum([len(c) for c in lists])]).astype(np.int64))


def _render_batch(index: SceneIndex, camera: Camera, near: float, far: float, eps2d: float, lod_px: float | None,
                  acc: np.ndarray, trans: np.ndarray) -> None:
    """All cameras without autograd into acc (B,H,W,4) and trans (B,H,W), one camera per thread."""
    w, h, count = camera.width, camera.height, len(camera)
    views = [_View(camera, b) for b in range(count)]
    draws = [_DrawList(index, v, w, h, near, far, lod_px) for v in views]
    levels = draws[0].levels
    if levels is None:
        coarse_arrays = (np.zeros((0, index.geometry.shape[1]), np.float32), index.sh[:0], np.zeros(1, np.int64))
    else:
        coarse_arrays = (levels.geometry, levels.sh, levels.chunk_starts)
    costs = [int(d.sizes(index).sum()) for d in draws]  # Gaussians to project: an estimate of each camera's cost
    order, group_starts = _camera_groups(costs, numba.get_num_threads())
    kernels.render_batch(
        index.geometry, index.sh, index.chunk_starts, *coarse_arrays, draws[0].slot_ids,
        *_offsets([d.chunks for d in draws]), *_offsets([d.coarse for d in draws]),
        np.stack([v.world_to_cam for v in views]), np.stack([v.position for v in views]),
        np.stack([v.intrinsics for v in views]), w, h, TILE_SIZE, eps2d, near, far, order, group_starts, acc, trans,
    )


def _camera_groups(costs: list[int], threads: int) -> tuple[np.ndarray, np.ndarray]:
    """Cameras split into ``threads`` groups of about equal cost (largest first, each to the cheapest group so
    far): the camera order, group by group, and the groups' starts in it."""
    groups: list[list[int]] = [[] for _ in range(max(1, min(threads, len(costs))))]
    totals = [0] * len(groups)
    for camera in sorted(range(len(costs)), key=lambda c: -costs[c]):
        cheapest = totals.index(min(totals))
        groups[cheapest].append(camera)
        totals[cheapest] += costs[camera]
    order = np.array([camera for group in groups for camera in group], np.int64)
    return order, np.concatenate([[0], np.cumsum([len(g) for g in groups])]).astype(np.int64)


def median_depth_cpu(world: GaussianWorld, camera: Camera, near: float, far: float, eps2d: float) -> torch.Tensor:
    """Median depth (B,H,W) of every camera: the depth of the Gaussian at which a pixel's transmittance first
    drops to 0.5 or below, 0 where it never does. Soft edges give the front or the back surface, never a depth
    between them as the expected depth does (collision proxies render it). No gradients."""
    index = scene_index(world)
    w, h = camera.width, camera.height
    tiles_x, tiles_y = _tile_grid(w, h)
    median = np.zeros((len(camera), h, w), np.float32)
    for b in range(len(camera)):
        sorted_rows, _, rects = _front_end(index, _View(camera, b), w, h, near, far, eps2d)
        offsets, lists = kernels.bin_tiles(rects, tiles_x, tiles_y)
        kernels.raster_median(sorted_rows, offsets, lists, w, h, TILE_SIZE, tiles_x, median[b])
    return torch.from_numpy(median).to(world.means.dtype)


def render_cpu(
    world: GaussianWorld, camera: Camera, near: float, far: float, eps2d: float, background: torch.Tensor,
    lod_px: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render every camera of ``camera``: RGB (B,H,W,3) over ``background`` (3,), expected depth, alpha.

    ``lod_px``: draw chunks whose merged Gaussians project to at most this many pixels of standard deviation
    at their coarser level of detail (lyra_sim.rendering.lod; no gradients only); None draws every Gaussian.
    Several cameras without gradients render one camera per thread, sharing the world's index. Without
    gradients the images are finished in numpy: torch's thread pool would wake for these small element-wise
    steps, and waking threads costs milliseconds when the machine is busy.
    """
    dtype = world.means.dtype
    if _needs_grad(world):
        parts = [_render_differentiable(world, camera, b, near, far, eps2d) for b in range(len(camera))]
        out, alpha = (torch.stack(p).to(dtype) for p in zip(*parts, strict=True))
        rgb = out[..., :3] + (1.0 - alpha).unsqueeze(-1) * background.to(out)
        return rgb, out[..., 3] / alpha.clamp_min(1e-10), alpha
    index = scene_index(world)
    acc = np.zeros((len(camera), camera.height, camera.width, kernels.FEATURES), np.float32)
    trans = np.ones((len(camera), camera.height, camera.width), np.float32)
    if len(camera) > 1 and numba.get_num_threads() > 1:
        _render_batch(index, camera, near, far, eps2d, lod_px, acc, trans)
    else:
        for b in range(len(camera)):
            _render_one(index, camera, b, near, far, eps2d, lod_px, acc[b], trans[b])
    alpha = 1.0 - trans
    depth = acc[..., 3] / np.maximum(alpha, np.float32(1e-10))
    rgb = acc[..., :3] + trans[..., None] * background.numpy().astype(np.float32)
    return tuple(torch.from_numpy(a).to(dtype) for a in (rgb, depth, alpha))
