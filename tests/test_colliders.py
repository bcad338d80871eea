"""Colliders that match what the camera sees: median depth, floaters, TSDF, agreement, measured geometry."""

import numpy as np
import pytest
import torch

from lyra_sim import GaussianWorld
from lyra_sim.camera import Camera
from lyra_sim.physics.floaters import find_floaters
from lyra_sim.rendering import render

# ------------------------------------------------------------------------------------------------ median depth


def _axis_gaussians(depths, opacities, scale=0.2):
    """Isotropic Gaussians centred on the optical axis of a camera at the origin looking along +z."""
    n = len(depths)
    means = np.zeros((n, 3))
    means[:, 2] = depths
    return GaussianWorld.from_rgb(means, np.full((n, 3), 0.5), np.full((n, 3), scale), np.asarray(opacities, float))


def _expected_median(depths, opacities, scale, f, offset):
    """Analytic median depth at a pixel ``offset`` pixels from the Gaussians' common 2D centre: each Gaussian
    projects to an isotropic 2D Gaussian of variance (f s / z)^2 + 0.3 (gsplat's eps2d blur)."""
    trans = 1.0
    for z, o in sorted(zip(depths, opacities, strict=True)):
        var = (f * scale / z) ** 2 + 0.3
        alpha = min(0.999, o * np.exp(-0.5 * offset**2 / var))
        trans *= 1 - alpha
        if trans <= 0.5:
            return z
    return 0.0


@pytest.mark.parametrize("opacities", [(0.2, 0.5, 0.9), (0.6, 0.5, 0.9), (0.1, 0.1, 0.6), (0.1, 0.1, 0.1)])
def test_median_depth_is_where_transmittance_crosses_one_half(opacities):
    depths = (1.0, 2.0, 3.0)
    world = _axis_gaussians(depths, opacities)
    width = height = 33  # principal point 16.5 = the centre of pixel 16: the Gaussians' centre pixel
    K = torch.tensor([[40.0, 0, 16.5], [0, 40.0, 16.5], [0, 0, 1]])
    out = render(world, Camera(K, torch.eye(4), width, height), median=True)
    assert out.median_depth.shape == (height, width)
    for px in (16, 19, 22, 28):  # along the row through the centre: offsets 0, 3, 6, 12 pixels
        expected = _expected_median(depths, opacities, 0.2, 40.0, px - 16)
        assert float(out.median_depth[16, px]) == pytest.approx(expected, abs=1e-4), px
    # The expected depth blends the three: never what a surface sensor would report on this ray.
    if opacities == (0.2, 0.5, 0.9):
        assert 2.05 < float(out.depth[16, 16]) < 2.3


def test_median_depth_at_a_soft_edge_is_front_or_back_never_between():
    """A soft-edged disc 1 m in front of a wall 3 m away: expected depth smears between them at the rim,
    median depth is 1 or 3."""
    rng = np.random.default_rng(0)
    wall = np.c_[rng.uniform(-2, 2, (3000, 2)), np.full(3000, 3.0)]
    disc = np.c_[rng.uniform(-0.3, 0.3, (400, 2)), np.full(400, 1.0)]
    means = np.concatenate([wall, disc])
    scales = np.concatenate([np.full((3000, 3), 0.06), np.full((400, 3), 0.05)])
    world = GaussianWorld.from_rgb(means, np.full((3400, 3), 0.5), scales, np.full(3400, 0.7))
    out = render(world, Camera.from_fov(64, 64, 60.0), median=True)
    median, depth = out.median_depth.numpy(), out.depth.numpy()
    assert (np.abs(median - 1.0) < 0.02).sum() > 50 and (np.abs(median - 3.0) < 0.02).sum() > 500
    assert ((np.abs(median - 1.0) < 0.02) | (np.abs(median - 3.0) < 0.02)).all()
    assert ((depth > 1.2) & (depth < 2.8)).sum() > 20  # the smear median depth avoids


def test_render_without_median_gives_none():
    world = _axis_gaussians((1.0,), (0.9,))
    assert render(world, Camera.from_fov(16, 16, 60.0)).median_depth is None


# --------------------------------------------------------------------------------------------------- floaters


