"""Decoder conditioning: Plücker ray images and Lyra's time images (relative cameras: camera.relative_poses)."""

from __future__ import annotations

import torch

from lyra_sim.camera import pixel_rays


def intrinsics_matrix(fx_fy_cx_cy: torch.Tensor) -> torch.Tensor:
    """(N, 4) rows of fx, fy, cx, cy -> (N, 3, 3) pinhole matrices."""
    fx, fy, cx, cy = fx_fy_cx_cy.unbind(-1)
    K = torch.zeros(*fx.shape, 3, 3, dtype=fx_fy_cx_cy.dtype, device=fx_fy_cx_cy.device)
    K[..., 0, 0], K[..., 1, 1], K[..., 0, 2], K[..., 1, 2], K[..., 2, 2] = fx, fy, cx, cy, 1.0
    return K


def plucker_image(K: torch.Tensor, cam_to_world: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Plücker coordinates ``[o x d, d]`` per pixel: (N, 6, height, width)."""
    origins, directions = pixel_rays(K, cam_to_world, height, width)
    moment = torch.linalg.cross(origins, directions, dim=-1)
    return torch.cat([moment, directions], dim=-1).permute(0, 3, 1, 2)


def time_image(times: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Lyra's time conditioning: normalised times t in [0, 1] -> ``[t, cos t, sin t]`` mapped to [-1, 1].

    Returns (N, 3, height, width), constant over each frame. On [0, 1] all three channels lie in [0, 1]
    (cos 1 = 0.54, sin 1 = 0.84), so ``2 v - 1`` maps them into [-1, 1].
    """
    times = times.reshape(-1).to(torch.float32)
    if times.numel() and (times.min() < 0 or times.max() > 1):
        raise ValueError(f"times: expected normalised times in [0, 1], got range [{times.min()}, {times.max()}]")
    features = torch.stack([times, torch.cos(times), torch.sin(times)], dim=-1) * 2.0 - 1.0
    return features[:, :, None, None].expand(-1, 3, height, width)


def frame_times(num_frames: int) -> torch.Tensor:
    """Normalised times of the frames of one clip: i / (num_frames - 1)."""
    return torch.arange(num_frames, dtype=torch.float32) / max(num_frames - 1, 1)

