"""The scan's inference and training paths, and its factorised and per-head intra-chunk decay, each against the
frozen previous implementations (values and gradients)."""

import pytest
import torch
from previous_ssd_scan import ssd_scan as previous_ssd_scan
from previous_ssd_scan_inplace import ssd_scan as previous_inplace_scan

from lyra_sim.lyra import mamba2
from lyra_sim.lyra.mamba2 import ssd_scan


@pytest.mark.parametrize("inference", [True, False])  # in-place buffers vs the autograd-safe path
@pytest.mark.parametrize(("groups", "chunk_size", "length"), [(1, 64, 300), (2, 32, 200), (1, 256, 256)])
def test_scan_matches_previous_implementations_in_both_grad_modes(groups, chunk_size, length, inference):
    g = torch.Generator().manual_seed(groups + chunk_size)
    heads, head_dim, state = 8, 16, 32
    x = torch.randn(2, length, heads, head_dim, generator=g)
    dt = torch.rand(2, length, heads, generator=g) * 0.2
    A = -torch.rand(heads, generator=g) * 8 - 0.5  # strong decay: exp overflows above the diagonal
    B = torch.randn(2, length, groups, state, generator=g)
    C = torch.randn(2, length, groups, state, generator=g)
    initial = torch.randn(2, heads, head_dim, state, generator=g)
    with torch.inference_mode(inference):
        y, final = ssd_scan(x, dt, A, B, C, chunk_size, initial_state=initial, chunks_per_step=3)
    assert torch.isfinite(y).all()
    for previous in (previous_ssd_scan, previous_inplace_scan):
        y_prev, final_prev = previous(x, dt, A, B, C, chunk_size, initial_state=initial, chunks_per_step=3)
        torch.testing.assert_close(y, y_prev, atol=1e-4, rtol=1e-5)
        torch.testing.assert_close(final, final_prev, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("decay_limit", [mamba2.FACTORISED_DECAY_LIMIT, -1.0])  # factorised / per-head decay
@pytest.mark.parametrize("inference", [True, False])
def test_both_intra_chunk_paths_match_previous_implementation(decay_limit, inference, monkeypatch):
    monkeypatch.setattr(mamba2, "FACTORISED_DECAY_LIMIT", decay_limit)
    g = torch.Generator().manual_seed(3)
    heads, head_dim, state, length = 6, 8, 16, 230
    x = torch.randn(2, length, heads, head_dim, generator=g)
    dt = torch.rand(2, length, heads, generator=g) * 0.3
    A = -torch.rand(heads, generator=g) * 4 - 0.5  # at most 32 x 0.3 x 4.5 = 43 from a 64-chunk's midpoint
    B, C = torch.randn(2, length, 2, state, generator=g), torch.randn(2, length, 2, state, generator=g)
    with torch.inference_mode(inference):
        y, final = ssd_scan(x, dt, A, B, C, 64, chunks_per_step=3)
    y_prev, final_prev = previous_ssd_scan(x, dt, A, B, C, 64)
    torch.testing.assert_close(y, y_prev, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(final, final_prev, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("decay_limit", [mamba2.FACTORISED_DECAY_LIMIT, -1.0])
def test_scan_gradients_match_previous_implementation(decay_limit, monkeypatch):
    """Training takes the out-of-place path (masked exp, functional state updates): its gradients must agree."""
    monkeypatch.setattr(mamba2, "FACTORISED_DECAY_LIMIT", decay_limit)
    g = torch.Generator().manual_seed(7)
    heads, head_dim, state, length = 4, 8, 16, 150
    inputs = [torch.randn(2, length, heads, head_dim, generator=g),
              torch.rand(2, length, heads, generator=g) * 0.5,
              -torch.rand(heads, generator=g) * 4 - 0.5,
              torch.randn(2, length, 1, state, generator=g),
              torch.randn(2, length, 1, state, generator=g),
              torch.randn(2, heads, head_dim, state, generator=g)]
    weights = torch.randn(2, length, heads, head_dim, generator=g)
    grads = []
    for scan, chunk in ((ssd_scan, 32), (previous_ssd_scan, 64)):
        leaves = [t.clone().requires_grad_() for t in inputs]
        y, final = scan(*leaves[:5], chunk, initial_state=leaves[5], chunks_per_step=2)
        ((y * weights).sum() + final.sum()).backward()
        grads.append([leaf.grad for leaf in leaves])
    for new, old in zip(*grads, strict=True):
        torch.testing.assert_close(new, old, atol=2e-4, rtol=1e-4)
