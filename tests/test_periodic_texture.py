"""Periodic plane textures (lyra_sim.single_view.periodic_texture) and the plane texture's unseen cells."""

import numpy as np
import pytest
from scipy import ndimage

from lyra_sim.single_view.periodic_texture import find_lattice, masked_autocorrelation
from lyra_sim.single_view.planes import PlaneTexture

SQUARE = 6.3  # checker square side, in grid cells (no divisor of anything)
ANGLE = np.radians(20.0)
AXES = np.array([[np.cos(ANGLE), np.sin(ANGLE)], [-np.sin(ANGLE), np.cos(ANGLE)]])
TRUE_BASIS = SQUARE * np.stack([AXES[0] + AXES[1], AXES[0] - AXES[1]])  # the colour pattern's period lattice
WHITE, BLUE = np.array([0.94, 0.94, 0.94]), np.array([0.63, 0.73, 0.88])


def checker(positions: np.ndarray) -> np.ndarray:
    """Analytic colours (M, 3) of the rotated checker at grid positions (M, 2) (cell corners)."""
    along = positions @ AXES.T / SQUARE
    odd = (np.floor(along[:, 0]) + np.floor(along[:, 1])) % 2 == 1
    return np.where(odd[:, None], BLUE, WHITE)


def floor_seen(shape=(90, 130)) -> np.ndarray:
    """A floor as a camera sees it: a wedge widening away from the camera, minus an object's footprint."""
    i, j = np.indices(shape)
    wedge = np.abs(j - shape[1] / 2) < 0.25 * shape[1] + 0.35 * i
    blob = (i - 50) ** 2 + (j - 60) ** 2 < 14**2
    return wedge & ~blob


@pytest.fixture(scope="module")
def seen_checker():
    seen = floor_seen()
    positions = np.argwhere(np.ones(seen.shape, bool)).astype(np.float64)
    grid = checker(positions).reshape(*seen.shape, 3)
    return grid, seen


