"""Lyra's latent 3DGS decoder: patch embeddings, 16 Mamba-2/Transformer blocks, a 3D deconvolution head.

The module's ``state_dict()`` matches the released checkpoints (``lyra_static.pt``, ``lyra_dynamic.pt``)
name for name and shape for shape; the architecture follows them and the paper (Lyra, arXiv 2509.19296).
"""

from __future__ import annotations

import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields, replace

import torch
import torch.nn.functional as F
from torch import nn

from lyra_sim.errors import LyraSimError
from lyra_sim.lyra.cpu_linear import linear
from lyra_sim.lyra.cpu_memory import retained_heap
from lyra_sim.lyra.mamba2 import BidirectionalMamba2


class CheckpointError(LyraSimError):
    """A checkpoint file that is unreadable or does not match the decoder's state dict."""


@dataclass(frozen=True)
class LyraDecoderConfig:
    """Architecture hyper-parameters. ``official()`` is the released model; ``small()`` runs on a CPU."""

    latent_channels: int = 16
    plucker_channels: int = 32
    time_channels: int = 16
    width: int = 512
    depth: int = 16
    attention_every: int = 8  # block i is a Transformer block when (i + 1) % attention_every == 0
    num_heads: int = 8
    mlp_ratio: int = 4
    d_state: int = 256
    headdim: int = 64
    expand: int = 2
    ngroups: int = 1
    d_conv: int = 4
    chunk_size: int = 256
    out_channels: int = 12
    temporal_upsample: int = 8  # the Cosmos tokenizer's causal temporal compression
    dynamic: bool = False

    @classmethod
    def official(cls, dynamic: bool = False) -> LyraDecoderConfig:
        return cls(dynamic=dynamic)

    @classmethod
    def small(cls, dynamic: bool = False, width: int = 64, depth: int = 4, **overrides) -> LyraDecoderConfig:
        """A few-hundred-thousand-parameter config with the same structure (for tests and CPU use)."""
        settings = dict(width=width, depth=depth, attention_every=2, num_heads=4, d_state=16, headdim=16,
                        chunk_size=32, dynamic=dynamic)
        settings.update(overrides)
        return cls(**settings)

    def is_attention_block(self, index: int) -> bool:
        return (index + 1) % self.attention_every == 0


class PatchEmbed3d(nn.Module):
    """Conv3d with kernel = stride = (1, 2, 2), then LayerNorm over channels; (n, c, t, h, w) -> (n, t, h', w', d)."""

    def __init__(self, in_channels: int, width: int, zero_init: bool = False):
        super().__init__()
        self.proj = nn.Conv3d(in_channels, width, kernel_size=(1, 2, 2), stride=(1, 2, 2))
        self.norm = nn.LayerNorm(width, eps=1e-5)
        if zero_init:
            nn.init.zeros_(self.proj.weight)
            nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(x).permute(0, 2, 3, 4, 1))


