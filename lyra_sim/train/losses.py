"""Lyra's training losses (Lyra, arXiv 2509.19296): MSE + 0.5 perceptual + 0.05 scale-invariant depth + opacity.

Masked pixels (teacher disocclusions) contribute neither value nor gradient to any term.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F


def masked_mse(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean squared error over valid pixels; (..., H, W, C) images, (..., H, W) mask."""
    weight = mask.unsqueeze(-1).to(prediction.dtype).expand_as(prediction)
    return ((prediction - target) ** 2 * weight).sum() / weight.sum().clamp_min(1.0)


def _gaussian_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    coords = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim_map(prediction: torch.Tensor, target: torch.Tensor, window_size: int = 11) -> torch.Tensor:
    """Per-pixel SSIM (Wang et al. 2004, Gaussian window 1.5) of (N, H, W, C) images in [0, 1] -> (N, H, W)."""
    x, y = prediction.permute(0, 3, 1, 2), target.permute(0, 3, 1, 2)
    channels = x.shape[1]
    window = _gaussian_window(window_size, dtype=x.dtype).to(x.device).expand(channels, 1, -1, -1)

    def blur(image):
        return F.conv2d(image, window, padding=window_size // 2, groups=channels)

    mu_x, mu_y = blur(x), blur(y)
    sigma_x = blur(x * x) - mu_x**2
    sigma_y = blur(y * y) - mu_y**2
    sigma_xy = blur(x * y) - mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    value = ((2 * mu_x * mu_y + c1) * (2 * sigma_xy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sigma_x + sigma_y + c2))
    return value.mean(dim=1)


class PerceptualLoss:
    """LPIPS(VGG) when the ``lpips`` package, torchvision and local VGG-16 weights are available, else 1 - SSIM.

    ``name`` says which one is in use (the trainer logs it). Nothing is downloaded: ``$LYRA_SIM_LPIPS_VGG``
    must point at torchvision's ``vgg16`` state dict; LPIPS's own linear heads ship inside the package.
    """

    def __init__(self):
        self.name, self._lpips = "ssim", None
        weights = os.environ.get("LYRA_SIM_LPIPS_VGG")
        if weights and os.path.isfile(weights):
            self._lpips = _local_lpips(weights)
            if self._lpips is not None:
                self.name = "lpips-vgg"

    def __call__(self, prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, H, W, 3) in [0, 1]; masked pixels are replaced by the target so they cost and pass nothing."""
        valid = mask.unsqueeze(-1)
        prediction = torch.where(valid, prediction, target.detach())
        if self._lpips is not None:
            self._lpips = self._lpips.to(prediction.device)
            return self._lpips(prediction.permute(0, 3, 1, 2) * 2 - 1, target.permute(0, 3, 1, 2) * 2 - 1).mean()
        per_pixel = 1 - ssim_map(prediction, target)
        return (per_pixel * mask).sum() / mask.sum().clamp_min(1.0)


def _local_lpips(vgg_weights: str):
    """lpips.LPIPS(net="vgg") built without downloads: random backbone, then torchvision's VGG-16 features
    copied in by layer index (lpips splits ``features`` into slices that keep the original indices)."""
    try:
        import lpips
    except ImportError:
        return None
    model = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval().requires_grad_(False)
    state = torch.load(vgg_weights, map_location="cpu", weights_only=True)
    for slice_name in ("slice1", "slice2", "slice3", "slice4", "slice5"):
        for index, layer in getattr(model.net, slice_name).named_children():
            if isinstance(layer, torch.nn.Conv2d):
                layer.weight.copy_(state[f"features.{index}.weight"])
                layer.bias.copy_(state[f"features.{index}.bias"])
    return model


def _normalise_depth(depth: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Subtract the median, divide by the mean absolute deviation (clamped to [1e-3, 1e3]), over valid pixels."""
    values = depth[mask]
    if values.numel() == 0:
        return torch.zeros_like(depth)
    median = values.median()
    spread = (values - median).abs().mean().clamp(1e-3, 1e3)
    return (depth - median) / spread


def scale_invariant_depth_loss(prediction: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per frame, median/MAD-normalised predicted and teacher depth, masked smooth-L1. (N, H, W) inputs."""
    losses = []
    for p, t, m in zip(prediction, target, mask, strict=True):
        if m.sum() < 2:
            continue
        difference = F.smooth_l1_loss(_normalise_depth(p, m), _normalise_depth(t, m), reduction="none")
        losses.append((difference * m).sum() / m.sum())
    return torch.stack(losses).mean() if losses else prediction.sum() * 0.0


def opacity_loss(opacities: torch.Tensor) -> torch.Tensor:
    """Mean opacity of the kept Gaussians (pushes unneeded ones towards zero before pruning)."""
    return opacities.mean()
