"""Level of detail (lyra_sim.rendering.lod): merged Gaussians match their cells' moments, far dense surfaces
are drawn with fewer Gaussians and nearly the same picture, and no LOD (or LOD 0) is the exact render."""

import math

import numpy as np
import pytest
import torch

from lyra_sim import Camera, GaussianWorld, render
from lyra_sim.rendering import cpu as cpu_backend
from lyra_sim.rendering.index import CULL_MARGIN_PX, GOP, GX, GZ, S00, S01, S02, S11, S12, S22, build_index
from lyra_sim.rendering.lod import MAX_MERGED_OPACITY, build_coarse_levels
from lyra_sim.sh import rgb_to_sh0


def checker_floor(n_side: int = 300, size: float = 6.0) -> GaussianWorld:
    """A dense textured floor (flat discs on a grid at z = 0, a 0.5 m checker of two colours)."""
    spacing = size / n_side
    xs = (np.arange(n_side) + 0.5) * spacing - size / 2
    x, y = np.meshgrid(xs, xs + size / 2 + 0.5, indexing="ij")
    means = np.stack([x.ravel(), y.ravel(), np.zeros(x.size)], -1)
    checker = ((np.floor(means[:, 0] / 0.5) + np.floor(means[:, 1] / 0.5)) % 2)[:, None]
    rgb = checker * np.array([[0.9, 0.8, 0.3]]) + (1 - checker) * np.array([[0.2, 0.3, 0.7]])
    scales = np.tile([0.6 * spacing, 0.6 * spacing, 0.02 * spacing], (len(means), 1))
    return GaussianWorld.from_rgb(torch.tensor(means).float(), torch.tensor(rgb).float(), torch.tensor(scales).float(),
                                  torch.full((len(means),), 0.9))


def robot_camera(width: int = 96, height: int = 72) -> Camera:
    return Camera.look_at([0.0, 0.0, 0.4], [0.0, 3.0, 0.0], up=[0.0, 0.0, 1.0], width=width, height=height,
                          fov_deg=90)


def _covariance(rows: np.ndarray) -> np.ndarray:
    cov = np.empty((len(rows), 3, 3))
    for (i, j), col in {(0, 0): S00, (0, 1): S01, (0, 2): S02, (1, 1): S11, (1, 2): S12, (2, 2): S22}.items():
        cov[:, i, j] = cov[:, j, i] = rows[:, col]
    return cov


def test_merged_gaussians_match_the_moments_of_their_cells():
    world = checker_floor(n_side=40, size=2.0)
    index = build_index(world, chunk_size=2048)  # one chunk: every cell whole, so members are nearest their merge
    levels = build_coarse_levels(index)
    assert levels.num_levels >= 2
    level_one = levels.geometry[levels.chunk_starts[0]:levels.chunk_starts[index.num_chunks]]
    assert len(level_one) <= len(index.geometry) // 2  # a kept level at least halves the Gaussians
    # Recompute level 1 by hand: find each exact Gaussian's merged Gaussian (nearest merged mean among cells).
    rows = index.geometry.astype(np.float64)
    cov = _covariance(rows)
    minors = (cov[:, 0, 0] * cov[:, 1, 1] - cov[:, 0, 1] ** 2 + cov[:, 0, 0] * cov[:, 2, 2] - cov[:, 0, 2] ** 2
              + cov[:, 1, 1] * cov[:, 2, 2] - cov[:, 1, 2] ** 2)
    weight = rows[:, GOP] * np.sqrt(minors)
    merged_means = level_one[:, GX:GZ + 1].astype(np.float64)
    owner = np.argmin(((rows[:, None, GX:GZ + 1] - merged_means[None]) ** 2).sum(-1), axis=1)
    for cell in range(0, len(level_one), 7):
        members = np.flatnonzero(owner == cell)
        w = weight[members] / weight[members].sum()
        mean = (w[:, None] * rows[members, GX:GZ + 1]).sum(0)
        offset = rows[members, GX:GZ + 1] - mean
        expected = (w[:, None, None] * (cov[members] + offset[:, :, None] * offset[:, None, :])).sum(0)
        np.testing.assert_allclose(merged_means[cell], mean, atol=1e-5)
        np.testing.assert_allclose(_covariance(level_one[cell:cell + 1])[0], expected, rtol=1e-4, atol=1e-9)
        if len(members) > 1:
            area = math.sqrt(expected[0, 0] * expected[1, 1] - expected[0, 1] ** 2 + expected[0, 0] * expected[2, 2]
                             - expected[0, 2] ** 2 + expected[1, 1] * expected[2, 2] - expected[1, 2] ** 2)
            opacity = min(MAX_MERGED_OPACITY, (rows[members, GOP] * np.sqrt(minors[members])).sum() / area)
            assert level_one[cell, GOP] == pytest.approx(opacity, rel=1e-4)


