"""Differentiable EWA projection in torch, identical in convention to gsplat's pinhole projection.

The CPU rasterizer uses the numba projection (cpu_kernels.project_chunks) to cull, bin and
sort; when gradients are needed it recomputes the visible Gaussians' 2D means and conics here so
autograd can carry them back to positions, rotations and scales.
"""

from __future__ import annotations

import torch

from lyra_sim.rotations import quat_to_rotmat


def project_ewa(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    world_to_cam: torch.Tensor,
    K: torch.Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """2D means (M,2), conics (M,3: a, b, c of [[a,b],[b,c]]) and camera depths (M,) of Gaussians."""
    rot_cam = world_to_cam[:3, :3].to(means)
    means_cam = means @ rot_cam.T + world_to_cam[:3, 3].to(means)
    x, y, z = means_cam.unbind(-1)
    fx, fy, cx, cy = (float(v) for v in (K[0, 0], K[1, 1], K[0, 2], K[1, 2]))
    tan_fovx, tan_fovy = 0.5 * width / fx, 0.5 * height / fy
    rz = 1.0 / z
    tx = z * torch.clamp(x * rz, -(cx / fx + 0.3 * tan_fovx), (width - cx) / fx + 0.3 * tan_fovx)
    ty = z * torch.clamp(y * rz, -(cy / fy + 0.3 * tan_fovy), (height - cy) / fy + 0.3 * tan_fovy)
    zeros = torch.zeros_like(z)
    jac = torch.stack(
        [
            torch.stack([fx * rz, zeros, -fx * tx * rz * rz], dim=-1),
            torch.stack([zeros, fy * rz, -fy * ty * rz * rz], dim=-1),
        ],
        dim=-2,
    )  # (M,2,3)
    m = rot_cam @ quat_to_rotmat(quats) * scales.unsqueeze(-2)  # R_cam R_q S, (M,3,3)
    t = jac @ m
    cov = t @ t.transpose(-1, -2)
    c00 = cov[:, 0, 0] + eps2d
    c01 = cov[:, 0, 1]
    c11 = cov[:, 1, 1] + eps2d
    det = c00 * c11 - c01 * c01
    conic = torch.stack([c11 / det, -c01 / det, c00 / det], dim=-1)
    mean2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)
    return mean2d, conic, z