def test_masked_autocorrelation_of_a_stripe_pattern_peaks_at_its_period():
    values = (np.arange(60) // 5 % 2).astype(np.float64)[None, :].repeat(40, axis=0)  # stripes, period 10
    seen = np.ones_like(values, bool)
    seen[10:25, 20:40] = False
    r, count = masked_autocorrelation(values, seen)
    centre = np.array(r.shape) // 2
    assert r[tuple(centre)] == pytest.approx(1.0)
    assert r[centre[0], centre[1] + 10] == pytest.approx(1.0, abs=1e-6)  # one period: identical
    assert r[centre[0], centre[1] + 5] == pytest.approx(-1.0, abs=1e-6)  # half a period: inverted
    assert count[tuple(centre)] == seen.sum()


def test_find_lattice_recovers_a_rotated_checker_seen_in_part(seen_checker):
    grid, seen = seen_checker
    lattice = find_lattice(grid, seen)
    assert lattice is not None
    # The same lattice, not a multiple of it: each found vector is an integer combination of the true ones,
    # and the combinations have determinant +-1 (the same cell area).
    coefficients = lattice.basis @ np.linalg.inv(TRUE_BASIS)
    np.testing.assert_allclose(coefficients, np.rint(coefficients), atol=0.03)
    assert abs(round(np.linalg.det(np.rint(coefficients)))) == 1
    # The unseen cells (under the object, outside the wedge) get the checker's colour in phase.
    hidden = np.argwhere(~seen).astype(np.float64)
    right = np.linalg.norm(lattice.colors_at(hidden) - checker(hidden), axis=1) < 0.1
    assert right.mean() > 0.85  # cells on a square's edge mix both colours; a random phase gets half right


def test_plane_texture_continues_a_checker_in_phase_far_beyond_the_seen_part(seen_checker):
    grid, seen = seen_checker
    cell = 0.02
    positions = np.argwhere(seen)
    texture = PlaneTexture((positions + 0.5) * cell, grid[seen], cell=cell)
    assert "periodically" in texture.method
    far = np.stack(np.meshgrid(np.arange(300, 400), np.arange(-300, -200), indexing="ij"), -1).reshape(-1, 2)
    colours = texture.colors_at((far + 0.5) * cell)  # 4-8 m (25-45 periods) from the seen part
    right = np.linalg.norm(colours - checker(far.astype(np.float64)), axis=1) < 0.1
    assert right.mean() > 0.75  # out of phase (or a blur) would get about half (or none) right


@pytest.mark.parametrize("kind", ["flat", "noise"])
def test_find_lattice_refuses_textures_without_a_period(kind):
    rng = np.random.default_rng(3)
    seen = floor_seen()
    if kind == "flat":
        grid = np.full((*seen.shape, 3), 0.6)
    else:  # a carpet: blurred noise, correlated over a few cells but not periodic
        grid = ndimage.gaussian_filter(rng.random((*seen.shape, 3)), (1.5, 1.5, 0))
    assert find_lattice(grid, seen) is None


def test_unseen_cells_inside_a_non_periodic_texture_get_its_detail_not_a_blur():
    rng = np.random.default_rng(5)
    size, cell = 90, 0.02
    texture = 0.5 + 0.6 * (ndimage.gaussian_filter(rng.random((size, size, 3)), (1.0, 1.0, 0)) - 0.5)
    seen = np.ones((size, size), bool)
    seen[30:60, 35:65] = False  # an object's footprint in the middle of the seen floor
    positions = np.argwhere(seen)
    hole = np.argwhere(~seen)

    def detail(image):  # high-pass: what a smooth fill lacks
        return float((image - ndimage.gaussian_filter(image, (2.0, 2.0, 0))).std())

    filled = {}
    for synthesis in ("periodic", "quilt"):  # quilt: Telea inpainting under objects (issue 24's second round)
        plane = PlaneTexture((positions + 0.5) * cell, texture[seen], cell=cell, synthesis=synthesis)
        filled[synthesis] = plane.colors_at((hole + 0.5) * cell).reshape(30, 30, 3)
    seen_detail = detail(texture[5:25, 5:25])
    assert detail(filled["periodic"]) > 0.6 * seen_detail
    assert detail(filled["quilt"]) < 0.3 * seen_detail  # the control: inpainting alone blurs
    np.testing.assert_allclose(filled["periodic"].mean(axis=(0, 1)), texture[seen].mean(axis=0), atol=0.04)


def _red_box_on_checker(width=128, height=96):
    """Ray-cast RGB and z-depth of a red box (0.5 m cube) on a floor of 0.5 m checks before a wall (x = 5 m),
    camera 1.2 m high."""
    from lyra_sim.camera import look_at_matrix

    K = np.array([[100.0, 0, width / 2], [0, 100.0, height / 2], [0, 0, 1]])
    eye = np.array([0.0, 0.0, 1.2])
    w2c = look_at_matrix(eye, [3.0, 0.0, 0.0], up=(0, 0, 1)).double().numpy()
    v, u = np.meshgrid(np.arange(height) + 0.5, np.arange(width) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    lo, hi = np.array([2.0, -0.25, 0.0]), np.array([2.5, 0.25, 0.5])
    with np.errstate(divide="ignore", invalid="ignore"):
        wall = np.where(rays[..., 0] > 0, (5.0 - eye[0]) / rays[..., 0], np.inf)
        depth = np.minimum(np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf), wall)
        t0, t1 = (lo - eye) / rays, (hi - eye) / rays
        near, far = np.nanmax(np.minimum(t0, t1), -1), np.nanmin(np.maximum(t0, t1), -1)
    box = (near <= far) & (near > 0) & (near < depth)
    depth = np.where(box, near, depth)
    hit = eye + rays * depth[..., None]
    odd = (np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2 == 1
    rgb = np.where(odd[..., None], BLUE, WHITE)
    rgb = np.where((depth == wall)[..., None], [0.7, 0.65, 0.55], rgb)
    rgb = np.where(box[..., None], [0.85, 0.15, 0.1], rgb)
    return rgb.astype(np.float32), depth.astype(np.float32), K, w2c


def test_a_periodic_floor_carries_no_specks_of_the_objects_standing_on_it():
    """The floor band includes the foot of a box; the invented floor far from the image (behind the camera,
    where only the lattice colours it) shows the floor's two colours, in phase, and no red."""
    import torch

    from lyra_sim import generate_world

    rgb, depth, K, w2c = _red_box_on_checker()
    world = generate_world(rgb, depth=depth, intrinsics=K)
    assert any("periodically" in m for m in world.info["completion"]["methods"])
    c2w = np.linalg.inv(w2c)
    points = world.means.double().numpy() @ c2w[:3, :3].T + c2w[:3, 3]
    behind = (~world.observed.numpy() & (np.abs(points[:, 2]) < 0.02) & (points[:, 0] < -1.0)
              & (points[:, 0] > -4.0) & (np.abs(points[:, 1]) < 3.0))
    assert behind.sum() > 500
    colours = world.rgb[torch.from_numpy(behind)].numpy()
    # No red from the box's foot (the floor's colours have red <= green; without the clean sample and the outlier
    # test, about ten of these Gaussians are tinted up to 0.07 towards the box's red).
    assert not ((colours[:, 0] - colours[:, 1]) > 0.04).any()
    cell_centres = points[behind, :2]
    odd = (np.floor(cell_centres[:, 0] / 0.5) + np.floor(cell_centres[:, 1] / 0.5)) % 2 == 1
    expected = np.where(odd[:, None], BLUE, WHITE)
    assert (np.linalg.norm(colours - expected, axis=1) < 0.1).mean() > 0.75  # the checks in phase
