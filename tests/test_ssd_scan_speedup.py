"""The rewritten SSD scan (matmul layouts, in-place decay matrix) against the previous implementation."""

import pytest
import torch
from previous_ssd_scan import ssd_scan as previous_ssd_scan

from lyra_sim.generate.mamba2 import ssd_scan


@pytest.mark.parametrize(("groups", "chunk_size", "length"), [(1, 64, 300), (2, 32, 200), (1, 256, 256)])
def test_scan_matches_previous_implementation(groups, chunk_size, length):
    g = torch.Generator().manual_seed(groups + chunk_size)
    heads, head_dim, state = 8, 16, 32
    x = torch.randn(2, length, heads, head_dim, generator=g)
    dt = torch.rand(2, length, heads, generator=g) * 0.2
    A = -torch.rand(heads, generator=g) * 8 - 0.5  # strong decay: exp overflows above the diagonal
    B = torch.randn(2, length, groups, state, generator=g)
    C = torch.randn(2, length, groups, state, generator=g)
    initial = torch.randn(2, heads, head_dim, state, generator=g)
    y, final = ssd_scan(x, dt, A, B, C, chunk_size, initial_state=initial, chunks_per_step=3)
    y_prev, final_prev = previous_ssd_scan(x, dt, A, B, C, chunk_size, initial_state=initial, chunks_per_step=3)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y, y_prev, atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(final, final_prev, atol=1e-4, rtol=1e-5)
