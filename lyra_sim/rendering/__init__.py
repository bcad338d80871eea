"""``render()``: RGB, expected depth and alpha of a Gaussian world from one or more cameras.

Backends: "gsplat" (CUDA), "cpu" (lyra_sim's numba tile rasterizer, differentiable) and
"auto" (gsplat when the world lives on a CUDA device and gsplat imports, else cpu). Both follow
gsplat's ``rasterization()`` conventions so they give the same picture.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.camera import Camera
from lyra_sim.defaults import RENDER_BACKENDS
from lyra_sim.errors import LyraSimError
from lyra_sim.rendering.cpu import median_depth_cpu, render_cpu
from lyra_sim.rendering.gsplat_backend import gsplat_available, render_gsplat
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

BACKENDS = RENDER_BACKENDS


class BackendError(LyraSimError):
    """A render backend that does not exist or cannot run here (gsplat without CUDA)."""

#: A pixel less opaque than this shows no surface: its expected depth is not a measurement (collision proxies,
#: the envs' depth images).
SURFACE_ALPHA = 0.5

#: White, as Lyra renders its training views; ``lyra-sim render``, ``demo`` and the gymnasium envs use it too.
DEFAULT_BACKGROUND = (1.0, 1.0, 1.0)


@dataclass
class RenderResult:
    """Rendered images; (H,W,...) for a single camera, (B,H,W,...) for a batch."""

    rgb: torch.Tensor  # (..., H, W, 3) background composited; clipped to [0, 1] unless gradients flow (render())
    depth: torch.Tensor  # (..., H, W) expected depth along the optical axis (0 where alpha is 0)
    alpha: torch.Tensor  # (..., H, W) accumulated opacity
    median_depth: torch.Tensor | None = None  # (..., H, W) depth where transmittance crosses 0.5 (render(median=True))

    def surface_depth(self, min_alpha: float = SURFACE_ALPHA) -> torch.Tensor:
        """Depth where a pixel shows a surface (alpha >= ``min_alpha``), 0 elsewhere, as a depth sensor reports it."""
        return torch.where(self.alpha >= min_alpha, self.depth, torch.zeros_like(self.depth))

    def sensor_images(self) -> tuple[np.ndarray, np.ndarray]:
        """What an RGB-D camera reports: RGB uint8 (..., H, W, 3) and surface depth float32 (..., H, W, 1), in
        metres (0: no surface)."""
        return self.to_uint8().numpy(), self.surface_depth().detach().numpy().astype(np.float32)[..., None]

    def to_uint8(self) -> torch.Tensor:
        """RGB as uint8 (..., H, W, 3)."""
        rgb = self.rgb.detach()
        if rgb.device.type == "cpu":  # numpy: torch's thread pool would wake for this and contend with numba's
            return torch.from_numpy(unit_float_to_uint8(rgb.numpy()))
        return (rgb.clamp(0, 1) * 255 + 0.5).to(torch.uint8)


def unit_float_to_uint8(image: np.ndarray) -> np.ndarray:
    """Colours in [0, 1] (clipped) to uint8, rounded to nearest: the one conversion every image writer uses."""
    return (np.clip(image, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def _clip_unit(rgb: torch.Tensor) -> torch.Tensor:
    """``rgb`` clipped to [0, 1]; on the CPU in numpy, in place: torch's clamp wakes its thread pool for a batch of
    robot images (measured 15 ms CPU for 8 images of 64x48 on a busy 2-core machine, the render itself ~25 ms)."""
    if rgb.device.type != "cpu":
        return rgb.clamp(0.0, 1.0)
    np.clip(rgb.numpy(), 0.0, 1.0, out=rgb.numpy())
    return rgb


def resolve_backend(backend: str, world: GaussianWorld) -> str:
    """The backend "auto" stands for, or a clear error for an unknown or unavailable one."""
    if backend not in BACKENDS:
        raise BackendError(f"backend: expected one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "gsplat" if world.device.type == "cuda" and gsplat_available() else "cpu"
    if backend == "gsplat" and not gsplat_available():
        raise BackendError("backend 'gsplat' needs a CUDA GPU and the gsplat package (pip install 'lyra-sim[gpu]'); "
                           "use backend 'cpu' or 'auto' here")
    return backend


def render(
    world: GaussianWorld | DynamicGaussianWorld,
    camera: Camera,
    backend: str = "auto",
    background=DEFAULT_BACKGROUND,
    t: float | None = None,
    near: float = 0.01,
    far: float = 1e10,
    eps2d: float = 0.3,
    lod: float | None = None,
    median: bool = False,
) -> RenderResult:
    """Render ``world`` from ``camera`` (one camera or a batch).

    ``rgb`` is clipped to [0, 1] (colours from SH or the input-colour fit can exceed 1); when gradients flow
    to the world it is the raw composite instead, so a photometric loss still pulls an over-bright pixel down.
    ``background`` is an RGB triple composited behind the Gaussians (default white,
    :data:`DEFAULT_BACKGROUND`, the same as the CLI and the envs). For a dynamic world ``t``
    picks the keyframe shown (default: the first). Gradients flow to the world's tensors on
    both backends.

    ``lod`` (CPU backend, no gradients): draw far, dense parts of the world as merged Gaussians that
    project to at most ``lod`` pixels of standard deviation (``lyra_sim.rendering.lod``; 0.5 keeps
    novel-view images within a few 1/255 steps of the exact ones, see benchmarks/RESULTS.md). None
    (the default) draws every Gaussian.

    ``median``: also give ``median_depth``, the depth of the Gaussian at which a pixel's transmittance first
    drops to 0.5 or below (0 where it never does), what collision proxies fuse (computed on the CPU, without
    gradients, whatever the backend).
    """
    if isinstance(world, DynamicGaussianWorld):
        world = world.at(world.times[0] if t is None else t)
    if not isinstance(world, GaussianWorld):
        raise TypeError(f"world: expected a GaussianWorld or DynamicGaussianWorld, got {type(world).__name__}")
    if not isinstance(camera, Camera):
        raise TypeError(f"camera: expected a lyra_sim.Camera, got {type(camera).__name__}")
    if lod is not None and not (isinstance(lod, (int, float)) and math.isfinite(lod) and lod >= 0):
        raise ValueError(f"lod: expected None or a finite number of pixels >= 0, got {lod!r}")
    bg = torch.as_tensor(background, dtype=world.means.dtype)
    if bg.shape != (3,) or not torch.isfinite(bg).all():
        raise ValueError(f"background: expected three finite numbers, got {background!r}")
    chosen = resolve_backend(backend, world)
    if chosen == "gsplat":
        rgb, depth, alpha = render_gsplat(world, camera, near, far, eps2d)
        rgb = rgb + (1.0 - alpha).unsqueeze(-1) * bg.to(rgb)
    else:
        rgb, depth, alpha = render_cpu(world, camera, near, far, eps2d, bg, lod_px=lod or None)
    if not rgb.requires_grad:  # SH and fitted colours can exceed 1: (rgb * 255).astype(uint8) must not wrap
        rgb = _clip_unit(rgb)
    median_depth = None
    if median:
        with torch.no_grad():
            on_cpu = world if world.device.type == "cpu" else world.to("cpu")
            median_depth = median_depth_cpu(on_cpu, camera, near, far, eps2d).to(depth)
    if not camera.batched:
        rgb, depth, alpha = rgb[0], depth[0], alpha[0]
        median_depth = None if median_depth is None else median_depth[0]
    return RenderResult(rgb=rgb, depth=depth, alpha=alpha, median_depth=median_depth)


__all__ = ["BACKENDS", "DEFAULT_BACKGROUND", "BackendError", "RenderResult", "render", "resolve_backend"]
