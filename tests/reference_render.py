"""A deliberately naive second implementation of gsplat's compositing rules, for tests only.

Every Gaussian is evaluated at every pixel (no tiles, no bounding boxes) in a Python loop over
Gaussians sorted by depth; autograd gives its gradients. Slow, but independent of the kernels.
"""

from __future__ import annotations

import torch

from lyra_sim.rendering.projection import project_ewa
from lyra_sim.sh import eval_sh_colors


def reference_render(world, camera, background=(0.0, 0.0, 0.0), near=0.01, eps2d=0.3):
    w, h = camera.width, camera.height
    K, w2c = camera.K[0], camera.world_to_cam[0]
    mean2d, conic, depth = project_ewa(world.means, world.quats, world.scales, w2c, K, w, h, eps2d)
    colors = eval_sh_colors(world.sh, world.means - camera.position[0].to(world.means))
    order = torch.argsort(depth.detach(), stable=True)
    v, u = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    trans = torch.ones(h, w, dtype=world.means.dtype)
    rgb = torch.zeros(h, w, 3, dtype=world.means.dtype)
    dep = torch.zeros(h, w, dtype=world.means.dtype)
    done = torch.zeros(h, w, dtype=torch.bool)
    for g in order.tolist():
        if depth[g] < near or world.opacities[g] < 1 / 255:
            continue
        dx, dy = mean2d[g, 0] - u, mean2d[g, 1] - v
        sigma = 0.5 * (conic[g, 0] * dx * dx + conic[g, 2] * dy * dy) + conic[g, 1] * dx * dy
        alpha = torch.clamp(world.opacities[g] * torch.exp(-sigma), max=0.999)
        use = (sigma >= 0) & (alpha >= 1 / 255) & ~done
        next_t = trans * (1 - alpha)
        stop = use & (next_t <= 1e-4)
        done = done | stop
        use = use & ~stop
        weight = torch.where(use, alpha * trans, torch.zeros_like(alpha))
        rgb = rgb + weight.unsqueeze(-1) * colors[g]
        dep = dep + weight * depth[g]
        trans = torch.where(use, next_t, trans)
    alpha_img = 1 - trans
    bg = torch.as_tensor(background, dtype=rgb.dtype)
    return rgb + trans.unsqueeze(-1) * bg, dep / alpha_img.clamp_min(1e-10), alpha_img
