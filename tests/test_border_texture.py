"""Beyond the image border a wall continues what the camera saw next to the border, not a far patch of it.

Known geometry, ray-cast: a level camera 1 m above a checkered floor faces a wall 3 m ahead. The wall is pale
except for a dark, vertically striped band along the image's right border (a shelf of tools beside a pale door:
the largest fully seen patch of the wall, at its centre, is pale). A camera at the same place turned 30 degrees to
the right sees the wall past the input image's right edge: that strip must continue the dark band's colour
statistics, and the columns just past the edge must match those just inside it (no seam).
"""

import numpy as np
import pytest
import torch

from lyra_sim import Camera, generate_world, render
from lyra_sim.camera import look_at_matrix
from lyra_sim.single_view.planes import PlaneTexture

W, H = 160, 120
K = np.array([[140.0, 0, W / 2], [0, 140.0, H / 2], [0, 0, 1]])
EYE = np.array([0.0, 0.0, 1.0])
WALL_X = 3.0
BAND_Y = -1.2  # the dark band: wall points with y below this (world +y is left; the image's right edge is y -1.71)
PALE, DARK, DARK_STRIPE = np.array([0.85, 0.8, 0.74]), np.array([0.25, 0.2, 0.17]), np.array([0.12, 0.1, 0.1])


def wall_colour(hit: np.ndarray) -> np.ndarray:
    y = hit[..., 1:2]
    stripes = (np.floor(hit[..., 1:2] / 0.08) % 2) > 0  # 8 cm dark and darker stripes
    return np.where(y < BAND_Y, np.where(stripes, DARK, DARK_STRIPE), PALE)


def cast(w2c: np.ndarray):
    """RGB (H,W,3), z-depth, world hit points (H,W,3) and whether each pixel shows the wall, from ``w2c``."""
    eye = np.linalg.inv(w2c)[:3, 3]
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t_floor = np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf)
        t_wall = np.where(rays[..., 0] > 0, (WALL_X - eye[0]) / rays[..., 0], np.inf)
    wall = t_wall < t_floor
    t = np.minimum(t_floor, t_wall)
    hit = eye + rays * t[..., None]
    checker = ((np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2)[..., None]
    rgb = np.where(wall[..., None], wall_colour(hit), np.where(checker > 0, [0.6, 0.58, 0.55], [0.45, 0.43, 0.4]))
    z = (hit - eye) @ w2c[2, :3]  # z-depth along the optical axis
    return rgb.astype(np.float32), z.astype(np.float32), hit, wall


@pytest.fixture(scope="module")
def turned_view():
    left_w2c = look_at_matrix(EYE, EYE + np.array([1.0, 0.0, 0.0]), up=(0, 0, 1)).double().numpy()
    yaw = np.radians(-30.0)  # to the right
    turned_w2c = look_at_matrix(EYE, EYE + np.array([np.cos(yaw), np.sin(yaw), 0.0]), up=(0, 0, 1)).double().numpy()
    rgb, depth, _, _ = cast(left_w2c)
    _, _, hit, wall = cast(turned_w2c)
    world = generate_world(rgb, depth=depth, intrinsics=K)
    camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(turned_w2c @ np.linalg.inv(left_w2c)).float(), W, H)
    with torch.no_grad():
        image = render(world, camera, background=(0.0, 1.0, 0.0)).rgb.reshape(H, W, 3).numpy()
    edge_y = -WALL_X * (W / 2) / K[0, 0]  # where the input image's right edge meets the wall
    return image, hit, wall, edge_y, world


def test_the_strip_past_the_border_continues_the_border_band(turned_view):
    image, hit, wall, edge_y, world = turned_view
    assert world.info["completion"]["walls"] >= 1
    strip = wall & (hit[..., 1] < edge_y - 0.05) & (hit[..., 1] > edge_y - 0.45) & (hit[..., 2] > 0.2)
    assert strip.sum() > 300
    band_mean = (DARK + DARK_STRIPE) / 2
    mean = image[strip].mean(axis=0)
    # The band's colour, not the pale centre's (a far patch mirror-tiled or quilted: about 0.8 here).
    assert np.abs(mean - band_mean).max() < 0.08, mean
    assert np.abs(mean - PALE).min() > 0.4
    # No seam: just past the edge the wall looks like just inside it (both in the turned view).
    inside = wall & (hit[..., 1] > edge_y + 0.02) & (hit[..., 1] < edge_y + 0.15) & (hit[..., 2] > 0.2)
    outside = wall & (hit[..., 1] < edge_y - 0.02) & (hit[..., 1] > edge_y - 0.15) & (hit[..., 2] > 0.2)
    assert np.abs(image[inside].mean(axis=0) - image[outside].mean(axis=0)).max() < 0.06


def test_plane_texture_reflects_the_seen_grid_at_its_edge_and_fades_into_its_tile_far_out():
    """PlaneTexture alone: a grid of distinct values is reflected across its edge (cell i past the edge shows the
    cell i inside it), and far out the quilted tile of the central patch takes over (right from the edge with
    ``reflect_border=False``, as the floor has it)."""
    n, cell = 120, 0.1  # the central patch (at most 97 cells a side) leaves the band out
    ij = np.argwhere(np.ones((n, n), bool))
    colours = np.where(ij[:, :1] >= n - 8, 0.1, 0.8) * np.ones((1, 3))  # a dark 8-cell band at the high-x edge
    colours = colours + 0.001 * ij[:, 1:2]  # distinct values across y, to check the reflection's index
    texture = PlaneTexture((ij + 0.5) * cell, colours, cell=cell, synthesis="quilt")
    near = texture.colors_at(np.array([[(n + 0.5 + k) * cell, 10.5 * cell] for k in range(8)]))
    assert np.allclose(near[:, 0], 0.1 + 0.001 * 10, atol=0.01)  # the dark band, mirrored
    across = texture.colors_at(np.array([[60.5 * cell, -(k + 0.5) * cell] for k in range(5)]))
    assert np.allclose(across[:, 0], 0.8 + 0.001 * np.arange(5), atol=0.01)  # y reflected: cell -1-k shows cell k
    far = texture.colors_at(np.array([[(n + 2.5 * n) * cell, 60.5 * cell]]))
    assert far[0, 0] > 0.6  # the central (pale) patch's tile, not the band
    tiled = PlaneTexture((ij + 0.5) * cell, colours, cell=cell, synthesis="quilt", reflect_border=False)
    assert (tiled.colors_at(np.array([[(n + 0.5 + k) * cell, 10.5 * cell] for k in range(8)]))[:, 0] > 0.6).all()
