"""Lyra's Gaussian parameterisation: raw decoder channels -> activated, packed Gaussians on camera rays."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lyra_sim.camera import pixel_rays, scale_intrinsics
from lyra_sim.sh import rgb_to_sh0
from lyra_sim.world import GaussianWorld, most_opaque

RAW_SPLIT = (1, 3, 3, 4, 1)  # distance, rgb, scale, rotation, opacity
PACKED_FIELDS = {"xyz": slice(0, 3), "opacity": slice(3, 4), "scale": slice(4, 7), "quat": slice(7, 11),
                 "rgb": slice(11, 14)}
PACKED_WIDTH = 14
# Lyra's activations (as in the released model): depth = lerp(NEAR, FAR, sigmoid(raw - DEPTH_OFFSET)),
# scale = min(MAX_SCALE * exp(raw - SCALE_OFFSET), MAX_SCALE), opacity = sigmoid(raw - OPACITY_OFFSET).
NEAR, FAR = 0.1, 500.0
MAX_SCALE = 0.3
DEPTH_OFFSET, SCALE_OFFSET, OPACITY_OFFSET = 1.65, 1.0, 2.0


def activate(raw: torch.Tensor) -> dict[str, torch.Tensor]:
    """Raw channels (..., 12) -> depth along the ray, rgb, linear scale, unit quaternion (w first), opacity."""
    distance, rgb, scale, rotation, opacity = torch.split(raw.float(), RAW_SPLIT, dim=-1)
    weight = torch.sigmoid(distance - DEPTH_OFFSET)
    return {
        "depth": NEAR * (1 - weight) + FAR * weight,
        "rgb": 0.5 * torch.tanh(rgb) + 0.5,
        "scale": torch.clamp(MAX_SCALE * torch.exp(scale - SCALE_OFFSET), max=MAX_SCALE),
        "quat": F.normalize(rotation, dim=-1),
        "opacity": torch.sigmoid(opacity - OPACITY_OFFSET),
    }


def gaussians_from_raw(raw: torch.Tensor, K: torch.Tensor, cam_to_world: torch.Tensor,
                       downsample: int = 8) -> torch.Tensor:
    """One view's raw output (12, F, H, W) -> packed Gaussians (F*H*W, 14): xyz, opacity, scale, quat, rgb.

    K (F, 3, 3) are the full-resolution intrinsics of each frame, cam_to_world (F, 4, 4) its pose; rays are
    cast through the pixel centres of the H x W grid with K scaled to that grid (K / downsample).
    """
    channels, frames, height, width = raw.shape
    if channels != sum(RAW_SPLIT):
        raise ValueError(f"raw: expected {sum(RAW_SPLIT)} channels, got {channels}")
    if K.shape[0] != frames or cam_to_world.shape[0] != frames:
        raise ValueError(f"cameras: {K.shape[0]} intrinsics and {cam_to_world.shape[0]} poses for {frames} frames")
    grid_K = scale_intrinsics(K.float(), 1.0 / downsample, 1.0 / downsample)
    origins, directions = pixel_rays(grid_K, cam_to_world.float(), height, width)
    values = activate(raw.permute(1, 2, 3, 0))
    xyz = origins + directions * values["depth"]
    packed = torch.cat([xyz, values["opacity"], values["scale"], values["quat"], values["rgb"]], dim=-1)
    return packed.reshape(-1, PACKED_WIDTH)


def gaussians_from_views(raw_views, K, cam_to_world, downsample: int, prune: float = 0.0,
                         device: torch.device | str | None = None) -> torch.Tensor:
    """Every view's raw output (an iterable of (12, F, H, W); view v with K[v], cam_to_world[v]) -> packed
    Gaussians (N, 14) of all views, pruned by opacity (Lyra's ``prune``), each view moved to ``device`` as it is
    made (default: where it was made): the decoder output -> Gaussians step of both decoding and training."""
    packed = [gaussians_from_raw(raw, K[v].to(raw.device), cam_to_world[v].to(raw.device), downsample).to(device)
              for v, raw in enumerate(raw_views)]
    return top_opacity(torch.cat(packed), prune)


def kept_count(num_gaussians: int, prune: float) -> int:
    """How many Gaussians Lyra's pruning keeps: ``int(N * (1 - prune))``, in floats as the official code.

    1 - 0.8 is 0.19999999999999996, so prune=0.8 keeps 2,044,415 of 10,222,080 (not 2,044,416).
    """
    return int(num_gaussians * (1 - prune))


def top_opacity(packed: torch.Tensor, prune: float) -> torch.Tensor:
    """Lyra's pruning: sort by opacity and keep the top :func:`kept_count` Gaussians (ties: lower index)."""
    if not 0.0 <= prune < 1.0:
        raise ValueError(f"prune: expected a fraction in [0, 1), got {prune}")
    if prune == 0.0:
        return packed
    keep = kept_count(packed.shape[0], prune)
    return packed[most_opaque(packed[:, PACKED_FIELDS["opacity"]].squeeze(-1), keep)]


def packed_to_world(packed: torch.Tensor, info: dict | None = None, validate: bool = True) -> GaussianWorld:
    """Packed Gaussians (N, 14) -> a GaussianWorld (OpenCV frame of the reference camera, unknown scale).

    By default the world is a checked float32 CPU copy. ``validate=False`` uses the tensors as they are
    (device, dtype, autograd graph), unchecked: for rendering the decoder's output inside a training loss.
    """
    fields = {name: packed[:, sl] for name, sl in PACKED_FIELDS.items()}
    if validate:
        fields = {name: value.float().cpu() for name, value in fields.items()}
    return GaussianWorld(
        means=fields["xyz"], quats=fields["quat"], scales=fields["scale"], opacities=fields["opacity"][:, 0],
        sh=rgb_to_sh0(fields["rgb"]), frame="opencv", meters_per_unit=None, info=dict(info or {}),
        validate=validate,
    )
