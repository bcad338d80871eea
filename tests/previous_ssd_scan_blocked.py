"""The pure-PyTorch SSD scan as issue 13 left it (heads side by side, chunk states walked in order through a buffer
per block of chunks, state updates and read-outs as batched BLAS matmuls), kept for benchmarks and tests only: the
official 6-view forward measured 2.57 s with it, and the current scan must agree with it."""

from __future__ import annotations

import torch
import torch.nn.functional as F

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
    states between chunks. The D skip term is not included. ``chunks_per_step`` chunks share one batched
    intra-chunk computation; the result does not depend on it.

    CPU-minded layout: heads are handled as (group, head-in-group) so that B and C, shared by the heads of a
    group, are never copied per head (Lyra: one group, 16 heads). The state walks the chunks in order, so it
    (h x p x n, 1 MB for Lyra) stays in cache while each chunk reads it out (C h) and updates it
    (decay h + x_dt^T B); materialising every chunk's state costs memory traffic that dominates on a CPU.
    Inside a chunk, the decay L[i, j] = exp(cum_i - cum_j) is factorised around the chunk's midpoint m as
    exp(cum_i - m) exp(m - cum_j) when that stays within exp(+-FACTORISED_DECAY_LIMIT): the heads then share
    one masked C B^T and a chunk is one matmul with all heads side by side. Stronger decay falls back to one
    exact decay matrix per head.
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
    # The state update's input: x_dt decayed to the chunk end, (b, c, g, r*p, q), and the chunk's total decay.
    weighted = x_times(dt * torch.exp(cumulative[..., -1:] - cumulative)).view(batch, chunks, q, g, r * p)
    weighted = weighted.permute(0, 1, 3, 4, 2)
    chunk_decay = torch.exp(cumulative[..., -1]).view(batch, chunks, g, r, 1, 1).expand(-1, -1, -1, -1, p, 1)
    chunk_decay = chunk_decay.reshape(batch, chunks, g, r * p, 1)
    from_start = torch.exp(cumulative).transpose(-1, -2)[..., None]  # (b, c, g, q, r, 1)

    def per_chunk(t: torch.Tensor) -> torch.Tensor:  # (b, c, g, ...) -> (c, b*g, ...), a view for b = 1 or g = 1
        return t.transpose(0, 1).reshape(chunks, batch * g, *t.shape[3:])

    B_c, C_c, weighted, chunk_decay = (per_chunk(t) for t in (B, C, weighted, chunk_decay))
    state = state.reshape(batch * g, r * p, n)
    if not differentiable:
        entering = x.new_empty(chunks_per_step + 1, batch * g, r * p, n)
    # y is built chunk-major (c, b*g, q, r*p) and written in place at inference, where the states entering a
    # block's chunks go to one buffer so that their read-outs C h are one matmul (fewer threaded operations:
    # on a shared machine each one waits for the slower of the threads).
    y = [] if differentiable else x.new_empty(chunks, batch * g, q, r * p)
    for start in range(0, chunks, chunks_per_step):
        block = slice(start, min(start + chunks_per_step, chunks))
        scores = C[:, block] @ B[:, block].transpose(-1, -2)  # (b, c, g, q, s)
        if factorised:
            scores = scores.tril() if differentiable else scores.tril_()
            within = (scores @ within_input[:, block]).view(batch, -1, g, q, r, p)
        else:
            within = _within_chunks_per_head(within_input[:, block], cumulative[:, block], scores, differentiable)
        if differentiable:
            from_state = []
            for i in range(block.start, block.stop):
                from_state.append(C_c[i] @ state.transpose(-1, -2))
                state = torch.baddbmm(state * chunk_decay[i], weighted[i], B_c[i])
        else:  # the states entering the block's chunks, then all their read-outs in one matmul
            entering[0].copy_(state)
            for k, i in enumerate(range(block.start, block.stop)):
                torch.mul(entering[k], chunk_decay[i], out=entering[k + 1]).baddbmm_(weighted[i], B_c[i])
            size = block.stop - block.start
            from_state = y[block]
            torch.matmul(C_c[block], entering[:size].transpose(-1, -2), out=from_state)
            state = entering[size]
        # y = the state's read-out decayed from the chunk start + the intra-chunk part.
        if differentiable:
            from_state = torch.stack(from_state).view(-1, batch, g, q, r, p).transpose(0, 1) * from_start[:, block]
            y.append(from_state + (within * from_middle[:, block] if factorised else within))
        else:
            from_state = from_state.view(-1, batch, g, q, r, p).transpose(0, 1).mul_(from_start[:, block])
            if factorised:
                from_state.addcmul_(within, from_middle[:, block])
            else:
                from_state.add_(within)
    y = torch.cat(y, dim=1) if differentiable else y.view(chunks, batch, g, q, r, p).transpose(0, 1)
    y = y.permute(0, 1, 3, 2, 4, 5).reshape(batch, chunks * q, heads, p)[:, :length]
    state = state.reshape(batch, heads, p, n)
    return y.to(out_dtype), state if differentiable else state.clone()  # not a view into the state buffer


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
