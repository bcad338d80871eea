"""No light band beside a foreground edge at a real second view: Middlebury 2014 "Motorcycle" (scikit-image's copy).

The world is lifted from the left image and its ground-truth depth and rendered from the true right camera. Behind
the front tyre the right camera sees the floor that the left one did not: back layers (``backs.back_layers``) must
close that strip without seams, or the far backdrop (light, like the image's top rows) shows through them as a
faint light band that follows the tyre. Needs scikit-image (the ``test`` and ``bench`` extras), which bundles the frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("skimage")

FOCAL, CX, CY, DOFFS, BASELINE_M = 994.978, 311.193, 254.877, 31.086, 0.193001  # the frame's calibration
BAND = (slice(280, 450), slice(600, 660))  # right-image rows and columns beside the front tyre


@pytest.fixture(scope="module")
def right_view():
    from skimage.data import stereo_motorcycle

    from lyra_sim.camera import Camera
    from lyra_sim.generate import generate_world
    from lyra_sim.rendering import render

    left, right, disparity = stereo_motorcycle()
    known = np.isfinite(disparity) & (disparity > 0)
    depth = np.where(known, FOCAL * BASELINE_M / (np.where(known, disparity, 1.0) + DOFFS), 0.0)
    K = np.array([[FOCAL, 0, CX + 0.5], [0, FOCAL, CY + 0.5], [0, 0, 1.0]])
    world = generate_world(left.astype(np.float32) / 255, depth=depth.astype(np.float32), intrinsics=K)
    K_right = K.copy()
    K_right[0, 2] += DOFFS
    w2c = torch.eye(4)
    w2c[0, 3] = -BASELINE_M
    h, w = depth.shape
    with torch.no_grad():
        image = render(world, Camera(torch.from_numpy(K_right).float(), w2c, w, h), background=(1.0, 1.0, 1.0))
    # The right pixels the left view saw: where a left pixel with ground truth lands (u - d); the rest is disoccluded.
    v, u = np.nonzero(known)
    seen = np.zeros((h, w), bool)
    for column in (np.floor(u - disparity[v, u]), np.ceil(u - disparity[v, u])):
        c = column.astype(np.int64)
        ok = (c >= 0) & (c < w)
        seen[v[ok], c[ok]] = True
    band = np.zeros((h, w), bool)
    band[BAND] = True
    return image.rgb.numpy(), right.astype(np.float32) / 255, band & ~seen


def test_the_strip_behind_the_front_tyre_has_no_light_band(right_view):
    image, truth, band = right_view
    assert band.sum() > 1000  # the strip the right camera sees behind the tyre
    lighter = (image - truth).mean(-1)[band]
    assert (lighter > 0.04).mean() < 0.125  # 309fd29: 13.6 % of the strip 0.04 lighter than the truth
    assert float(((image - truth) ** 2).mean(-1)[band].mean()) < 0.0030  # 309fd29: 0.00336
