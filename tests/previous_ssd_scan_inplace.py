"""The pure-PyTorch SSD scan of issue 13's first rewrite (matmul layouts, in-place decay matrix, chunk states
combined through a chunks x chunks decay matrix), kept for benchmarks and tests only: the official 6-view
forward measured 3.9 s with it, and the current scan must agree with it."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


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
