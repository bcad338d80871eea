"""Bidirectional Mamba-2 mixer with Lyra's parameter layout.

Two implementations of one set of parameters:

- pure PyTorch: the chunked state-space-duality (SSD) algorithm of the Mamba-2 paper, run in float32
  and in bounded memory (chunks are processed a group at a time, the state carried between groups);
- mamba-ssm's fused ``mamba_split_conv1d_scan_combined`` (Triton/CUDA), imported lazily and used only
  for CUDA tensors when the package is installed.

Layout (the released Lyra checkpoints): one ``in_proj`` (d_model -> z, x, B, C, dt) shared by two scans; scan 0 reads
the sequence forward, scan 1 the flipped sequence (its output flipped back); each scan owns ``conv1d``,
``dt_bias``, ``A_log``, ``D`` and a gated RMSNorm ``rmsnorm(y * silu(z))``; the two outputs are summed and
go through one ``out_proj``.
"""

from __future__ import annotations

import math
from functools import cache

import torch
import torch.nn.functional as F
from torch import nn


@cache
def _fused_kernel():
    """mamba-ssm's fused conv1d + SSD + gated-norm kernel, or None when it cannot be imported."""
    try:
        from mamba_ssm.ops.triton.ssd_combined import mamba_split_conv1d_scan_combined
    except Exception:  # ImportError, or a CUDA/Triton set-up error raised at import time
        return None
    return mamba_split_conv1d_scan_combined


def fused_kernel_available() -> bool:
    """True when mamba-ssm's fused kernel imports and a CUDA device is present."""
    return torch.cuda.is_available() and _fused_kernel() is not None


