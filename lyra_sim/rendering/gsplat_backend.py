"""The CUDA rendering backend: gsplat's ``rasterization()`` (imported lazily, GPU only)."""

from __future__ import annotations

import torch

from lyra_sim.camera import Camera
from lyra_sim.world import GaussianWorld


def gsplat_available() -> bool:
    """True when CUDA is present and gsplat imports."""
    if not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401
    except ImportError:
        return False
    return True


def render_gsplat(
    world: GaussianWorld, camera: Camera, near: float, far: float, eps2d: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Render a camera batch on CUDA: RGB without background (B,H,W,3), expected depth, alpha."""
    from gsplat import rasterization

    device = world.device if world.device.type == "cuda" else torch.device("cuda")
    world = world.to(device)
    renders, alphas, _ = rasterization(
        world.means,
        world.quats,
        world.scales,
        world.opacities,
        world.sh,
        camera.world_to_cam.to(device),
        camera.K.to(device),
        camera.width,
        camera.height,
        near_plane=near,
        far_plane=far,
        eps2d=eps2d,
        sh_degree=world.sh_degree,
        packed=False,
        render_mode="RGB+ED",
        rasterize_mode="classic",
    )
    return renders[..., :3], renders[..., 3], alphas[..., 0]
