"""Back layers behind an occlusion edge whose depth ramps over a pixel (as filled depth leaves many real edges).

Known geometry, ray-cast: a box 2 m ahead of a camera in front of a wall 4.5 m away (and a floor). The two
background pixel right of the box's silhouette on every row gets a depth between box and wall (a quarter of
the way from the box in inverse depth), as a filled depth map's mid-ramp pixels have. A camera 30 cm to the right sees
the wall beside the box's right edge that the input camera did not see (a strip about 12 pixels wide): the back
layers alone must cover it in the wall's colour. Taking the background from the neighbour across the jump (the
mid-ramp pixel) made the band behind the edge narrower than the strip and left its far part empty.
"""

import numpy as np
import pytest
import torch
from back_layer_views import back_layers_view

from lyra_sim import Camera
from lyra_sim.camera import look_at_matrix

W, H = 200, 150
K = np.array([[180.0, 0, W / 2], [0, 180.0, H / 2], [0, 0, 1]])
EYE = np.array([0.0, 0.0, 1.0])
WALL_X, WALL_RGB, BOX_RGB = 4.5, np.array([0.35, 0.55, 0.75]), np.array([0.85, 0.75, 0.2])
BOX = (np.array([2.0, -0.3, 0.0]), np.array([2.4, 0.3, 1.1]))
BASELINE = 0.3
RAMP = 0.75  # the ramp pixel's inverse depth, as a share of the way from the wall's to the box's


def cast(w2c: np.ndarray):
    """RGB (H,W,3), z-depth (H,W) and hit points (H,W,3) from ``w2c``, and which surface each pixel shows
    (0 floor, 1 wall, 2 box)."""
    eye = np.linalg.inv(w2c)[:3, 3]
    v, u = np.meshgrid(np.arange(H) + 0.5, np.arange(W) + 0.5, indexing="ij")
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u)], -1) @ w2c[:3, :3]
    lo, hi = BOX
    with np.errstate(divide="ignore", invalid="ignore"):
        t0, t1 = (lo - eye) / rays, (hi - eye) / rays
        t_near, t_far = np.nanmax(np.minimum(t0, t1), axis=-1), np.nanmin(np.maximum(t0, t1), axis=-1)
        t = np.stack([np.where(rays[..., 2] < 0, -eye[2] / rays[..., 2], np.inf),
                      np.where(rays[..., 0] > 0, (WALL_X - eye[0]) / rays[..., 0], np.inf),
                      np.where((t_near <= t_far) & (t_near > 0), t_near, np.inf)], axis=-1)
    which = np.argmin(t, axis=-1)
    ray_t = np.take_along_axis(t, which[..., None], axis=-1)[..., 0]
    hit = eye + rays * ray_t[..., None]
    checker = ((np.floor(hit[..., 0] / 0.5) + np.floor(hit[..., 1] / 0.5)) % 2)[..., None]
    rgb = np.where(checker > 0, [0.75, 0.72, 0.68], [0.5, 0.48, 0.45])
    rgb = np.where((which == 1)[..., None], WALL_RGB, np.where((which == 2)[..., None], BOX_RGB, rgb))
    z = (hit - eye) @ w2c[2, :3]
    return rgb.astype(np.float32), z.astype(np.float32), hit, which


@pytest.fixture(scope="module")
def ramped_stereo():
    left_w2c = look_at_matrix(EYE, EYE + np.array([1.0, 0.0, 0.0]), up=(0, 0, 1)).double().numpy()
    right_w2c = left_w2c.copy()
    right_w2c[0, 3] -= BASELINE
    rgb, depth, _, which = cast(left_w2c)
    # The background pixel right of each box row's right edge: an inverse depth between the box's and the wall's.
    box = which == 2
    depth = depth.copy()
    ramped = 0
    for v, row in enumerate(box):
        columns = np.flatnonzero(row)
        if len(columns) and columns[-1] + 2 < W and (which[v, columns[-1] + 1 : columns[-1] + 3] == 1).all():
            edge = columns[-1]
            inv_box, inv_wall = 1.0 / depth[v, edge], 1.0 / depth[v, edge + 2]
            depth[v, edge + 1] = 1.0 / (inv_wall + RAMP * (inv_box - inv_wall))
            ramped += 1
    _, _, hit, seen_right = cast(right_w2c)
    cam = hit @ left_w2c[:3, :3].T + left_w2c[:3, 3]
    u = np.floor(cam[..., 0] / cam[..., 2] * K[0, 0] + K[0, 2]).astype(int).clip(0, W - 1)
    v = np.floor(cam[..., 1] / cam[..., 2] * K[1, 1] + K[1, 2]).astype(int).clip(0, H - 1)
    hidden = np.ones((H, W), bool)
    for du in (-1, 0, 1):  # a pixel or more inside the box as the left camera sees it
        hidden &= which[v, (u + du).clip(0, W - 1)] == 2
    strip = (seen_right == 1) & hidden
    camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(right_w2c @ np.linalg.inv(left_w2c)).float(), W, H)
    return rgb, depth, strip, camera, ramped


def test_back_layers_fill_the_strip_behind_a_ramped_edge(ramped_stereo):
    rgb, depth, strip, camera, ramped = ramped_stereo
    assert ramped > 40 and strip.sum() > 400  # the box's right edge ramped on every row; a 12-pixel strip
    alpha, image = back_layers_view(rgb, depth, K, camera)
    assert (alpha[strip] > 0.5).mean() > 0.9
    assert np.median(np.abs(image[strip] - WALL_RGB).max(axis=-1)) < 0.08