def _segment_sums(log_decay: torch.Tensor) -> torch.Tensor:
    """out[..., i, j] = sum(log_decay[..., j+1 : i+1]) for j <= i, -inf above the diagonal.

    exp() of this is the lower-triangular decay matrix between positions of one chunk.
    """
    length = log_decay.shape[-1]
    cumulative = torch.cumsum(log_decay, dim=-1)
    sums = cumulative[..., :, None] - cumulative[..., None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=log_decay.device).tril()
    return sums.masked_fill(~causal, -math.inf)


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    chunks_per_step: int = 16,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-2 selective scan  h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T,  y_t = C_t . h_t.

    Shapes: x (b, l, h, p), dt (b, l, h) (already softplus'ed), A (h,) (negative), B and C (b, l, g, n)
    with g dividing h. Returns y (b, l, h, p) and the final state (b, h, p, n). Computed in float32 with the
    chunked SSD algorithm: quadratic attention-like form inside each chunk, a linear recurrence of chunk
    states between chunks. The D skip term is not included.
    """
    batch, length, heads, head_dim = x.shape
    groups, state_dim = B.shape[2], B.shape[3]
    if heads % groups:
        raise ValueError(f"heads ({heads}) must be a multiple of groups ({groups})")
    out_dtype = x.dtype
    x, dt, A, B, C = (t.float() for t in (x, dt, A, B, C))
    pad = (-length) % chunk_size
    if pad:  # dt = 0 on padding: no decay and no input, so the final state is unchanged
        x, dt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (x, dt, B, C))
    n_chunks = x.shape[1] // chunk_size
    heads_per_group = heads // groups

    def chunked(t: torch.Tensor) -> torch.Tensor:
        return t.reshape(batch, n_chunks, chunk_size, *t.shape[2:])

    x_dt = chunked(x * dt[..., None])  # (b, c, q, h, p)
    log_decay = chunked(dt * A).permute(0, 3, 1, 2)  # (b, h, c, q)
    B, C = chunked(B), chunked(C)  # (b, c, q, g, n)

    state = x.new_zeros(batch, heads, head_dim, state_dim) if initial_state is None else initial_state.float()
    outputs = []
    for start in range(0, n_chunks, chunks_per_step):
        sl = slice(start, min(start + chunks_per_step, n_chunks))
        y, state = _ssd_chunk_group(x_dt[:, sl], log_decay[:, :, sl], B[:, sl], C[:, sl], state, heads_per_group)
        outputs.append(y)
    y = torch.cat(outputs, dim=1).reshape(batch, n_chunks * chunk_size, heads, head_dim)[:, :length]
    return y.to(out_dtype), state


def _ssd_chunk_group(x_dt, log_decay, B, C, state, heads_per_group):
    """SSD over a group of chunks, starting from ``state``; returns (y (b, c, q, h, p), final state).

    Heads are handled as (group, head-in-group) so that B and C, shared by the heads of a group, are never
    copied per head (Lyra has one group for 16 heads). Every contraction is one batched matmul in the layout
    it needs, and the intra-chunk decay matrix is built in place (one buffer instead of four).
    """
    batch, chunks, q, heads, p = x_dt.shape
    g, r, n = B.shape[3], heads_per_group, B.shape[4]
    x_heads = x_dt.view(batch, chunks, q, g, r, p).permute(0, 1, 3, 4, 2, 5)  # (b, c, g, r, q, p)
    log_decay = log_decay.view(batch, g, r, chunks, q).permute(0, 3, 1, 2, 4)  # (b, c, g, r, q)
    cumulative = torch.cumsum(log_decay, dim=-1)
    B, C = B.permute(0, 1, 3, 2, 4), C.permute(0, 1, 3, 2, 4)  # (b, c, g, q, n)

    # 1. Inside each chunk: y = (C B^T * L) x_dt with L[i, j] = exp(cum_i - cum_j) for j <= i, else 0.
    # Inference works in place (exp may overflow above the diagonal; tril_ then overwrites those entries).
    # Training cannot (autograd needs exp's output) and masks before exp, so no inf * 0 reaches a gradient.
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (x_dt, log_decay, B, C, state))
    weights = cumulative[..., :, None] - cumulative[..., None, :]  # (b, c, g, r, q, s)
    if differentiable:
        upper = torch.ones(q, q, dtype=torch.bool, device=weights.device).triu(1)
        weights = weights.masked_fill(upper, float("-inf")).exp() * (C @ B.transpose(-1, -2)).unsqueeze(3)
    else:
        weights.exp_().tril_().mul_((C @ B.transpose(-1, -2)).unsqueeze(3))
    y_within = weights @ x_heads  # (b, c, g, r, q, p)
    del weights

    # 2. Each chunk's own contribution to the state at its end: sum_q decay_to_end x_dt B^T.
    decay_to_end = torch.exp(cumulative[..., -1:] - cumulative)  # (b, c, g, r, q)
    weighted = (x_heads * decay_to_end[..., None]).transpose(-1, -2).reshape(batch, chunks, g, r * p, q)
    chunk_states = (weighted @ B).view(batch, chunks, g, r, p, n)

    # 3. States entering each chunk: a linear recurrence over chunks, written as a decay matrix.
    chunk_log_decay = F.pad(cumulative[..., -1].permute(0, 2, 3, 1), (1, 0))  # (b, g, r, c+1)
    between = torch.exp(_segment_sums(chunk_log_decay))  # (b, g, r, c+1, c+1)
    all_states = torch.cat([state.view(batch, 1, g, r, p, n), chunk_states], dim=1)  # (b, c+1, g, r, p, n)
    entering = torch.einsum("bgrzc,bcgrpn->bzgrpn", between, all_states)
    entering, final_state = entering[:, :-1], entering[:, -1]

    # 4. What the entering state contributes at each position of its chunk: C h, decayed to the position.
    y = C @ entering.reshape(batch, chunks, g, r * p, n).transpose(-1, -2)  # (b, c, g, q, r*p)
    y = y.view(batch, chunks, g, q, r, p)
    decay_from_start = torch.exp(cumulative).transpose(-1, -2)[..., None]
    if differentiable:
        y = y * decay_from_start + y_within.transpose(3, 4)
    else:
        y.mul_(decay_from_start).add_(y_within.transpose(3, 4))
    y = y.permute(0, 1, 3, 2, 4, 5).reshape(batch, chunks, q, heads, p)
    return y, final_state.reshape(batch, heads, p, -1)


class GatedRMSNorm(nn.Module):
    """rmsnorm(y * silu(z)) * weight, normalised over groups of ``group_size`` channels (mamba-ssm's order)."""

    def __init__(self, dim: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.group_size = group_size or dim

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        dtype = y.dtype
        gated = (y.float() * F.silu(z.float())).unflatten(-1, (-1, self.group_size))
        normed = gated * torch.rsqrt(gated.pow(2).mean(-1, keepdim=True) + self.eps)
        return (normed.flatten(-2) * self.weight.float()).to(dtype)


class Mamba2Scan(nn.Module):
    """One direction of the mixer: causal depthwise conv1d, SSD scan with D skip, gated RMSNorm."""

    def __init__(self, d_inner: int, d_state: int, headdim: int, ngroups: int = 1, d_conv: int = 4,
                 chunk_size: int = 256, norm_eps: float = 1e-5,
                 dt_range: tuple[float, float] = (1e-3, 1e-1), dt_floor: float = 1e-4,
                 a_init_range: tuple[float, float] = (1.0, 16.0)):
        super().__init__()
        if d_inner % headdim:
            raise ValueError(f"d_inner ({d_inner}) must be a multiple of headdim ({headdim})")
        self.d_inner, self.d_state, self.headdim, self.ngroups = d_inner, d_state, headdim, ngroups
        self.nheads = d_inner // headdim
        self.chunk_size = chunk_size
        conv_dim = d_inner + 2 * ngroups * d_state
        self.conv1d = nn.Conv1d(conv_dim, conv_dim, d_conv, groups=conv_dim, padding=d_conv - 1, bias=True)
        # mamba-ssm's initialisation: dt log-uniform in dt_range (stored through inverse softplus),
        # A uniform in a_init_range (stored as log), D = 1.
        dt = torch.exp(torch.rand(self.nheads) * (math.log(dt_range[1]) - math.log(dt_range[0]))
                       + math.log(dt_range[0])).clamp(min=dt_floor)
        self.dt_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))
        self.A_log = nn.Parameter(torch.log(torch.empty(self.nheads).uniform_(*a_init_range)))
        self.D = nn.Parameter(torch.ones(self.nheads))
        self.norm = GatedRMSNorm(d_inner, eps=norm_eps, group_size=d_inner // ngroups)

    def forward(self, zxbcdt: torch.Tensor, use_kernel: bool | None = None) -> torch.Tensor:
        """(b, l, 2*d_inner + 2*g*n + heads) -> gated, normalised scan output (b, l, d_inner)."""
        if use_kernel is None:
            use_kernel = zxbcdt.is_cuda and _fused_kernel() is not None
        if use_kernel:
            return self._forward_fused(zxbcdt)
        return self._forward_torch(zxbcdt)

    def _forward_fused(self, zxbcdt: torch.Tensor) -> torch.Tensor:
        kernel = _fused_kernel()
        if kernel is None:
            raise RuntimeError("mamba-ssm is not installed: pip install 'lyra_sim[gpu]' on a CUDA machine")
        return kernel(
            zxbcdt, self.conv1d.weight.squeeze(1), self.conv1d.bias, self.dt_bias, -torch.exp(self.A_log.float()),
            self.D, self.chunk_size, activation="silu", rmsnorm_weight=self.norm.weight,
            rmsnorm_eps=self.norm.eps, outproj_weight=None, headdim=self.headdim, ngroups=self.ngroups,
            norm_before_gate=False,
        )

    def _forward_torch(self, zxbcdt: torch.Tensor) -> torch.Tensor:
        length = zxbcdt.shape[1]
        g_n = self.ngroups * self.d_state
        z, xbc, dt = torch.split(zxbcdt, [self.d_inner, self.d_inner + 2 * g_n, self.nheads], dim=-1)
        xbc = F.silu(self.conv1d(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
        x, B, C = torch.split(xbc, [self.d_inner, g_n, g_n], dim=-1)
        x = x.unflatten(-1, (self.nheads, self.headdim))
        dt = F.softplus(dt.float() + self.dt_bias.float())
        A = -torch.exp(self.A_log.float())
        y, _ = ssd_scan(x, dt, A, B.unflatten(-1, (self.ngroups, self.d_state)),
                        C.unflatten(-1, (self.ngroups, self.d_state)), self.chunk_size)
        y = y.float() + x.float() * self.D.float()[:, None]
        return self.norm(y.flatten(-2).to(zxbcdt.dtype), z)


class BidirectionalMamba2(nn.Module):
    """Lyra's mixer: shared in/out projections, a forward and a flipped scan, outputs summed."""

    def __init__(self, d_model: int, d_state: int = 256, headdim: int = 64, expand: int = 2, ngroups: int = 1,
                 d_conv: int = 4, chunk_size: int = 256):
        super().__init__()
        d_inner = expand * d_model
        nheads = d_inner // headdim
        self.in_proj = nn.Linear(d_model, 2 * d_inner + 2 * ngroups * d_state + nheads, bias=False)
        self.mamba_scans = nn.ModuleList(
            Mamba2Scan(d_inner, d_state, headdim, ngroups, d_conv, chunk_size) for _ in range(2)
        )
        self.out_proj = nn.Linear(d_inner, d_model, bias=False)

    def forward(self, hidden: torch.Tensor, use_kernel: bool | None = None) -> torch.Tensor:
        """(b, l, d_model) -> (b, l, d_model)."""
        zxbcdt = self.in_proj(hidden)
        forward_scan = self.mamba_scans[0](zxbcdt, use_kernel)
        backward_scan = self.mamba_scans[1](zxbcdt.flip(1), use_kernel).flip(1)
        return self.out_proj(forward_scan + backward_scan)
