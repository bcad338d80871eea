"""Make a lifted world reproduce its input image exactly where it was seen.

Neighbouring surfels overlap (that is what closes gaps when the camera moves), so rendering the
input camera blends each pixel with its neighbours and blurs the image. A few Jacobi steps fix it:
render the input view, and add each pixel's residual to the colour of the observed Gaussian whose
centre lies in that pixel (a colour-only fit, like the first steps of 3DGS optimisation, no gradients).
"""

from __future__ import annotations

import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.world import SH_C0, GaussianWorld


def fit_input_colors(world: GaussianWorld, rgb: np.ndarray, K: np.ndarray, steps: int = 2,
                     cautious: np.ndarray | None = None, max_change: float = 0.5,
                     cautious_change: float = 0.25) -> GaussianWorld:
    """``world`` (input camera's OpenCV frame) with observed Gaussians' DC colours corrected so that the
    input view renders closer to ``rgb`` (H,W,3) in [0,1]. Other Gaussians and SH bands are unchanged.

    No colour moves by more than ``max_change``; pixels in ``cautious`` (H,W bool; e.g. the background
    side of depth jumps) by no more than ``cautious_change``: there the input view blends two surfaces, and
    a full correction would show as a halo of the complementary colour once the camera moves.
    """
    from lyra_sim.rendering import render

    if steps <= 0 or not bool(world.observed.any()):
        return world
    h, w = rgb.shape[:2]
    camera = Camera(torch.from_numpy(np.asarray(K)).float(), torch.eye(4), w, h)
    observed = torch.nonzero(world.observed).squeeze(1)
    means = world.means[observed].double().numpy()
    u = np.floor(K[0, 0] * means[:, 0] / means[:, 2] + K[0, 2]).astype(np.int64)
    v = np.floor(K[1, 1] * means[:, 1] / means[:, 2] + K[1, 2]).astype(np.int64)
    inside = (means[:, 2] > 0) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
    observed, u, v = observed[torch.from_numpy(inside)], u[inside], v[inside]
    limit = torch.full((len(u), 1), max_change / SH_C0, dtype=world.sh.dtype)
    if cautious is not None:
        limit[torch.from_numpy(np.asarray(cautious)[v, u])] = cautious_change / SH_C0
    target = torch.from_numpy(np.ascontiguousarray(rgb, np.float32))
    sh = world.sh.clone()
    start = sh[observed, 0, :].clone()
    fitted = world
    for _ in range(steps):
        with torch.no_grad():
            image = render(fitted, camera, background=(0.0, 0.0, 0.0)).rgb.reshape(h, w, 3)
        residual = (target - image)[torch.from_numpy(v), torch.from_numpy(u)]
        change = sh[observed, 0, :] + residual / SH_C0 - start
        sh[observed, 0, :] = start + torch.maximum(torch.minimum(change, limit), -limit)
        fitted = world._replace(sh=sh.clone())
    return fitted
