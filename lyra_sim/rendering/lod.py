"""Level of detail for the CPU rasterizer: each index chunk also exists as coarser Gaussians.

A coarse level merges the Gaussians of a chunk that share a cell of an octree over the index's Morton grid
(cells twice as wide at each level, so a merged Gaussian never spans more than its cell plus its members'
own size). A merged Gaussian matches the moments of its cell's Gaussians, each weighted by opacity x
footprint area (w = o A, A = sqrt(e2) with e2 the sum of the principal 2x2 minors of the covariance: s1 s2
for a flat disc): mean = sum w mu / W, covariance = sum w (Sigma + (mu - mean)(mu - mean)^T) / W,
SH = sum w sh / W, opacity = min(MAX_MERGED_OPACITY, sum o A / A_merged) (the cell's opaque area spread over
the merged footprint). A level is kept only if it at least halves the previous one's Gaussians, so all
levels together hold fewer Gaussians than the world.

A camera chooses per cell, not per chunk: the projection (``cpu_kernels._project_chunk``) walks each visible
chunk's octree down from its coarsest level and draws a cell merged as soon as its merged Gaussian projects to
at most ``lod_px`` pixels of standard deviation at its own depth (sqrt(trace Sigma) f / z), replacing any other
by its children (``CoarseLevels.children``) down to the exact Gaussians. Far and dense regions cost a fraction
of their Gaussians, near ones stay exact, and a camera with large pixels (a 64x48 robot camera) projects about
as many Gaussians as its pixels need rather than all it sees. ``benchmarks/bench_render.py`` and
``benchmarks/bench_env.py`` measure the error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lyra_sim.rendering.index import (
    ALPHA_THRESHOLD,
    CULL_SIGMAS,
    EXTEND,
    GCUT,
    GEOMETRY_WIDTH,
    GEXT,
    GOP,
    GX,
    GZ,
    MORTON_BITS,
    S00,
    S01,
    S02,
    S11,
    S12,
    S22,
    SceneIndex,
    chunk_boxes,
)

MAX_LEVELS = 6
MAX_MERGED_OPACITY = 0.99
FIRST_CELL_SIGMAS = 2.0  # the first level's cells are about this many median Gaussian widths wide


@dataclass(frozen=True)
class CoarseLevels:
    """Coarse levels 1..L of an index, concatenated: level l of chunk c owns rows
    chunk_starts[(l - 1) C + c] : chunk_starts[(l - 1) C + c + 1] (C chunks)."""

    geometry: np.ndarray  # (M, GEOMETRY_WIDTH) float32, same columns as SceneIndex.geometry
    sh: np.ndarray  # (M, K, 3) float32
    chunk_starts: np.ndarray  # (L C + 1,) int64
    children: np.ndarray  # (M, 2) int64: [first, stop) rows of the level below (index rows below level 1)
    radii: np.ndarray  # (M,) float64: a sphere about each merged mean holding its members' extents (culling)
    num_levels: int
    extent_boxes: np.ndarray  # (C, 2, 3) float64: each chunk's extent box over all its levels
    slot_ids: np.ndarray  # (N + M,) int64: tie-break ids of the exact rows, then of the merged rows (unused ids)


def coarse_levels(index: SceneIndex) -> CoarseLevels:
    """The coarse levels of ``index``, built on first use and kept with the index."""
    if "coarse_levels" not in index.derived:
        index.derived["coarse_levels"] = build_coarse_levels(index)
    return index.derived["coarse_levels"]


def build_coarse_levels(index: SceneIndex) -> CoarseLevels:
    """The coarse levels of ``index``. Each level is merged from the previous one (cells nest, and the moments
    of merged Gaussians combine with their total weights), so building costs about twice one pass over the
    index."""
    geometry = index.geometry.astype(np.float64)
    means, cov = geometry[:, GX:GZ + 1], _covariances(geometry)
    op = geometry[:, GOP]
    weight = op * _area(cov)
    sh, codes, starts = index.sh, index.codes, index.chunk_starts
    members = np.ones(len(means), np.int64)
    trace_std = np.sqrt(np.trace(cov, axis1=1, axis2=2))
    extent_lo, extent_hi = index.extent_boxes[:, 0].copy(), index.extent_boxes[:, 1].copy()
    levels_geometry, levels_sh, levels_starts, levels_children, levels_radii = [], [], [], [], []
    radius = CULL_SIGMAS * trace_std  # a Gaussian's extent (its largest standard deviation is at most sqrt(trace))
    below = 0  # first row of the level below in its array (exact rows: the index; merged rows: the levels')
    shift = _first_shift(index, trace_std)
    while len(levels_geometry) < MAX_LEVELS and shift < MORTON_BITS and len(means) > index.num_chunks:
        group_starts, group_chunk_starts = _cell_groups(codes, starts, shift)
        shift += 1
        if len(group_starts) > len(means) // 2:
            continue  # the cells are still too small to merge much: try cells twice as wide
        sizes = np.diff(np.append(group_starts, len(means)))
        total = np.add.reduceat(weight, group_starts)
        safe = np.maximum(total, 1e-30)[:, None]
        merged_means = np.add.reduceat(weight[:, None] * means, group_starts) / safe
        offset = means - np.repeat(merged_means, sizes, axis=0)
        radius = np.maximum.reduceat(np.linalg.norm(offset, axis=1) + radius, group_starts)
        levels_radii.append(radius)
        spread = cov + offset[:, :, None] * offset[:, None, :]
        cov = np.add.reduceat(weight[:, None, None] * spread, group_starts) / safe[:, :, None]
        means = merged_means
        merged_members = np.add.reduceat(members, group_starts)
        # the group's opaque area (sum of o A over the original Gaussians) spread over the merged footprint
        merged_op = np.clip(total / np.maximum(_area(cov), 1e-30), ALPHA_THRESHOLD, MAX_MERGED_OPACITY)
        alone = merged_members == 1
        merged_op[alone] = op[group_starts[alone]]  # a Gaussian alone in its cell stays as it is
        sh = np.add.reduceat(weight.astype(np.float32)[:, None, None] * sh, group_starts)
        sh /= safe[:, :, None].astype(np.float32)
        op, weight, members, codes, starts = merged_op, total, merged_members, codes[group_starts], group_chunk_starts
        levels_children.append(below + np.stack([group_starts, group_starts + sizes], axis=1))
        below = sum(len(g) for g in levels_geometry)
        _, boxes = chunk_boxes(means, np.sqrt(np.diagonal(cov, axis1=1, axis2=2)) * CULL_SIGMAS, starts)
        extent_lo, extent_hi = np.minimum(extent_lo, boxes[:, 0]), np.maximum(extent_hi, boxes[:, 1])
        levels_geometry.append(_geometry_rows(means, cov, op))
        levels_sh.append(sh)
        levels_starts.append(starts)
    offsets = np.cumsum([0] + [len(g) for g in levels_geometry])
    chunk_starts = np.concatenate([s[:-1] + o for s, o in zip(levels_starts, offsets, strict=False)]
                                  + [offsets[-1:]]).astype(np.int64)
    merged_geometry = (np.concatenate(levels_geometry) if levels_geometry
                       else np.zeros((0, GEOMETRY_WIDTH), np.float32))
    merged_sh = np.concatenate(levels_sh) if levels_sh else index.sh[:0]
    first_merged_id = int(index.ids.max()) + 1 if len(index.ids) else 0
    slot_ids = np.concatenate([index.ids.astype(np.int64), first_merged_id + np.arange(len(merged_geometry))])
    children = (np.concatenate(levels_children) if levels_children else np.zeros((0, 2), np.int64)).astype(np.int64)
    radii = np.concatenate(levels_radii) if levels_radii else np.zeros(0)
    return CoarseLevels(merged_geometry, merged_sh, chunk_starts, children, radii, len(levels_geometry),
                        np.stack([extent_lo, extent_hi], axis=1), slot_ids)


def _first_shift(index: SceneIndex, trace_std: np.ndarray) -> int:
    """Morton bits per axis dropped for the first level: cells about FIRST_CELL_SIGMAS median widths wide."""
    if len(trace_std) == 0:
        return MORTON_BITS
    extent = index.mean_boxes[:, 1].max(axis=0) - index.mean_boxes[:, 0].min(axis=0)
    unit = max(float(extent.max()), 1e-12) / (1 << MORTON_BITS)  # at least the Morton grid's cell (quantile box)
    width = FIRST_CELL_SIGMAS * float(np.median(trace_std))
    return int(np.clip(np.ceil(np.log2(max(width / unit, 1.0))), 1, MORTON_BITS))


def _cell_groups(codes: np.ndarray, chunk_starts: np.ndarray, shift: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts of the runs of rows sharing a Morton cell (``shift`` bits per axis dropped) inside each chunk,
    and the chunks' starts in that list of groups."""
    cells = codes >> np.uint64(3 * shift)
    boundary = np.ones(len(codes), bool)
    boundary[1:] = cells[1:] != cells[:-1]
    boundary[chunk_starts[:-1][chunk_starts[:-1] < len(codes)]] = True
    group_starts = np.flatnonzero(boundary)
    return group_starts, np.searchsorted(group_starts, chunk_starts).astype(np.int64)