class Attention(nn.Module):
    """Full (non-causal) multi-head self-attention through scaled_dot_product_attention."""

    def __init__(self, width: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(width, 3 * width, bias=True)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        q, k, v = linear(self.qkv, x).view(batch, length, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return linear(self.proj, out.transpose(1, 2).reshape(batch, length, width))


class Mlp(nn.Module):
    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(self.fc2, F.gelu(linear(self.fc1, x)))


class TransformerBlock(nn.Module):
    """Pre-norm Transformer block (LayerNorm eps 1e-6, qkv with bias, MLP x4 with GELU)."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = Attention(width, num_heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = Mlp(width, width * mlp_ratio)

    def forward(self, x: torch.Tensor, use_kernel: bool | None = None) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class MambaBlock(nn.Module):
    """``x + mamba(RMSNorm(x))`` with the bidirectional Mamba-2 mixer."""

    def __init__(self, config: LyraDecoderConfig):
        super().__init__()
        self.norm = nn.RMSNorm(config.width, eps=1e-5)
        self.mamba = BidirectionalMamba2(config.width, config.d_state, config.headdim, config.expand,
                                         config.ngroups, config.d_conv, config.chunk_size)

    def forward(self, x: torch.Tensor, use_kernel: bool | None = None) -> torch.Tensor:
        return x + self.mamba(self.norm(x), use_kernel)


class LyraDecoder(nn.Module):
    """Latents (+ Plücker latents, + time latents when dynamic) of V views -> 12 raw Gaussian channels per pixel.

    All inputs are in Cosmos tokenizer space, shaped (B, V, C, T, h, w) with T latent frames of h x w.
    The output of each view is (B, 12, F, 2h, 2w) with F = (T - 1) * 8 + 1 frames: one Gaussian per pixel
    of every 8x-downsampled frame (channels: distance 1, rgb 3, scale 3, rotation 4, opacity 1).
    """

    def __init__(self, config: LyraDecoderConfig | None = None):
        super().__init__()
        self.config = config = config or LyraDecoderConfig()
        self.patch_embed = PatchEmbed3d(config.latent_channels, config.width)
        self.patch_plucker_embed = PatchEmbed3d(config.plucker_channels, config.width, zero_init=True)
        # The released static checkpoint carries the time embeddings too (unused there).
        self.patch_time_embed = PatchEmbed3d(config.time_channels, config.width, zero_init=True)
        self.patch_time_embed_tgt = PatchEmbed3d(config.time_channels, config.width, zero_init=True)
        self.enc_blocks = nn.ModuleList(
            TransformerBlock(config.width, config.num_heads, config.mlp_ratio) if config.is_attention_block(i)
            else MambaBlock(config)
            for i in range(config.depth)
        )
        self.enc_norm = nn.LayerNorm(config.width, eps=1e-6)
        up = config.temporal_upsample
        self.deconv = nn.ConvTranspose3d(config.width, config.out_channels, kernel_size=(up + 1, 2, 2),
                                         stride=(up, 2, 2), padding=(up // 2, 0, 0))

    # --- construction -------------------------------------------------------------------------------------
    @classmethod
    def official(cls, dynamic: bool = False) -> LyraDecoder:
        """The released architecture (32,753,996 parameters) with random weights."""
        return cls(LyraDecoderConfig.official(dynamic))

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, dynamic: bool | None = None,
                        config: LyraDecoderConfig | None = None,
                        map_location: str | torch.device = "cpu") -> LyraDecoder:
        """Load an official-format checkpoint (``{"module": state_dict}``) strictly.

        The architecture comes from ``config``, else from a ``"config"`` entry in the file (written by
        ``official_checkpoint`` for non-official sizes), else the official one. ``dynamic`` defaults to what
        the file name says (``dynamic`` in it); it only selects whether time conditioning is used.
        """
        state, stored_config = load_checkpoint_state(path, map_location)
        if config is None and stored_config is not None:
            config = config_from_dict(stored_config, source=os.fspath(path))
            if dynamic is not None:
                config = replace(config, dynamic=dynamic)
        if config is None:
            if dynamic is None:
                dynamic = "dynamic" in os.path.basename(os.fspath(path)).lower()
            config = LyraDecoderConfig.official(dynamic)
        with torch.device("meta"):  # compare shapes before allocating what the config asks for
            check_state_dict(cls(config), state, source=os.fspath(path))
        check_finite_weights(state, source=os.fspath(path))
        model = cls(config)
        model.load_state_dict(state, strict=True)
        return model

    def official_checkpoint(self) -> dict:
        """This module's weights in the official file layout ``{"module": state_dict}``.

        A non-official size also records its ``"config"`` so ``from_checkpoint`` can rebuild it.
        """
        payload = {"module": self.state_dict()}
        if self.config != LyraDecoderConfig.official(self.config.dynamic):
            payload["config"] = asdict(self.config)
        return payload

    # --- forward ------------------------------------------------------------------------------------------
    def embed(self, latents: torch.Tensor, plucker: torch.Tensor, input_times: torch.Tensor | None = None,
              target_times: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Sum of the patch embeddings as one token sequence (B, V*T*h'*w', width), plus (B, V, T, h', w')."""
        batch, views = latents.shape[:2]
        _check_input("latents", latents, self.config.latent_channels)
        _check_input("plucker", plucker, self.config.plucker_channels, latents.shape)
        tokens = self.patch_embed(latents.flatten(0, 1)) + self.patch_plucker_embed(plucker.flatten(0, 1))
        if self.config.dynamic:
            if input_times is None or target_times is None:
                raise ValueError("the dynamic decoder needs input_times and target_times latents")
            _check_input("input_times", input_times, self.config.time_channels, latents.shape)
            _check_input("target_times", target_times, self.config.time_channels, latents.shape)
            tokens = tokens + self.patch_time_embed(input_times.flatten(0, 1))
            tokens = tokens + self.patch_time_embed_tgt(target_times.flatten(0, 1))
        grid = (batch, views, *tokens.shape[1:4])
        return tokens.reshape(batch, -1, self.config.width), grid

    def encode(self, latents: torch.Tensor, plucker: torch.Tensor, input_times: torch.Tensor | None = None,
               target_times: torch.Tensor | None = None, use_kernel: bool | None = None,
               progress=None) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Run the blocks over all views as one sequence: returns normalised tokens and their grid.

        At CPU inference the blocks run inside ``retained_heap()``: each block reuses the memory the previous one
        freed instead of faulting fresh pages in (see ``cpu_memory``).
        """
        tokens, grid = self.embed(latents, plucker, input_times, target_times)
        retain = tokens.device.type == "cpu" and not torch.is_grad_enabled()
        with retained_heap() if retain else nullcontext():
            for block in self.enc_blocks:
                tokens = block(tokens, use_kernel)
                if progress is not None:
                    progress.update(1)
        return self.enc_norm(tokens), grid

    def head(self, view_tokens: torch.Tensor) -> torch.Tensor:
        """Tokens of one view (B, T, h', w', width) -> raw Gaussian channels (B, 12, F, 2h', 2w')."""
        return self.deconv(view_tokens.permute(0, 4, 1, 2, 3))

    def forward(self, latents: torch.Tensor, plucker: torch.Tensor, input_times: torch.Tensor | None = None,
                target_times: torch.Tensor | None = None, use_kernel: bool | None = None) -> torch.Tensor:
        """All views at once: raw Gaussian channels (B, V, 12, F, 2h', 2w')."""
        tokens, (batch, views, t, h, w) = self.encode(latents, plucker, input_times, target_times, use_kernel)
        per_view = tokens.view(batch * views, t, h, w, -1)
        return self.head(per_view).unflatten(0, (batch, views))


def _check_input(name: str, tensor: torch.Tensor, channels: int, like: torch.Size | None = None) -> None:
    if tensor.dim() != 6 or tensor.shape[2] != channels:
        raise ValueError(f"{name}: expected (B, V, {channels}, T, h, w), got {tuple(tensor.shape)}")
    if tensor.shape[-2] % 2 or tensor.shape[-1] % 2:
        raise ValueError(f"{name}: latent height and width must be even, got {tuple(tensor.shape[-2:])}")
    if like is not None and (tensor.shape[:2] != like[:2] or tensor.shape[3:] != like[3:]):
        raise ValueError(f"{name}: shape {tuple(tensor.shape)} does not match latents {tuple(like)}")


def load_checkpoint_state(path: str | os.PathLike,
                          map_location: str | torch.device = "cpu") -> tuple[dict, dict | None]:
    """``torch.load(path, weights_only=True)["module"]`` (and the optional ``"config"``), errors naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"{path}: not a loadable weights-only torch checkpoint ({exc})") from exc
    if not isinstance(payload, dict) or "module" not in payload or not isinstance(payload["module"], dict):
        keys = list(payload)[:5] if isinstance(payload, dict) else type(payload).__name__
        raise CheckpointError(f"{path}: expected a dict with a 'module' state dict, got {keys}")
    stored_config = payload.get("config")
    if stored_config is not None and not isinstance(stored_config, dict):
        raise CheckpointError(f"{path}: 'config' entry must be a dict, got {type(stored_config).__name__}")
    return payload["module"], stored_config


#: Inclusive ranges of the integer config fields a checkpoint may ask for (the official model is well inside;
#: latent_channels also admits the trainer's PixelSpace input, 3 x 8 x 8 x 8 = 1536 space-to-depth channels).
CONFIG_RANGES = {
    "latent_channels": (1, 4096), "plucker_channels": (1, 1024), "time_channels": (1, 1024), "width": (1, 8192),
    "depth": (1, 256), "attention_every": (1, 256), "num_heads": (1, 256), "mlp_ratio": (1, 16),
    "d_state": (1, 4096), "headdim": (1, 1024), "expand": (1, 16), "ngroups": (1, 256), "d_conv": (1, 16),
    "chunk_size": (1, 65536), "out_channels": (1, 1024), "temporal_upsample": (1, 64),
}


def config_from_dict(values: dict, source: str = "checkpoint") -> LyraDecoderConfig:
    """A LyraDecoderConfig from a checkpoint's ``config`` entry: known keys, integer types and sane ranges only."""
    known = {f.name for f in fields(LyraDecoderConfig)}
    unknown = sorted(map(str, set(values) - known))
    problems = [f"unknown keys {unknown}"] if unknown else []
    for key, value in values.items():
        if key == "dynamic":
            if not isinstance(value, bool):
                problems.append(f"dynamic must be true or false, got {value!r}")
        elif key in CONFIG_RANGES:
            lo, hi = CONFIG_RANGES[key]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                problems.append(f"{key} must be an integer in [{lo}, {hi}], got {value!r}")
    if not problems:
        width = values.get("width", LyraDecoderConfig.width)
        heads = values.get("num_heads", LyraDecoderConfig.num_heads)
        if width % heads:
            problems.append(f"width {width} is not divisible by num_heads {heads}")
    if problems:
        raise CheckpointError(f"{source}: invalid 'config' entry: " + "; ".join(problems))
    return LyraDecoderConfig(**values)


def check_finite_weights(state: dict, source: str = "checkpoint") -> None:
    """Raise CheckpointError naming the first tensors that hold NaN or infinite values."""
    bad = [k for k, v in state.items() if isinstance(v, torch.Tensor) and v.is_floating_point()
           and not bool(torch.isfinite(v).all())]
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad) - 5} more)" if len(bad) > 5 else "")
        raise CheckpointError(f"{source}: {len(bad)} weight tensors hold NaN or infinite values ({shown})")


def check_state_dict(model: nn.Module, state: dict, source: str = "checkpoint") -> None:
    """Raise CheckpointError listing missing, unexpected and mis-shaped keys (strict comparison)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    not_tensors = sorted(k for k, v in state.items() if not isinstance(v, torch.Tensor))
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    misshaped = sorted(f"{k}: checkpoint {given[k]} vs model {expected[k]}"
                       for k in set(expected) & set(given) if given[k] != expected[k])
    if not (missing or unexpected or misshaped or not_tensors):
        return
    lines = [f"{source}: does not match the Lyra decoder state dict"]
    for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped),
                         ("not tensors", not_tensors)):
        if items:
            shown = ", ".join(items[:20]) + (f", ... ({len(items) - 20} more)" if len(items) > 20 else "")
            lines.append(f"  {title} ({len(items)}): {shown}")
    raise CheckpointError("\n".join(lines))
