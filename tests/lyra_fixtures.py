"""Tiny stand-ins for the Lyra release that tests can make: a Cosmos tokenizer and a GEN3C output folder."""

from pathlib import Path

import numpy as np
import torch

from lyra_sim.lyra.plucker import intrinsics_matrix
from lyra_sim.trajectories import lyra_trajectories

FRAMES, HEIGHT, WIDTH = 9, 32, 48  # 2 latent frames of 4 x 6
INTRINSICS = (40.0, 40.0, 24.0, 16.0)
LATENT_FRAMES_IN_STATS = 3


def tiny_cosmos(seed: int = 0):
    """A randomly initialised AutoencoderKLCosmos with the real 8x8x8 compression (about 170k parameters)."""
    from diffusers import AutoencoderKLCosmos

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    channels = (8, 8, 8, 8)
    count = 16 * LATENT_FRAMES_IN_STATS
    return AutoencoderKLCosmos(
        encoder_block_out_channels=channels, decode_block_out_channels=channels, attention_resolutions=(),
        resolution=64, num_layers=1, patch_size=4, spatial_compression_ratio=8, temporal_compression_ratio=8,
        latents_mean=(rng.normal(size=count) * 0.1).tolist(), latents_std=(0.5 + rng.random(count)).tolist(),
    ).eval()


def write_tiny_tokenizer(root: Path, seed: int = 0) -> Path:
    tiny_cosmos(seed).save_pretrained(root)
    return root


def write_teacher_dir(root: Path, name: str = "scene", seed: int = 0) -> Path:
    """Six trajectories of random diffusion-space latents with Lyra's camera paths (GEN3C's file layout)."""
    rng = np.random.default_rng(seed)
    K = intrinsics_matrix(torch.tensor(INTRINSICS))
    cameras = lyra_trajectories(K, WIDTH, HEIGHT, num_frames=FRAMES, order=(0, 1, 2, 3, 4, 5))
    latent_frames = (FRAMES - 1) // 8 + 1
    for index, camera in enumerate(cameras):
        folder = root / str(index)
        for sub in ("latent", "pose", "intrinsics"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        latent = rng.normal(size=(1, 16, latent_frames, HEIGHT // 8, WIDTH // 8)).astype(np.float32)
        torch.save(latent, folder / "latent" / f"{name}.pkl")
        np.savez(folder / "pose" / f"{name}.npz", data=camera.cam_to_world.double().numpy(), inds=np.arange(FRAMES))
        np.savez(folder / "intrinsics" / f"{name}.npz", data=np.tile(INTRINSICS, (FRAMES, 1)), inds=np.arange(FRAMES))
    return root
