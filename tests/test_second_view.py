"""What a second camera a few cm beside the input one sees behind the objects: the background, not shards.

The scene is ray-cast (known geometry): a checkered floor, a wall, and one object made of a wide block with a
thin striped pole on top (one connected silhouette, as a motorcycle's fork is part of the motorcycle). The
second camera is 10 cm to the right of the input camera; the disoccluded strip is found geometrically (wall
points the right camera sees that the left camera's ray meets something nearer first).
"""

import numpy as np
import pytest
import torch
from back_layer_views import back_layers_view

from lyra_sim import Camera, generate_world, render
from lyra_sim.camera import look_at_matrix
from lyra_sim.single_view.backs import local_width

W, H = 240, 180
K = np.array([[220.0, 0, W / 2], [0, 220.0, H / 2], [0, 0, 1]])
EYE, TARGET = np.array([0.0, 0.0, 1.0]), np.array([3.0, 0.0, 0.85])
WALL_X, WALL_RGB = 4.5, np.array([0.35, 0.55, 0.75])
BLOCK = (np.array([2.0, -0.6, 0.0]), np.array([2.8, 0.2, 0.8]))
POLE = (np.array([2.0, 0.1, 0.8]), np.array([2.08, 0.18, 1.3]))  # on the block's left end (world +y is left)
BASELINE = 0.1


def _box_hit(rays, eye, box):
    lo, hi = box
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (lo - eye) / rays, (hi - eye) / rays
    t_near = np.nanmax(np.minimum(t0, t1), axis=-1)
    t_far = np.nanmin(np.maximum(t0, t1), axis=-1)
    return np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)


def cast(w2c: np.ndarray):
    """RGB (H,W,3), z-depth and hit points (H,W,3, world) of the scene from the camera ``w2c``; which surface
    each pixel shows: 0 floor, 1 wall, 2 block, 3 pole."""
    eye = np.linalg.inv(w2c)[:3, 3]
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.stack([np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf),
                      np.where(rays[..., 0] > 0, (WALL_X - eye[0]) / rays[..., 0], np.inf),
                      _box_hit(rays, eye, BLOCK), _box_hit(rays, eye, POLE)], axis=-1)
    which = np.argmin(t, axis=-1)
    depth = np.take_along_axis(t, which[..., None], axis=-1)[..., 0]
    hit = eye + rays * depth[..., None]
    checker = ((np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2)[..., None]
    rgb = np.where(checker > 0, [0.75, 0.72, 0.68], [0.5, 0.48, 0.45])
    rgb = np.where((which == 1)[..., None], WALL_RGB, rgb)
    rgb = np.where((which == 2)[..., None], [0.85, 0.75, 0.2], rgb)
    stripes = (np.floor(hit[..., 2] / 0.06) % 2)[..., None]  # the pole: 6 cm red and white bands
    rgb = np.where((which == 3)[..., None], np.where(stripes > 0, [0.95, 0.95, 0.95], [0.8, 0.1, 0.1]), rgb)
    return rgb.astype(np.float32), depth.astype(np.float32), hit, which


@pytest.fixture(scope="module")
def stereo():
    left_w2c = look_at_matrix(EYE, TARGET, up=(0, 0, 1)).double().numpy()
    right_w2c = left_w2c.copy()
    right_w2c[0, 3] -= BASELINE  # 10 cm along the left camera's x (to the right)
    rgb, depth, _, _ = cast(left_w2c)
    truth, _, hit, which = cast(right_w2c)
    # The disoccluded wall: wall points the right camera sees whose ray from the left camera meets something
    # nearer first (a pixel or more inside the nearer surface: away from its anti-aliased border).
    cam = hit @ left_w2c[:3, :3].T + left_w2c[:3, 3]
    u = np.floor(cam[..., 0] / cam[..., 2] * K[0, 0] + K[0, 2]).astype(int).clip(0, W - 1)
    v = np.floor(cam[..., 1] / cam[..., 2] * K[1, 1] + K[1, 2]).astype(int).clip(0, H - 1)
    hidden = np.ones((H, W), bool)
    for du in (-1, 0, 1):
        hidden &= depth[v, (u + du).clip(0, W - 1)] < cam[..., 2] - 0.1
    strip = (which == 1) & hidden
    camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(right_w2c @ np.linalg.inv(left_w2c)).float(), W, H)
    return rgb, depth, truth, strip, camera


def test_local_width_is_the_width_of_each_part_not_of_the_whole():
    labels = np.zeros((60, 80), int)
    labels[10:50, 10:45] = 1  # a 40 x 35 block
    labels[2:10, 20:25] = 1  # with a 5-pixel-wide pole on top (same object)
    labels[20:30, 60:63] = 2  # a separate 3-pixel-wide bar
    width = local_width(labels)
    assert (width[labels == 0] == 0).all()
    assert (width[4:8, 20:25] == 5).all()  # the pole: its own width, not the block's (its end is rounded)
    assert (width[21:29, 60:63] == 3).all()
    assert 29 <= width[30, 27] <= 35  # the block's centre: its inscribed disk (radius levels 1, 2, 3, 5, ... 14, 20)
    assert width[30, 11] >= 29  # near the block's edge, still covered by the big disk


def test_second_view_shows_the_wall_behind_a_thin_part_not_its_stripes(stereo):
    """Behind the pole the right camera sees the wall; shards of the pole pulled along the input rays by the
    whole object's thickness (0.8 m) would cover that strip in the object's colours."""
    rgb, depth, truth, strip, camera = stereo
    assert strip.sum() > 150  # the strip beside the pole, 5-6 pixels wide
    world = generate_world(rgb, depth=depth, intrinsics=K)
    assert world.info["completion"]["objects"] >= 1
    with torch.no_grad():
        image = render(world, camera, background=(0.0, 1.0, 0.0)).rgb.reshape(H, W, 3).numpy()
    error = np.abs(image[strip] - WALL_RGB).max(axis=-1)
    assert np.median(error) < 0.06 and (error < 0.15).mean() > 0.85
    # The rest of the right view matches too (the pole, block and floor where both cameras see them).
    assert 10 * np.log10(1 / ((image - truth) ** 2).mean()) > 24


def test_back_layers_alone_fill_the_strip_next_to_the_edge(stereo):
    """Back layers continue the wall behind the pole right up to its edge (they passed the completion's
    visibility window and slack before, which dropped the pixels beside every edge)."""
    rgb, depth, _, strip, camera = stereo
    alpha, image = back_layers_view(rgb, depth, K, camera)
    assert (alpha[strip] > 0.5).mean() > 0.9
    assert np.median(np.abs(image[strip] - WALL_RGB).max(axis=-1)) < 0.06
