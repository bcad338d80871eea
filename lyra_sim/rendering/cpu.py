"""The CPU rendering backend: numba tile rasterizer, differentiable through a custom autograd op.

Pipeline per camera: cull the world's index chunks against the view (lyra_sim.rendering.index) ->
project the Gaussians of the remaining chunks (numba) -> radix-sort the visible ones front to back ->
gather their packed rows -> bin them into 16x16 tiles -> composite each tile. A batch of cameras is
projected by all threads over all the cameras' chunks, then composited one camera at a time per thread (the
kernels release the GIL; a pool of Python threads runs them).
Without gradients everything stays in numba. With gradients, the
visible Gaussians' 2D means, conics, colours and depths are recomputed in torch
(lyra_sim.rendering.projection) so autograd reaches the world's tensors, and the raster step's
backward pass is the numba kernel.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading

import numba
import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.rendering import cpu_kernels as kernels
from lyra_sim.rendering.index import SceneIndex, box_corners, scene_index
from lyra_sim.rendering.lod import coarse_levels
from lyra_sim.rendering.projection import project_ewa
from lyra_sim.sh import eval_sh_colors
from lyra_sim.thread_pools import ProcessThreadPool
from lyra_sim.world import GaussianWorld

TILE_SIZE = 16
BANDS_PER_THREAD = 1
FIRST_WAVE_SHARE = 0.25  # share of a view's Gaussians (nearest chunks first) projected before the others
WAVE_MIN_LAYERS = 2  # Gaussians per pixel the first share must hold for two waves to be worth it
# Cameras projected together: their projected rows are all held at once (72 bytes a Gaussian; 8 robot cameras of
# a 2M-Gaussian world that each see a quarter of it: ~290 MB), so a larger batch goes in parts.
BATCH_CAMERAS = 8
_workspace = threading.local()
#: The render threads (the kernels release the GIL): the caller runs one run, this pool the others.
_THREADS = ProcessThreadPool(lambda: numba.config.NUMBA_NUM_THREADS - 1, "lyra-cpu")


def _in_parallel(kernel, args_before: tuple, bounds: np.ndarray, args_after: tuple) -> None:
    """Run ``kernel(*args_before, first, stop, *args_after)`` for each run [bounds[i], bounds[i + 1]), one run per
    thread (this one takes the first); numba's thread count (``numba.set_num_threads``) says how many runs the
    callers make."""
    runs = [(int(a), int(b)) for a, b in itertools.pairwise(bounds) if b > a]
    futures = [_THREADS.get().submit(kernel, *args_before, a, b, *args_after) for a, b in runs[1:]]
    try:
        for a, b in runs[:1]:
            kernel(*args_before, a, b, *args_after)
    finally:
        for future in futures:
            future.result()


def _equal_runs(weights: np.ndarray, parts: int) -> np.ndarray:
    """Boundaries of at most ``parts`` contiguous runs of about equal total weight."""
    if len(weights) == 0:
        return np.zeros(1, np.int64)
    total = np.cumsum(weights, dtype=np.float64)
    cuts = np.searchsorted(total, total[-1] * np.arange(1, parts) / parts, side="right")
    return np.unique(np.concatenate([[0], cuts, [len(weights)]])).astype(np.int64)


def _scratch(name: str, shape: tuple[int, ...], dtype) -> np.ndarray:
    """A reusable per-thread buffer: fresh multi-megabyte arrays cost page faults on every frame."""
    buf = getattr(_workspace, name, None)
    size = int(np.prod(shape))
    if buf is None or buf.size < size or buf.dtype != dtype:
        buf = np.empty(max(size, 1), dtype)
        setattr(_workspace, name, buf)
    return buf[:size].reshape(shape)


#: CPU seconds each entry kernel took to compile, with its callees, on the 2-core reference machine (numba's compile
#: events; benchmarks/RESULTS.md, "First use"): what the compile message announces.
COMPILE_SECONDS = {"project_chunks": 2, "project_chunks_lod": 2, "composite": 8, "balanced_bands": 1}
_announced: set[str] = set()


def _compiled_or_cached(kernel) -> bool:
    """Whether numba has ``kernel`` compiled in this process or in its cache (loading takes well under a second)."""
    if kernel.signatures:
        return True
    try:  # numba's cache index of the function (not a public API: if its layout changes, say nothing)
        return os.path.exists(kernel._cache._cache_file._index_path)
    except AttributeError:
        return True


def _wait_for_background(group: str) -> None:
    """Wait for this process's background compile of the kernel ``group``, if one runs (lyra_sim.rendering.warmup;
    imported here, not at the top: ``python -m lyra_sim.rendering.warmup`` must find it not yet imported)."""
    from lyra_sim.rendering.warmup import wait_for

    wait_for(group)


def announce_compile(lod: bool = False) -> None:
    """Say so, once per process, when the next render (with a level of detail: ``lod``) must compile kernels (a
    fresh environment)."""
    needed = (kernels.project_chunks_lod if lod else kernels.project_chunks, kernels.composite,
              kernels.balanced_bands)
    if all(k.__name__ in _announced for k in needed):
        return
    cold = [k for k in needed if k.__name__ not in _announced and not _compiled_or_cached(k)]
    _announced.update(k.__name__ for k in needed)
    if cold:
        seconds = sum(COMPILE_SECONDS[k.__name__] for k in cold)
        print(f"lyra_sim: compiling the CPU renderer, once: ~{seconds} s (numba keeps it in its cache)",
              file=sys.stderr, flush=True)


def _np(t: torch.Tensor, dtype=np.float32) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=dtype)


def _tile_grid(width: int, height: int) -> tuple[int, int]:
    return (width + TILE_SIZE - 1) // TILE_SIZE, (height + TILE_SIZE - 1) // TILE_SIZE


class _Views:
    """Cameras' parameters as the kernels take them: world-to-camera (B,4,4), K (B,3,3), intrinsics (B,4) as
    fx fy cx cy, positions (B,3), float64."""

    def __init__(self, camera: Camera, cameras: list[int] | None = None):
        cameras = list(range(len(camera))) if cameras is None else cameras
        self.world_to_cam = camera.world_to_cam[cameras].double().numpy()
        self.K = camera.K[cameras].double().numpy()
        self.intrinsics = np.stack([self.K[:, 0, 0], self.K[:, 1, 1], self.K[:, 0, 2], self.K[:, 1, 2]], axis=1)
        self.position = camera.position[cameras].double().numpy()

    def __len__(self) -> int:
        return len(self.world_to_cam)


class _Projected:
    """Cameras' projected Gaussians: the index chunks each camera sees are the items; item j (chunk ``chunks[j]``
    seen by camera ``item_views[j]``; camera b's items are ``view_items[b]:view_items[b + 1]``) has its visible
    rows at rows[offsets[j] : offsets[j] + counts[j]] (packed rows, depths, index slots, tile-row ranges);
    ``slot_ids`` maps slots to tie-break ids. With a level of detail ``lod_px`` each chunk is drawn cell by cell
    at the coarsest level that fits (lyra_sim.rendering.lod). Every item is projected unless ``project_all`` is
    False (then ``project`` the items when needed)."""

    def __init__(self, index: SceneIndex, views: _Views, width: int, height: int, near: float, far: float,
                 eps2d: float, lod_px: float | None = None, project_all: bool = True):
        self.index, self.views, self.size, self.clip, self.eps2d = index, views, (width, height), (near, far), eps2d
        levels = coarse_levels(index) if lod_px else None
        if levels is None or levels.num_levels == 0:  # exact: every Gaussian of the visible chunks
            self.kernel, self.levels, self.slot_ids = kernels.project_chunks, (), index.ids
        else:
            self.kernel, self.slot_ids = kernels.project_chunks_lod, levels.slot_ids
            self.levels = (levels.geometry, levels.sh, levels.chunk_starts, levels.children, levels.radii,
                           levels.num_levels, float(lod_px))
        boxes = None if levels is None else levels.extent_boxes
        per_view = index.visible_chunks_of(views.world_to_cam, views.K, width, height, near, far, boxes)
        self.chunks = np.concatenate([*per_view, np.zeros(0, np.int64)]).astype(np.int64)
        self.item_views = np.repeat(np.arange(len(views)), [len(c) for c in per_view]).astype(np.int64)
        self.view_items = np.concatenate([[0], np.cumsum([len(c) for c in per_view])]).astype(np.int64)
        sizes = index.chunk_starts[self.chunks + 1] - index.chunk_starts[self.chunks]  # a walk draws no more
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
        """Project the items ``selected`` (positions in ``chunks``)."""
        index, views, (width, height), (near, far) = self.index, self.views, self.size, self.clip
        if len(selected) == 0:
            return
        counts = np.zeros(len(selected), np.int64)
        offsets = self.offsets[selected]
        runs = _equal_runs(self.offsets[selected + 1] - offsets, numba.get_num_threads())
        _in_parallel(self.kernel,
                     (index.geometry, index.sh, index.chunk_starts, *self.levels, self.chunks[selected],
                      self.item_views[selected], offsets), runs,
                     (views.world_to_cam, views.position, views.intrinsics, width, height, TILE_SIZE, self.eps2d,
                      near, far, self.rows, self.depth, self.slots, self.tile_rows, counts))
        self.counts[selected] = counts

    def nearest_depths(self) -> np.ndarray:
        """Each item's smallest mean depth in its camera (no Gaussian of the chunk, merged or not, is nearer: merged
        means average their members'), float64."""
        w2c = self.views.world_to_cam[self.item_views]
        corners = box_corners(self.index.mean_boxes[self.chunks])  # (J, 8, 3)
        return (np.einsum("jkc,jc->jk", corners, w2c[:, 2, :3]) + w2c[:, 2, 3:4]).min(axis=1)

    def sorted_order(self) -> np.ndarray:
        """Positions of the visible rows, front to back."""
        return kernels.depth_sort(self.depth, self.offsets, self.counts, self.slot_ids, self.slots)


