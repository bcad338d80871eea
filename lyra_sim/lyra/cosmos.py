"""The Cosmos CV8x8x8 continuous video tokenizer, loaded from a local directory (never downloaded).

Two on-disk formats hold the same network:
- diffusers ``AutoencoderKLCosmos`` (``save_pretrained`` layout: ``config.json`` + weights); the latent
  mean/std come from its config (``latents_mean``, ``latents_std``: channels x latent frames);
- the official TorchScript release: ``encoder.jit``, ``decoder.jit`` and ``mean_std.pt`` (mean, std).

Latent spaces: the encoder's raw output is *tokenizer space*. GEN3C stores *diffusion space* latents,
``(z - mean) / std * sigma_data`` with sigma_data 0.5; ``to_tokenizer_space`` undoes that.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch

from lyra_sim.errors import LyraSimError

SIGMA_DATA = 0.5
LATENT_CHANNELS = 16  # CV8x8x8


class TokenizerError(LyraSimError):
    """A tokenizer directory that is missing, incomplete or inconsistent."""


def _first_tensor(output) -> torch.Tensor:
    """Unwrap what a TorchScript encoder/decoder returns: a tensor or a tuple starting with one."""
    if isinstance(output, list | tuple):
        output = output[0]
    if not isinstance(output, torch.Tensor):
        raise TokenizerError(f"tokenizer returned {type(output).__name__}, expected a tensor")
    return output


class CosmosTokenizer:
    """Encode videos (B, 3, F, H, W) in [-1, 1] to latents (B, 16, 1 + (F-1)/8, H/8, W/8), and back."""

    def __init__(self, encoder: Callable, decoder: Callable | None, mean: torch.Tensor, std: torch.Tensor,
                 source: str, temporal_compression: int = 8, spatial_compression: int = 8,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32):
        self.encoder, self.decoder = encoder, decoder
        self.mean, self.std = mean.float(), std.float()  # (C, T_max)
        self.latent_channels = self.mean.shape[0]
        self.source = source
        self.temporal_compression, self.spatial_compression = temporal_compression, spatial_compression
        self.device, self.dtype = torch.device(device), dtype

    # --- loading ------------------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, path: str | os.PathLike, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> CosmosTokenizer:
        """Load either format from a local directory."""
        root = Path(path)
        if not root.is_dir():
            raise TokenizerError(f"{root}: tokenizer directory not found")
        if (root / "config.json").is_file():
            return cls._from_diffusers(root, device, dtype)
        if (root / "encoder.jit").is_file():
            return cls._from_torchscript(root, device, dtype)
        raise TokenizerError(
            f"{root}: neither a diffusers AutoencoderKLCosmos directory (config.json) nor the official "
            "TorchScript release (encoder.jit, decoder.jit, mean_std.pt)"
        )

    @classmethod
    def _from_diffusers(cls, root: Path, device, dtype) -> CosmosTokenizer:
        from diffusers import AutoencoderKLCosmos  # lazy: diffusers is only needed for this format

        try:
            vae = AutoencoderKLCosmos.from_pretrained(root, local_files_only=True, torch_dtype=dtype)
        except Exception as exc:
            raise TokenizerError(f"{root}: cannot load AutoencoderKLCosmos ({exc})") from exc
        vae = vae.to(device).eval().requires_grad_(False)
        channels = vae.config.latent_channels
        if vae.config.latents_mean is not None and vae.config.latents_std is not None:
            mean = torch.tensor(vae.config.latents_mean).view(channels, -1)
            std = torch.tensor(vae.config.latents_std).view(channels, -1)
        else:
            mean, std = torch.zeros(channels, 1), torch.ones(channels, 1)
        return cls(lambda x: vae.encode(x).latent_dist.mode(), lambda z: vae.decode(z).sample, mean, std,
                   f"diffusers:{root}", vae.config.temporal_compression_ratio,
                   vae.config.spatial_compression_ratio, device, dtype)

    @classmethod
    def _from_torchscript(cls, root: Path, device, dtype) -> CosmosTokenizer:
        mean_std_path = root / "mean_std.pt"
        if not mean_std_path.is_file():
            raise TokenizerError(f"{root}: encoder.jit found but mean_std.pt is missing")
        try:
            encoder = torch.jit.load(str(root / "encoder.jit"), map_location=device).to(dtype).eval()
            decoder = None
            if (root / "decoder.jit").is_file():
                decoder = torch.jit.load(str(root / "decoder.jit"), map_location=device).to(dtype).eval()
            stats = torch.load(mean_std_path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise TokenizerError(f"{root}: cannot load the TorchScript tokenizer ({exc})") from exc
        if isinstance(stats, torch.Tensor) and stats.shape[0] == 2:
            stats = tuple(stats)
        if not (isinstance(stats, list | tuple) and len(stats) == 2):
            raise TokenizerError(f"{mean_std_path}: expected (mean, std), got {type(stats).__name__}")
        mean, std = (torch.as_tensor(s).float() for s in stats)
        # Like the official loader: the stored statistics are viewed as (latent channels, latent frames).
        if mean.numel() % LATENT_CHANNELS or mean.shape != std.shape:
            raise TokenizerError(f"{mean_std_path}: mean {tuple(mean.shape)} / std {tuple(std.shape)} do not "
                                 f"split into {LATENT_CHANNELS} channels")
        return cls(encoder, decoder, mean.reshape(LATENT_CHANNELS, -1), std.reshape(LATENT_CHANNELS, -1),
                   f"torchscript:{root}", device=device, dtype=dtype)

    # --- latent spaces ------------------------------------------------------------------------------------
    def _stats(self, latent_frames: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        stored = self.mean.shape[1]
        if stored == 1:
            index = torch.zeros(latent_frames, dtype=torch.long)
        elif latent_frames <= stored:
            index = torch.arange(latent_frames)
        else:
            raise TokenizerError(f"latents: {latent_frames} latent frames but mean_std covers only {stored}")
        shape = (1, self.latent_channels, latent_frames, 1, 1)
        return (self.mean[:, index].reshape(shape).to(like), self.std[:, index].reshape(shape).to(like))

    def to_tokenizer_space(self, latents: torch.Tensor) -> torch.Tensor:
        """Diffusion-space latents (B, C, T, h, w) -> tokenizer space: ``x / 0.5 * std + mean``."""
        mean, std = self._stats(latents.shape[2], latents)
        return latents / SIGMA_DATA * std + mean

    def to_diffusion_space(self, latents: torch.Tensor) -> torch.Tensor:
        """Tokenizer-space latents -> diffusion space: ``(z - mean) / std * 0.5``."""
        mean, std = self._stats(latents.shape[2], latents)
        return (latents - mean) / std * SIGMA_DATA

    # --- networks -----------------------------------------------------------------------------------------
    def check_video_shape(self, name: str, video: torch.Tensor) -> None:
        frames, height, width = video.shape[2:]
        if video.dim() != 5 or video.shape[1] != 3:
            raise ValueError(f"{name}: expected (B, 3, F, H, W), got {tuple(video.shape)}")
        if (frames - 1) % self.temporal_compression:
            raise ValueError(f"{name}: {frames} frames; the tokenizer needs 1 + {self.temporal_compression}k")
        if height % self.spatial_compression or width % self.spatial_compression:
            raise ValueError(f"{name}: {height}x{width} is not a multiple of {self.spatial_compression}")

    @torch.no_grad()
    def encode(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 3, F, H, W) -> tokenizer-space latents (B, C, 1 + (F-1)/8, H/8, W/8), float32."""
        self.check_video_shape("video", video)
        return _first_tensor(self.encoder(video.to(self.device, self.dtype))).float()

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Tokenizer-space latents -> video (B, 3, F, H, W), roughly in [-1, 1]."""
        if self.decoder is None:
            raise TokenizerError(f"{self.source}: this tokenizer has no decoder")
        return _first_tensor(self.decoder(latents.to(self.device, self.dtype))).float()