def test_find_floaters_marks_isolated_huge_and_faint_gaussians_only():
    rng = np.random.default_rng(1)
    n = 20_000
    floor = np.c_[rng.uniform(0, 2, (n, 2)), np.zeros(n)]  # a dense surface (spacing ~1.4 cm)
    specks = np.c_[rng.uniform(0, 2, (5, 2)), np.full(5, 1.0)] + rng.uniform(-0.5, 0.5, (5, 3))  # alone in the air
    blob = np.array([[1.0, 1.0, 0.5]])  # one huge Gaussian
    means = np.concatenate([floor, specks, blob])
    scales = np.full((len(means), 3), 0.01)
    scales[-1] = 0.5
    opacity = np.full(len(means), 0.9)
    opacity[:7] = 0.01  # faint floor Gaussians
    world = GaussianWorld.from_rgb(means, np.full((len(means), 3), 0.5), scales, opacity)
    report = find_floaters(world)
    assert report.faint == 7 and report.huge == 1 and report.isolated == 5
    expected = np.zeros(len(means), bool)
    expected[:7] = expected[n:] = True
    np.testing.assert_array_equal(report.mask, expected)
    assert len(world) == len(means)  # the world keeps them
    assert "13 of 20006" in report.as_line()


# -------------------------------------------------------------------------------------------------- agreement


def _plane_mesh(planes, shift=(0.0, 0.0, 0.0)):
    """Two triangles per parallelogram (origin, u, v, normal), moved by ``shift``."""
    vertices, faces = [], []
    for origin, u, v, _ in planes:
        base = len(vertices)
        vertices += [origin, origin + u, origin + u + v, origin + v]
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    return np.asarray(vertices) + shift, np.asarray(faces)


@pytest.fixture(scope="module")
def aligned_room_world():
    from lyra_sim.align import align_world
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.03))
    return align_world(view)  # the room moves by -0.3 m in x: the camera stands over the origin


def test_agreement_of_the_true_geometry_is_near_perfect(aligned_room_world):
    from lyra_sim.physics.agreement import collider_agreement
    from lyra_sim.synthetic.gaussian_rooms import room_surfaces

    vertices, faces = _plane_mesh(room_surfaces(), shift=(-0.3, 0.0, 0.0))
    report = collider_agreement(aligned_room_world, (vertices, faces))
    # Splat depth is a Gaussian's centre depth: discs of 2.4 cm radius put the picture ~2-3 cm in front of the
    # true plane (more at grazing floor rays).
    assert report.median < 0.035 and report.within > 0.85 and report.missed == 0.0
    assert report.cameras == 20 and report.rays == 20 * 160 * 120  # the room fills every view
    assert "within 5 cm" in report.as_line()
    lifted = collider_agreement(aligned_room_world, (vertices + np.array([0.0, 0.0, 0.5]), faces))  # 0.5 m too high
    assert lifted.within < 0.3 and lifted.median > 0.3


def test_agreement_counts_the_rays_that_a_missing_box_lets_through(aligned_room_world):
    """Without the box in the collider, exactly the rays whose first true surface is the box disagree: their
    share follows from casting the true room with and without the box (no splats involved)."""
    from lyra_sim.physics.agreement import collider_agreement, ring_cameras
    from lyra_sim.physics.raycast import cast_rays
    from lyra_sim.synthetic.gaussian_rooms import room_surfaces

    cameras = ring_cameras(aligned_room_world)
    full = _plane_mesh(room_surfaces(), shift=(-0.3, 0.0, 0.0))
    empty = _plane_mesh(room_surfaces(with_box=False), shift=(-0.3, 0.0, 0.0))
    origins, directions = (a.reshape(-1, 3).numpy().astype(np.float64) for a in cameras.rays())
    t_full, t_empty = cast_rays(*full, origins, directions), cast_rays(*empty, origins, directions)
    box_share = float((np.abs(t_full - t_empty) > 0.05).mean())
    assert box_share > 0.05  # the ring sees the box
    with_box = collider_agreement(aligned_room_world, full, cameras=cameras)
    without = collider_agreement(aligned_room_world, empty, cameras=cameras)
    assert with_box.within - without.within == pytest.approx(box_share, abs=0.03)