def test_lod_off_or_zero_is_the_exact_render():
    world = checker_floor(n_side=120)
    cam = robot_camera()
    exact = render(world, cam, backend="cpu")
    for lod in (None, 0, 0.0):
        out = render(world, cam, backend="cpu", lod=lod)
        assert torch.equal(out.rgb, exact.rgb) and torch.equal(out.alpha, exact.alpha)


def test_far_dense_floor_is_drawn_with_fewer_gaussians_and_nearly_the_same_picture():
    world = checker_floor()
    cam = robot_camera()
    index = cpu_backend.scene_index(world)
    view = cpu_backend._Views(cam)
    exact_rows = cpu_backend._Projected(index, view, cam.width, cam.height, 0.01, 1e10, 0.3).counts.sum()
    lod_rows = cpu_backend._Projected(index, view, cam.width, cam.height, 0.01, 1e10, 0.3, lod_px=0.5).counts.sum()
    assert lod_rows < 0.5 * exact_rows
    exact = render(world, cam, backend="cpu")
    out = render(world, cam, backend="cpu", lod=0.5)
    # The error is the far checker averaged where its squares shrink to a few pixels (measured: 30.4 dB).
    psnr = 10 * math.log10(1.0 / float(((out.rgb - exact.rgb) ** 2).mean()))
    assert psnr > 28.0
    covered = exact.alpha > 0.5
    assert float((out.alpha[covered] > 0.5).float().mean()) > 0.99  # no holes where the floor is


def test_batched_cameras_with_lod_equal_single_renders():
    world = checker_floor(n_side=150)
    cams = [robot_camera(), Camera.look_at([0.5, 0.2, 0.3], [-1.0, 4.0, 0.0], up=[0, 0, 1], width=96, height=72,
                                           fov_deg=90)]
    batched = render(world, Camera.stack(cams), backend="cpu", lod=1.0)
    for b, cam in enumerate(cams):
        single = render(world, cam, backend="cpu", lod=1.0)
        assert torch.equal(batched.rgb[b], single.rgb)  # same kernels, one band per camera vs bands: bit-exact


def test_lod_is_refused_when_not_a_pixel_count():
    world = checker_floor(n_side=10)
    for bad in (-1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="lod"):
            render(world, robot_camera(), backend="cpu", lod=bad)


def test_rgb_to_sh0_round_trip_keeps_merged_colours_in_range():
    """Merging averages SH coefficients with positive weights, so plain colours stay plain colours."""
    world = checker_floor(n_side=60)
    levels = build_coarse_levels(build_index(world))
    dc = levels.sh[:, 0]
    low, high = rgb_to_sh0(torch.tensor([[0.2, 0.3, 0.3]]))[0, 0], rgb_to_sh0(torch.tensor([[0.9, 0.8, 0.7]]))[0, 0]
    assert (dc >= low.numpy() - 1e-5).all() and (dc <= high.numpy() + 1e-5).all()


def test_lod_too_fine_for_any_cell_is_the_exact_render():
    """A level of detail no merged cell fits walks every chunk down to its exact Gaussians, each once (the
    children ranges tile the level below; the out-of-view test drops nothing visible): bit for bit the exact
    picture, from a camera whose view holds part of the world and leaves the rest behind and beside it."""
    world = checker_floor(n_side=150)
    cams = Camera.stack([robot_camera(), Camera.look_at([0.5, 2.0, 0.3], [-2.0, 1.0, 0.0], up=[0, 0, 1], width=96,
                                                        height=72, fov_deg=70)])
    exact = render(world, cams, backend="cpu")
    walked = render(world, cams, backend="cpu", lod=1e-9)
    assert torch.equal(walked.rgb, exact.rgb) and torch.equal(walked.depth, exact.depth)
    assert float(exact.alpha.mean()) > 0.3


def test_merged_cells_hold_their_members_and_children_tile_each_level():
    world = checker_floor(n_side=60)
    index = build_index(world, chunk_size=256)
    levels = build_coarse_levels(index)
    assert levels.num_levels >= 2
    chunks = index.num_chunks
    below_geometry = index.geometry
    for level in range(1, levels.num_levels + 1):
        rows = slice(levels.chunk_starts[(level - 1) * chunks], levels.chunk_starts[level * chunks])
        children = levels.children[rows]
        # consecutive, covering the level below exactly once
        assert children[0, 0] == (0 if level == 1 else levels.chunk_starts[(level - 2) * chunks])
        np.testing.assert_array_equal(children[1:, 0], children[:-1, 1])
        assert children[-1, 1] == (len(index.geometry) if level == 1 else rows.start)
        means = levels.geometry[rows, GX:GZ + 1].astype(np.float64)
        for r in range(0, len(children), 5):
            members = below_geometry[children[r, 0]:children[r, 1], GX:GZ + 1]
            distance = np.linalg.norm(members - means[r], axis=1)
            assert distance.max() <= levels.radii[rows][r] * (1 + 1e-6)
        below_geometry = levels.geometry