def _covariances(geometry: np.ndarray) -> np.ndarray:
    cov = np.empty((len(geometry), 3, 3))
    for (i, j), col in {(0, 0): S00, (0, 1): S01, (0, 2): S02, (1, 1): S11, (1, 2): S12, (2, 2): S22}.items():
        cov[:, i, j] = cov[:, j, i] = geometry[:, col]
    return cov


def _area(cov: np.ndarray) -> np.ndarray:
    """sqrt of the sum of the principal 2x2 minors (s1 s2 for a flat disc of standard deviations s1, s2)."""
    minors = (cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2 + cov[:, 0, 0] * cov[:, 2, 2] - cov[:, 0, 2] ** 2
              + cov[:, 1, 1] * cov[:, 2, 2] - cov[:, 1, 2] ** 2)
    return np.sqrt(np.maximum(minors, 0.0))


def _geometry_rows(means: np.ndarray, cov: np.ndarray, op: np.ndarray) -> np.ndarray:
    rows = np.empty((len(means), GEOMETRY_WIDTH), np.float32)
    rows[:, GX:GZ + 1] = means
    for (i, j), col in {(0, 0): S00, (0, 1): S01, (0, 2): S02, (1, 1): S11, (1, 2): S12, (2, 2): S22}.items():
        rows[:, col] = cov[:, i, j]
    rows[:, GOP] = op
    rows[:, GEXT] = np.minimum(np.sqrt(2.0 * np.log(op / ALPHA_THRESHOLD)), EXTEND)
    rows[:, GCUT] = np.log(op / ALPHA_THRESHOLD)
    return rows
