"""Image quilting (lyra_sim.single_view.quilting) and the plane texture that uses it."""

import numpy as np
import pytest

from lyra_sim.single_view.planes import PlaneTexture
from lyra_sim.single_view.quilting import min_error_cut, quilt

BLOCK, OVERLAP = 18, 5


def _checker(size: int = 60, period: int = 7, shading: float = 0.0) -> np.ndarray:
    """Colour checks of ``period`` pixels (not a divisor of the block step: random tiling breaks them), their
    blue channel shaded by ``shading`` x a sine across the image (a lighting gradient)."""
    yy, xx = np.mgrid[0:size, 0:size]
    check = (((yy // period) + (xx // period)) % 2).astype(np.float32)
    blue = 0.4 + 0.05 * np.random.default_rng(0).standard_normal((size, size)) + shading * np.sin(xx / 5.0)
    return np.stack([0.2 + 0.7 * check, 0.5 - 0.3 * check, blue], axis=-1).astype(np.float32)


def _neighbour_energy(image: np.ndarray) -> float:
    """Mean squared colour difference of horizontally and vertically adjacent pixels."""
    return float(0.5 * (((image[1:] - image[:-1]) ** 2).sum(-1).mean() + ((image[:, 1:] - image[:, :-1]) ** 2)
                        .sum(-1).mean()))


def _random_tiling(sample: np.ndarray, shape, block: int, rng) -> np.ndarray:
    """Random sample blocks side by side, no overlap, no cut: the baseline quilting improves on."""
    out = np.zeros((*shape, sample.shape[2]), np.float32)
    for y in range(0, shape[0], block):
        for x in range(0, shape[1], block):
            sy, sx = rng.integers(sample.shape[0] - block + 1), rng.integers(sample.shape[1] - block + 1)
            piece = sample[sy : sy + block, sx : sx + block]
            out[y : y + block, x : x + block] = piece[: shape[0] - y, : shape[1] - x]
    return out


@pytest.fixture(scope="module")
def quilted():
    sample = _checker()
    return sample, quilt(sample, (150, 130), BLOCK, OVERLAP, np.random.default_rng(1))


def test_min_error_cut_follows_the_cheapest_path():
    cost = np.ones((12, 6))
    path = np.array([1, 1, 2, 3, 3, 4, 4, 3, 2, 2, 1, 0])  # moves at most one column per row
    cost[np.arange(12), path] = 0.0
    mask = min_error_cut(cost)
    assert (mask.argmax(axis=1) == path).all()  # the new block starts at the path in every row
    assert all(mask[i, path[i]:].all() and not mask[i, :path[i]].any() for i in range(12))


def test_quilt_is_made_of_sample_pixels_with_its_statistics(quilted):
    sample, out = quilted
    assert out.shape == (150, 130, 3)
    colours = {tuple(c) for c in sample.reshape(-1, 3).round(5)}
    assert all(tuple(c) in colours for c in out.reshape(-1, 3).round(5))  # every pixel copied from the sample
    np.testing.assert_allclose(out.mean(axis=(0, 1)), sample.mean(axis=(0, 1)), atol=0.05)
    np.testing.assert_allclose(out.std(axis=(0, 1)), sample.std(axis=(0, 1)), rtol=0.15, atol=0.01)


def test_quilt_seams_cost_less_than_random_tiling(quilted):
    sample, out = quilted
    random = _random_tiling(sample, out.shape[:2], BLOCK, np.random.default_rng(1))
    own = _neighbour_energy(sample)  # the edges the texture itself has; seams add to them
    excess_quilted, excess_random = _neighbour_energy(out) - own, _neighbour_energy(random) - own
    print(f"neighbour energy over the sample's: quilted {excess_quilted:+.4f}, random tiling {excess_random:+.4f}")
    assert excess_random > 0.1 * own  # every block boundary of a random tiling breaks the checks
    assert excess_quilted < 0.25 * excess_random


def test_quilt_rejects_a_sample_smaller_than_a_block():
    with pytest.raises(ValueError, match="sample"):
        quilt(np.zeros((10, 10, 3)), (40, 40), 16, 4, np.random.default_rng(0))


@pytest.mark.parametrize("synthesis", ["quilt", "mirror"])
def test_plane_texture_continues_the_seen_texture_beyond_it(synthesis):
    sample = _checker(60, shading=0.1)  # greedy quilting drifts along the gradient: the mean is kept
    cell = 0.01
    ij = np.stack(np.meshgrid(np.arange(60), np.arange(60), indexing="ij"), -1).reshape(-1, 2)
    texture = PlaneTexture((ij + 0.5) * cell, sample.reshape(-1, 3), cell=cell, synthesis=synthesis)
    assert synthesis.replace("quilt", "quilted") in texture.method
    far = np.stack(np.meshgrid(np.arange(300, 500), np.arange(-400, -200), indexing="ij"), -1).reshape(-1, 2)
    colours = texture.colors_at((far + 0.5) * cell).reshape(200, 200, 3)  # 2-4 m away: synthesised
    np.testing.assert_allclose(colours.mean(axis=(0, 1)), sample.mean(axis=(0, 1)), atol=0.06)
    assert _neighbour_energy(colours) < 1.3 * _neighbour_energy(sample)


def test_plane_texture_rejects_an_unknown_synthesis():
    with pytest.raises(ValueError, match="synthesis"):
        PlaneTexture(np.zeros((4, 2)), np.zeros((4, 3)), cell=0.1, synthesis="patchmatch")
