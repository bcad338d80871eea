"""Latent spaces: how frames, Plücker rays and time images become decoder inputs (for decoding and training).

- ``PixelSpace``: weightless space-to-depth with the Cosmos tokenizer's compression (8x spatial, causal 8x
  temporal): latent frame 0 holds frame 0 (repeated 8 times), latent frame t >= 1 holds frames
  8(t-1)+1 .. 8t, each 8x8 pixel block stacked into channels: 3 x 8 x 8 x 8 = 1536 channels. Plücker rays
  and time images are smooth, so they are average-pooled over the same blocks (6 and 3 channels). The
  decoder keeps its architecture; only the input channel counts change. This is the CPU path.
- ``CosmosSpace``: the Cosmos CV8x8x8 tokenizer (local weights), 16 + 32 (+16) channels as released.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lyra_sim.lyra.cosmos import CosmosTokenizer
from lyra_sim.lyra.decoder import LyraDecoderConfig
from lyra_sim.lyra.plucker import time_image

SPATIAL, TEMPORAL = 8, 8


def _check_frames(name: str, frames: int) -> None:
    if (frames - 1) % TEMPORAL:
        raise ValueError(f"{name}: {frames} frames; latent spaces need 1 + 8k frames")


def _causal_groups(video: torch.Tensor) -> torch.Tensor:
    """(C, F, H, W) -> (C, T, 8, H, W): frame 0 repeated as its own group, then groups of 8 frames."""
    first = video[:, :1].expand(-1, TEMPORAL, -1, -1)
    rest = video[:, 1:]
    channels, frames, height, width = rest.shape
    groups = [first[:, None]]
    if frames:
        groups.append(rest.reshape(channels, frames // TEMPORAL, TEMPORAL, height, width))
    return torch.cat(groups, dim=1)


def _repeat_latent(latent: torch.Tensor, frames: int) -> torch.Tensor:
    """A one-frame latent (C, 1, h, w) repeated over the latent frames of a ``frames``-frame clip."""
    _check_frames("frames", frames)
    return latent.expand(-1, (frames - 1) // TEMPORAL + 1, -1, -1)


class PixelSpace:
    name = "pixels"
    spatial_compression = SPATIAL  # pixels per latent cell along x and y
    latent_channels = 3 * SPATIAL * SPATIAL * TEMPORAL
    plucker_channels = 6
    time_channels = 3

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        """(F, H, W, 3) in [0, 1] -> (1536, T, H/8, W/8), values mapped to [-1, 1]."""
        _check_frames("frames", frames.shape[0])
        video = frames.permute(3, 0, 1, 2) * 2 - 1  # (3, F, H, W)
        grouped = _causal_groups(video)  # (3, T, 8, H, W)
        channels, latent_frames, _, height, width = grouped.shape
        blocks = grouped.reshape(channels, latent_frames, TEMPORAL, height // SPATIAL, SPATIAL, width // SPATIAL,
                                 SPATIAL)
        # -> (3, 8t, 8y, 8x, T, h, w) -> channels
        return blocks.permute(0, 2, 4, 6, 1, 3, 5).reshape(-1, latent_frames, height // SPATIAL, width // SPATIAL)

    def _pool(self, video: torch.Tensor) -> torch.Tensor:
        """(C, F, H, W) -> block means (C, T, H/8, W/8)."""
        grouped = _causal_groups(video).mean(dim=2)  # (C, T, H, W)
        return F.avg_pool2d(grouped, SPATIAL)

    def encode_plucker(self, plucker: torch.Tensor) -> torch.Tensor:
        """(F, 6, H, W) -> (6, T, H/8, W/8)."""
        _check_frames("plucker", plucker.shape[0])
        return self._pool(plucker.permute(1, 0, 2, 3))

    def encode_times(self, times: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Normalised times (F,) -> (3, T, H/8, W/8)."""
        _check_frames("times", times.shape[0])
        return self._pool(time_image(times, height, width).permute(1, 0, 2, 3))

    def encode_target_time(self, time: float, frames: int, height: int, width: int) -> torch.Tensor:
        """One normalised target time -> (3, T, H/8, W/8) for a clip of ``frames`` frames (constant over T)."""
        return _repeat_latent(self.encode_times(torch.tensor([float(time)]), height, width), frames)

    def decoder_config(self, **overrides) -> LyraDecoderConfig:
        return LyraDecoderConfig.small(latent_channels=self.latent_channels, plucker_channels=self.plucker_channels,
                                       time_channels=self.time_channels, **overrides)


class CosmosSpace:
    name = "cosmos"
    latent_channels, plucker_channels, time_channels = 16, 32, 16

    def __init__(self, tokenizer: CosmosTokenizer):
        self.tokenizer = tokenizer
        self.spatial_compression = tokenizer.spatial_compression

    def encode_video(self, frames: torch.Tensor) -> torch.Tensor:
        video = frames.permute(3, 0, 1, 2)[None] * 2 - 1
        return self.tokenizer.encode(video)[0]

    def encode_plucker(self, plucker: torch.Tensor) -> torch.Tensor:
        """(F, 6, H, W) -> (32, T, H/8, W/8): each 3-channel half ([o x d], [d]) through the video encoder as is."""
        video = plucker.permute(1, 0, 2, 3)[None]
        return torch.cat([self.tokenizer.encode(video[:, :3])[0], self.tokenizer.encode(video[:, 3:])[0]])

    def encode_times(self, times: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """Normalised times (F,) -> (16, T, H/8, W/8): Lyra's time images through the video encoder."""
        return self.tokenizer.encode(time_image(times, height, width).permute(1, 0, 2, 3)[None])[0]

    def encode_target_time(self, time: float, frames: int, height: int, width: int) -> torch.Tensor:
        """One normalised target time -> (16, T, H/8, W/8) for a clip of ``frames`` frames, as the official code
        makes it: ONE frame of the constant time image is encoded and its latent repeated over the T latent
        frames. (Encoding the whole constant clip would differ: the causal tokenizer's later latent frames see
        several input frames, so only latent frame 0 equals the one-frame latent.)
        """
        return _repeat_latent(self.encode_times(torch.tensor([float(time)]), height, width), frames)

    def decoder_config(self, **overrides) -> LyraDecoderConfig:
        return LyraDecoderConfig.small(**overrides)