def _reference_cut(index, levels, cam: Camera, lod_px: float) -> set[int]:
    """Slots a camera draws with ``lod_px``, by the rule written out in Python (lyra_sim.rendering.lod): from each
    chunk's coarsest level down, a cell whose merged Gaussian's sqrt(trace Sigma) f / z is at most lod_px (in front
    of the near plane) is drawn merged, a cell whose members' sphere is out of view is dropped, any other is
    replaced by its children (exact rows below level 1). Visibility is left to the projection (not checked here)."""
    w2c, K = cam.world_to_cam[0].double().numpy(), cam.K[0].double().numpy()
    focal, (fx, fy, cx, cy) = max(K[0, 0], K[1, 1]), (K[0, 0], K[1, 1], K[0, 2], K[1, 2])
    m = CULL_MARGIN_PX
    planes = [np.array([fx, 0, -(cam.width + m - cx)]), np.array([-fx, 0, -(m + cx)]),
              np.array([0, fy, -(cam.height + m - cy)]), np.array([0, -fy, -(m + cy)])]
    n_rows, chunks = len(index.geometry), index.num_chunks
    slots: set[int] = set()

    def visit(r: int, level: int) -> None:
        row = levels.geometry[r].astype(np.float64)
        p = w2c[:3, :3] @ row[GX:GZ + 1] + w2c[:3, 3]
        if p[2] >= 0.01 and math.sqrt(row[S00] + row[S11] + row[S22]) * focal <= lod_px * p[2]:
            slots.add(n_rows + r)
            return
        radius = levels.radii[r]
        if p[2] + radius < 0.01 or any(plane @ p > radius * np.linalg.norm(plane) for plane in planes):
            return
        lo, hi = levels.children[r]
        if level == 1:
            slots.update(range(lo, hi))
        else:
            for child in range(lo, hi):
                visit(child, level - 1)

    top = levels.num_levels
    for c in index.visible_chunks(w2c, K, cam.width, cam.height, 0.01, 1e10, levels.extent_boxes):
        for r in range(levels.chunk_starts[(top - 1) * chunks + c], levels.chunk_starts[(top - 1) * chunks + c + 1]):
            visit(int(r), top)
    return slots


@pytest.mark.parametrize("lod_px", [0.7, 2.0])
def test_octree_walk_draws_the_cells_the_rule_picks(lod_px):
    """The projection kernel's walk (runs of cells projected together) draws exactly the cells the rule picks,
    each projected like an exact Gaussian (the same kernel projects every Gaussian of the chunks exactly)."""
    world = checker_floor(n_side=120)
    cam = Camera.look_at([0.3, 0.0, 0.4], [-0.5, 3.0, 0.0], up=[0.0, 0.0, 1.0], width=64, height=48, fov_deg=90)
    index = cpu_backend.scene_index(world)
    levels = cpu_backend.coarse_levels(index)
    assert levels.num_levels >= 2
    projected = cpu_backend._Projected(index, cpu_backend._Views(cam), 64, 48, 0.01, 1e10, 0.3, lod_px=lod_px)
    drawn = np.concatenate([projected.slots[o:o + c] for o, c in zip(projected.offsets, projected.counts,
                                                                         strict=False)])
    assert len(np.unique(drawn)) == len(drawn)  # each cell once
    expected = _reference_cut(index, levels, cam, lod_px)
    merged = drawn[drawn >= len(index.geometry)]
    assert 0 < len(merged) < len(drawn)  # both merged and exact rows on this view
    assert set(drawn.tolist()) <= expected  # the walk draws nothing the rule does not pick...
    # ...and what it leaves out of the rule's pick is off-image (the projection's own culling): projected alone,
    # exactly, none of those rows is visible.
    missing = np.array(sorted(expected - set(drawn.tolist())), np.int64)
    n_rows = len(index.geometry)
    for geometry, sh, rows_missing in ((index.geometry, index.sh, missing[missing < n_rows]),
                                       (levels.geometry, levels.sh, missing[missing >= n_rows] - n_rows)):
        assert _visible_alone(geometry[rows_missing], sh[rows_missing], cam) == 0


def _visible_alone(geometry: np.ndarray, sh: np.ndarray, cam: Camera) -> int:
    """How many of these geometry rows the exact projection kernel finds visible from ``cam``."""
    n = len(geometry)
    if n == 0:
        return 0
    views, kernels = cpu_backend._Views(cam), cpu_backend.kernels
    counts = np.zeros(1, np.int64)
    kernels.project_chunks(
        np.ascontiguousarray(geometry), np.ascontiguousarray(sh), np.array([0, n], np.int64), np.zeros(1, np.int64),
        np.zeros(1, np.int64), np.zeros(1, np.int64), 0, 1, views.world_to_cam, views.position, views.intrinsics,
        cam.width, cam.height, 16, 0.3, 0.01, 1e10, np.empty((n, kernels.PACKED_WIDTH), np.float32),
        np.empty(n, np.float32), np.empty(n, np.int64), np.empty((n, 2), np.int32), counts)
    return int(counts[0])
