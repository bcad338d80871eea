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

from lyra_sim.lyra.cpu_linear import linear, matmul_transposed
from lyra_sim.lyra.cpu_threads import side_by_side


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


#: Smallest state per group (heads x head dim x state dim) for which CPU inference walks the chunks one at a
#: time through oneDNN; below it (the small test configs) per-call overhead outweighs the faster matmuls and the
#: chunks go in batched blocks (measured on the small config: 44 vs 50 ms per forward; Lyra's state is 262,144).
WALK_MIN_STATE = 1 << 16

#: Largest |log decay| between a position and its chunk's midpoint for which the intra-chunk decay matrix is
#: factorised (exp(60) = 1e26: far from float32 overflow and underflow, so no precision is lost).
FACTORISED_DECAY_LIMIT = 60.0


def ssd_scan(
    x: torch.Tensor,
    dt: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    chunk_size: int,
    initial_state: torch.Tensor | None = None,
    chunks_per_step: int = 8,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The Mamba-2 selective scan  h_t = exp(dt_t A) h_{t-1} + dt_t B_t x_t^T,  y_t = C_t . h_t.

    Shapes: x (b, l, h, p), dt (b, l, h) (already softplus'ed), A (h,) (negative), B and C (b, l, g, n)
    with g dividing h. Returns y (b, l, h, p) and the final state (b, h, p, n). Computed in float32 with the
    chunked SSD algorithm: quadratic attention-like form inside each chunk, a linear recurrence of chunk
    states between chunks. The D skip term is not included. Off the CPU-inference walk (below), ``chunks_per_step``
    chunks share one batched computation of their state read-outs; the result does not depend on it.

    CPU-minded layout: heads are handled as (group, head-in-group) so that B and C, shared by the heads of a
    group, are never copied per head (Lyra: one group, 16 heads). The state walks the chunks in order, so it
    (h x p x n, 1 MB for Lyra) stays in cache while each chunk reads it out (C h) and updates it
    (decay h + x_dt^T B); materialising every chunk's state costs memory traffic that dominates on a CPU.
    Inside a chunk, the decay L[i, j] = exp(cum_i - cum_j) is factorised around the chunk's midpoint m as
    exp(cum_i - m) exp(m - cum_j) when that stays within exp(+-FACTORISED_DECAY_LIMIT): the heads then share
    one masked C B^T and a chunk is one matmul with all heads side by side. Stronger decay falls back to one
    exact decay matrix per head. At CPU inference with a state of at least WALK_MIN_STATE per group, each chunk's
    state read-out and update are 2-D matmuls through ``matmul_transposed`` (oneDNN: about twice BLAS's rate for
    these shapes on the AMD CPU the decoder was tuned on); elsewhere they are batched over ``chunks_per_step``.
    """
    batch, length, heads, p = x.shape
    g, n = B.shape[2], B.shape[3]
    if heads % g:
        raise ValueError(f"heads ({heads}) must be a multiple of groups ({g})")
    r = heads // g
    out_dtype = x.dtype
    x, dt, A, B, C = (t.float() for t in (x, dt, A, B, C))
    q = chunk_size
    pad = (-length) % q
    if pad:  # dt = 0 on padding: no decay and no input, so the final state is unchanged
        dt, B, C = (F.pad(t, (0, 0) * (t.dim() - 2) + (0, pad)) for t in (dt, B, C))
    chunks = dt.shape[1] // q
    state = x.new_zeros(batch, heads, p, n) if initial_state is None else initial_state.float()
    differentiable = torch.is_grad_enabled() and any(t.requires_grad for t in (x, dt, A, B, C, state))

    def x_times(factor: torch.Tensor) -> torch.Tensor:
        """x * factor (per position and head, (b, c, g, r, q)), padded and chunked: (b, c, q, g, r, p)."""
        factor = factor.permute(0, 1, 4, 2, 3).reshape(batch, chunks * q, heads)[:, :length, :, None]
        if not pad:
            out = x * factor
        elif differentiable:
            out = F.pad(x * factor, (0, 0, 0, 0, 0, pad))
        else:  # written straight into the padded buffer
            out = x.new_empty(batch, length + pad, heads, p)
            torch.mul(x, factor, out=out[:, :length])
            out[:, length:].zero_()
        return out.view(batch, chunks, q, g, r, p)

    log_decay = (dt * A).view(batch, chunks, q, g, r).permute(0, 1, 3, 4, 2)  # (b, c, g, r, q)
    cumulative = torch.cumsum(log_decay, dim=-1)
    dt = dt.view(batch, chunks, q, g, r).permute(0, 1, 3, 4, 2)
    B = B.view(batch, chunks, q, g, n).transpose(2, 3)  # (b, c, g, q, n)
    C = C.view(batch, chunks, q, g, n).transpose(2, 3)
    middle = cumulative[..., q // 2 : q // 2 + 1]
    factorised = bool(torch.maximum(cumulative[..., :1] - middle, middle - cumulative[..., -1:]).max()
                      <= FACTORISED_DECAY_LIMIT)
    if factorised:
        within_input = x_times(dt * torch.exp(middle - cumulative)).view(batch, chunks, q, g, r * p)
        within_input = within_input.transpose(2, 3)  # (b, c, g, s, r*p)
        from_middle = torch.exp(cumulative - middle).transpose(-1, -2)[..., None]  # (b, c, g, q, r, 1)
    else:
        within_input = x_times(dt)
    # The state update's input: x_dt decayed to the chunk end, (b, c, q, g, r*p), and the chunk's total decay.
    weighted = x_times(dt * torch.exp(cumulative[..., -1:] - cumulative)).view(batch, chunks, q, g, r * p)
    chunk_decay = torch.exp(cumulative[..., -1]).view(batch, chunks, g, r, 1, 1).expand(-1, -1, -1, -1, p, 1)
    chunk_decay = chunk_decay.reshape(batch, chunks, g, r * p, 1)
    from_start = torch.exp(cumulative).transpose(-1, -2)[..., None]  # (b, c, g, q, r, 1)
    scores = C @ B.transpose(-1, -2)  # (b, c, g, q, s)
    if factorised:
        scores = scores.tril() if differentiable else scores.tril_()
        within = (scores @ within_input).view(batch, chunks, g, q, r, p) * from_middle
    else:
        within = _within_chunks_per_head(within_input, cumulative, scores, differentiable)
    if not differentiable and x.device.type == "cpu" and r * p * n >= WALK_MIN_STATE:
        return _walk_chunk_states(within, weighted, chunk_decay, from_start, B, C, state, length, out_dtype)

    def per_chunk(t: torch.Tensor) -> torch.Tensor:  # (b, c, g, ...) -> (c, b*g, ...), a view for b = 1 or g = 1
        return t.transpose(0, 1).reshape(chunks, batch * g, *t.shape[3:])

    B_c, C_c, chunk_decay = (per_chunk(t) for t in (B, C, chunk_decay))
    weighted = per_chunk(weighted.permute(0, 1, 3, 4, 2))  # (c, b*g, r*p, q)
    state = state.reshape(batch * g, r * p, n)
    y = []
    for start in range(0, chunks, chunks_per_step):
        block = slice(start, min(start + chunks_per_step, chunks))
        from_state = []
        for i in range(block.start, block.stop):
            from_state.append(C_c[i] @ state.transpose(-1, -2))
            state = torch.baddbmm(state * chunk_decay[i], weighted[i], B_c[i])
        # y = the state's read-out decayed from the chunk start + the intra-chunk part.
        from_state = torch.stack(from_state).view(-1, batch, g, q, r, p).transpose(0, 1) * from_start[:, block]
        y.append(from_state + within[:, block])
    y = torch.cat(y, dim=1).permute(0, 1, 3, 2, 4, 5).reshape(batch, chunks * q, heads, p)[:, :length]
    return y.to(out_dtype), state.reshape(batch, heads, p, n)


def _walk_chunk_states(within, weighted, chunk_decay, from_start, B, C, state, length: int,
                       out_dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The inference scan's chunk recurrence, one sequence and one chunk at a time: y = within + the read-out of
    the state entering each chunk decayed from the chunk start; returns (y (b, l, h, p), final state (b, h, p, n)).

    Shapes: within (b, c, g, q, r, p), weighted (b, c, q, g, r*p), chunk_decay (b, c, g, r*p, 1), from_start
    (b, c, g, q, r, 1), B and C (b, c, g, q, n); state (b, h, p, n). The state is kept transposed, (n, r*p), so
    that each chunk is two 2-D matmuls on operands as they lie: the read-out C h^T and the update B^T x_dt, whose
    right-hand sides oneDNN reorders into its own layout whatever their strides.
    """
    batch, chunks, g, q, r, p = within.shape
    n = B.shape[-1]
    y = within.permute(0, 1, 3, 2, 4, 5).contiguous()  # (b, c, q, g, r, p): the output's own layout
    B_t = B.transpose(-1, -2).contiguous()  # (b, c, g, n, q)
    C = C.contiguous()
    chunk_decay = chunk_decay.transpose(-1, -2)  # (b, c, g, 1, r*p)
    state_t = state.reshape(batch, g, r * p, n).transpose(-1, -2).contiguous()  # (b, g, n, r*p)
    for b in range(batch):
        for group in range(g):
            h_t = state_t[b, group]
            for i in range(chunks):
                read_out = matmul_transposed(C[b, i, group], h_t.T).view(q, r, p)
                y[b, i, :, group].addcmul_(read_out, from_start[b, i, group])
                update = matmul_transposed(B_t[b, i, group], weighted[b, i, :, group].T)  # (n, r*p)
                h_t = update.addcmul_(h_t, chunk_decay[b, i, group])
            state_t[b, group] = h_t
    y = y.view(batch, chunks * q, g * r, p)[:, :length]
    return y.to(out_dtype), state_t.transpose(-1, -2).reshape(batch, g * r, p, n)


def _within_chunks_per_head(x_dt, cumulative, scores, differentiable: bool) -> torch.Tensor:
    """Intra-chunk outputs (C B^T * L) x_dt with one exact decay matrix L per head: (b, c, g, q, r, p).

    Shapes: x_dt (b, c, q, g, r, p), cumulative (b, c, g, r, q), scores = C B^T (b, c, g, q, s). Inference builds
    L in place (exp may overflow above the diagonal; tril_ then overwrites those entries). Training cannot
    (autograd needs exp's output) and masks before exp, so no inf * 0 reaches a gradient.
    """
    q = cumulative.shape[-1]
    weights = cumulative[..., :, None] - cumulative[..., None, :]  # (b, c, g, r, q, s)
    if differentiable:
        upper = torch.ones(q, q, dtype=torch.bool, device=weights.device).triu(1)
        weights = weights.masked_fill(upper, float("-inf")).exp() * scores.unsqueeze(3)
    else:
        weights.exp_().tril_().mul_(scores.unsqueeze(3))
    return (weights @ x_dt.permute(0, 1, 3, 4, 2, 5)).transpose(3, 4)


def causal_depthwise_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                            rows_per_step: int = 256) -> torch.Tensor:
    """``nn.Conv1d(c, c, k, groups=c, padding=k-1)`` on (b, l, c) tensors, output cut to the first l positions.

    Written as k shifted multiply-adds in the (length, channel) layout the projections produce: on a CPU this
    is several times faster than Conv1d, which needs the transposed layout and a copy into it. At inference
    the positions go ``rows_per_step`` at a time, so that the k passes over a block hit the cache.
    """
    length, taps = x.shape[1], weight.shape[-1]
    weight = weight.reshape(-1, taps)  # (c, k); tap j multiplies x[t - (k - 1 - j)]
    if torch.is_grad_enabled():  # autograd records in-place updates of slices, not out= writes
        out = x * weight[:, -1] if bias is None else torch.addcmul(bias, x, weight[:, -1])
        for shift in range(1, min(taps, length + 1)):
            out[:, shift:].addcmul_(x[:, :-shift], weight[:, taps - 1 - shift])
        return out
    out = torch.empty(x.shape, dtype=torch.result_type(x, weight), device=x.device)
    for start in range(0, length, rows_per_step):
        stop = min(start + rows_per_step, length)
        block = out[:, start:stop]
        if bias is None:
            torch.mul(x[:, start:stop], weight[:, -1], out=block)
        else:
            torch.addcmul(bias, x[:, start:stop], weight[:, -1], out=block)
        for shift in range(1, taps):
            first = max(start, shift)
            if first < stop:
                block[:, first - start:].addcmul_(x[:, first - shift:stop - shift], weight[:, taps - 1 - shift])
    return out


class GatedRMSNorm(nn.Module):
    """rmsnorm(y * silu(z)) * weight, normalised over groups of ``group_size`` channels (mamba-ssm's order)."""

    def __init__(self, dim: int, eps: float = 1e-5, group_size: int | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps
        self.group_size = group_size or dim

    def forward(self, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return self.gated(y, F.silu(z.float()))

    def gated(self, y: torch.Tensor, gate: torch.Tensor, overwrite: bool = False) -> torch.Tensor:
        """rmsnorm(y * gate) * weight for a precomputed gate = silu(z); ``overwrite`` may reuse y's memory."""
        dtype = y.dtype
        overwrite = overwrite and y.dtype == torch.float32 and not torch.is_grad_enabled()
        gated = y.mul_(gate) if overwrite else y.float() * gate
        gated = gated.unflatten(-1, (-1, self.group_size))
        # One reduction pass (vector_norm) instead of pow + mean, which writes a squared copy first.
        mean_square = torch.linalg.vector_norm(gated, dim=-1, keepdim=True).square() / self.group_size
        scale = torch.rsqrt(mean_square + self.eps)
        if overwrite:
            return gated.mul_(scale).flatten(-2).mul_(self.weight.float())
        return ((gated * scale).flatten(-2) * self.weight.float()).to(dtype)


#: Chunk length of the pure-PyTorch scan on a CPU. The result does not depend on it beyond rounding; 64 balances
#: the quadratic intra-chunk work (and its chunk x chunk decay matrices) against the per-chunk state updates
#: (measured on the official config: 256 -> 64 makes the scan about 1.5x faster).
CPU_CHUNK_SIZE = 64


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
        z, xbcdt = torch.split(zxbcdt, [self.d_inner, zxbcdt.shape[-1] - self.d_inner], dim=-1)
        return self.norm.gated(self.mix(xbcdt), F.silu(z.float()), overwrite=True).to(zxbcdt.dtype)

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

    def mix(self, xbcdt: torch.Tensor) -> torch.Tensor:
        """(b, l, d_inner + 2*g*n + heads) -> scan output with the D skip, before the gated norm (b, l, d_inner),
        float32, pure PyTorch."""
        g_n = self.ngroups * self.d_state
        xbc, dt = torch.split(xbcdt, [self.d_inner + 2 * g_n, self.nheads], dim=-1)
        xbc = causal_depthwise_conv1d(xbc.float(), self.conv1d.weight.float(), self.conv1d.bias.float())
        xbc = F.silu(xbc, inplace=not torch.is_grad_enabled())
        x, B, C = torch.split(xbc, [self.d_inner, g_n, g_n], dim=-1)
        x = x.unflatten(-1, (self.nheads, self.headdim))
        dt = F.softplus(dt.float() + self.dt_bias.float())
        A = -torch.exp(self.A_log.float())
        chunk = self.chunk_size if xbcdt.is_cuda else min(self.chunk_size, CPU_CHUNK_SIZE)
        y, _ = ssd_scan(x, dt, A, B.unflatten(-1, (self.ngroups, self.d_state)),
                        C.unflatten(-1, (self.ngroups, self.d_state)), chunk)
        if torch.is_grad_enabled():
            return torch.addcmul(y, x, self.D.float()[:, None]).flatten(-2)
        return y.addcmul_(x, self.D.float()[:, None]).flatten(-2)


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
        zxbcdt = linear(self.in_proj, hidden)
        forward_scan, backward_scan = self.mamba_scans
        if use_kernel is None:
            use_kernel = zxbcdt.is_cuda and _fused_kernel() is not None
        if use_kernel:
            mixed = forward_scan(zxbcdt, True) + backward_scan(zxbcdt.flip(1), True).flip(1)
            return self.out_proj(mixed)
        # The gated norm works position by position, so only the scan inputs need flipping, and both
        # directions share one gate silu(z).
        z, xbcdt = torch.split(zxbcdt, [forward_scan.d_inner, zxbcdt.shape[-1] - forward_scan.d_inner], dim=-1)
        gate = F.silu(z.float())

        def forward_direction() -> torch.Tensor:
            return forward_scan.norm.gated(forward_scan.mix(xbcdt), gate, overwrite=True)

        def backward_direction() -> torch.Tensor:
            return backward_scan.norm.gated(backward_scan.mix(xbcdt.flip(1)).flip(1), gate, overwrite=True)

        if torch.is_grad_enabled() or zxbcdt.device.type != "cpu":
            mixed, backward = forward_direction(), backward_direction()
        else:  # CPU inference: the directions side by side, each on half of the threads (see cpu_threads)
            mixed, backward = side_by_side(forward_direction, backward_direction)
        mixed = mixed.add_(backward) if not torch.is_grad_enabled() else mixed + backward
        return linear(self.out_proj, mixed.to(zxbcdt.dtype))