def fresh_state(cameras: int, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Compositing state of empty images: ``done`` (B, H, W) opaque pixels, ``left`` (B, tiles) open pixels per
    tile (row-major tiles), ``row_left`` (B, H, tile columns) open pixels per tile row segment."""
    tiles_x, tiles_y = _tile_grid(width, height)
    tile_w = np.minimum(TILE_SIZE, width - TILE_SIZE * np.arange(tiles_x))
    tile_h = np.minimum(TILE_SIZE, height - TILE_SIZE * np.arange(tiles_y))
    left = np.outer(tile_h, tile_w).astype(np.int64).ravel()
    return (np.zeros((cameras, height, width), np.bool_), np.tile(left, (cameras, 1)),
            np.tile(tile_w.astype(np.int64), (cameras, height, 1)))


def _front_end(index: SceneIndex, views: _Views, width: int, height: int, near: float, far: float, eps2d: float):
    """Sorted packed rows (front to back), their world indices and tile rectangles for one camera."""
    projected = _Projected(index, views, width, height, near, far, eps2d)
    return kernels.gather_sorted(projected.rows, projected.sorted_order(), projected.slots, index.ids,
                                 TILE_SIZE, *_tile_grid(width, height))


def _band_count(height: int, threads: int) -> int:
    """Bands of the parallel composite: BANDS_PER_THREAD per thread, each thread compositing one (measured when
    numba's prange ran them: 8 bands on 2 threads ran 1.2x faster than one band, 2 balanced bands 1.8x); more
    bands would only add the work of the Gaussians that cross a band's edge (each band sorts and bins them)."""
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
    view = _Views(camera, [b])
    sorted_rows, ids, rects = _front_end(scene_index(world), view, w, h, near, far, eps2d)
    idx = torch.from_numpy(ids).to(world.device)
    means = world.means[idx]
    w2c, K = torch.from_numpy(view.world_to_cam[0]), torch.from_numpy(view.K[0])
    mean2d, conic, depth = project_ewa(means, world.quats[idx], world.scales[idx], w2c.float(), K, w, h, eps2d)
    colors = eval_sh_colors(world.sh[idx], means - torch.from_numpy(view.position[0]).to(means))
    features = torch.cat([colors, depth.unsqueeze(-1)], dim=-1)
    radii = torch.from_numpy(sorted_rows[:, kernels.RX : kernels.RY + 1].copy())
    return _RasterizeFunction.apply(mean2d, conic, features, world.opacities[idx], radii, rects, w, h)


def _render_one(index: SceneIndex, camera: Camera, near: float, far: float, eps2d: float, lod_px: float | None,
                acc: np.ndarray, trans: np.ndarray) -> None:
    """One camera without autograd into acc (1,H,W,4) and trans (1,H,W), nearest chunks first: the chunks holding
    the nearest FIRST_WAVE_SHARE of the Gaussians are projected and composited up to the depth where the others
    begin; only if some pixel is still not opaque are the others projected and composited (a dense view
    never projects most of what lies behind its first surfaces). A view whose first share could not cover
    its pixels WAVE_MIN_LAYERS deep goes in one wave: two waves cost a second parallel launch of each stage
    (measured 1.07-1.13x the wall time of one on 2 threads when the second wave has to run). Projection is
    parallel over index chunks, compositing over bands of tile rows; the picture is that of compositing
    everything at once."""
    w, h = camera.width, camera.height
    p = _Projected(index, _Views(camera), w, h, near, far, eps2d, lod_px, project_all=False)
    nearest = p.nearest_depths()
    by_depth = np.argsort(nearest, kind="stable")
    sizes = np.diff(p.offsets)[by_depth]
    first = min(len(by_depth), int(np.searchsorted(np.cumsum(sizes), FIRST_WAVE_SHARE * sizes.sum())) + 1)
    if FIRST_WAVE_SHARE * sizes.sum() < WAVE_MIN_LAYERS * w * h:
        first = len(by_depth)
    # Every Gaussian of a later chunk is at least this deep (less a margin for the float32 means and depths).
    boundary = nearest[by_depth[first]] if first < len(by_depth) else np.inf
    boundary = float(np.float32(boundary - 1e-5 * abs(boundary) - 1e-6)) if np.isfinite(boundary) else np.inf
    done, left, row_left = fresh_state(1, w, h)
    tiles_y = _tile_grid(w, h)[1]
    for selected, lo, hi in ((by_depth[:first], 0.0, boundary), (by_depth[first:], boundary, np.inf)):
        if not left.any() or lo == hi:
            break
        p.project(selected)
        bounds = kernels.balanced_bands(p.depth, p.tile_rows, p.offsets, p.counts, lo, hi, tiles_y,
                                        _band_count(h, numba.get_num_threads()))
        bands = len(bounds) - 1
        _in_parallel(kernels.composite,
                     (p.rows, p.depth, p.tile_rows, p.offsets, p.counts, p.view_items, p.slot_ids, p.slots,
                      np.zeros(bands, np.int64), bounds[:-1], bounds[1:]), np.arange(bands + 1),
                     (np.array([lo]), np.array([hi]), w, h, TILE_SIZE, acc, trans, done, left, row_left))


def _render_batch(index: SceneIndex, camera: Camera, near: float, far: float, eps2d: float, lod_px: float | None,
                  acc: np.ndarray, trans: np.ndarray) -> None:
    """All cameras without autograd into acc (B,H,W,4) and trans (B,H,W): the projection is parallel over every
    camera's chunks, then each camera composites as one band, the cameras in one group per thread of about
    equal cost (the Gaussians each projected)."""
    w, h, count = camera.width, camera.height, len(camera)
    p = _Projected(index, _Views(camera), w, h, near, far, eps2d, lod_px)
    costs = [int(p.counts[a:b].sum()) for a, b in itertools.pairwise(p.view_items)]
    order, group_starts = _camera_groups(costs, numba.get_num_threads())
    tiles_y = _tile_grid(w, h)[1]
    _in_parallel(kernels.composite,
                 (p.rows, p.depth, p.tile_rows, p.offsets, p.counts, p.view_items, p.slot_ids, p.slots, order,
                  np.zeros(count, np.int64), np.full(count, tiles_y, np.int64)), group_starts,
                 (np.zeros(count), np.full(count, np.inf), w, h, TILE_SIZE, acc, trans, *fresh_state(count, w, h)))


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
    _wait_for_background("median")
    index = scene_index(world)
    w, h = camera.width, camera.height
    tiles_x, tiles_y = _tile_grid(w, h)
    median = np.zeros((len(camera), h, w), np.float32)
    for b in range(len(camera)):
        sorted_rows, _, rects = _front_end(index, _Views(camera, [b]), w, h, near, far, eps2d)
        offsets, lists = kernels.bin_tiles(rects, tiles_x, tiles_y)
        _in_parallel(kernels.raster_median, (sorted_rows, offsets, lists),
                     _equal_runs(np.diff(offsets), numba.get_num_threads()), (w, h, TILE_SIZE, tiles_x, median[b]))
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
        _wait_for_background("median")  # the front end's kernels
        parts = [_render_differentiable(world, camera, b, near, far, eps2d) for b in range(len(camera))]
        out, alpha = (torch.stack(p).to(dtype) for p in zip(*parts, strict=True))
        rgb = out[..., :3] + (1.0 - alpha).unsqueeze(-1) * background.to(out)
        return rgb, out[..., 3] / alpha.clamp_min(1e-10), alpha
    for group in ("exact", "lod") if lod_px else ("exact",):
        _wait_for_background(group)  # a background compile of the kernels, if one runs
    announce_compile(lod=bool(lod_px))
    index = scene_index(world)
    acc = np.zeros((len(camera), camera.height, camera.width, kernels.FEATURES), np.float32)
    trans = np.ones((len(camera), camera.height, camera.width), np.float32)
    if len(camera) > 1:
        for first in range(0, len(camera), BATCH_CAMERAS):
            part = slice(first, first + BATCH_CAMERAS)
            _render_batch(index, camera[part], near, far, eps2d, lod_px, acc[part], trans[part])
    else:
        _render_one(index, camera, near, far, eps2d, lod_px, acc, trans)
    alpha = 1.0 - trans
    depth = acc[..., 3] / np.maximum(alpha, np.float32(1e-10))
    rgb = acc[..., :3] + trans[..., None] * background.numpy().astype(np.float32)
    return tuple(torch.from_numpy(a).to(dtype) for a in (rgb, depth, alpha))
