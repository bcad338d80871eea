"""Mamba-2: the chunked SSD scan against a step-by-step recurrence; bidirectional flip-and-sum semantics."""

import pytest
import torch
import torch.nn.functional as F

from lyra_sim.lyra.mamba2 import BidirectionalMamba2, Mamba2Scan, fused_kernel_available, ssd_scan


def recurrence(x, dt, A, B, C, initial_state=None):
    """h_t = exp(dt_t A) h_{t-1} + dt_t x_t B_t^T ; y_t = h_t C_t, one step at a time (float64)."""
    batch, length, heads, head_dim = x.shape
    groups, state_dim = B.shape[2:]
    x, dt, A, B, C = (t.double() for t in (x, dt, A, B, C))
    B = B.repeat_interleave(heads // groups, dim=2)
    C = C.repeat_interleave(heads // groups, dim=2)
    h = torch.zeros(batch, heads, head_dim, state_dim, dtype=torch.float64)
    if initial_state is not None:
        h = initial_state.double().clone()
    ys = []
    for t in range(length):
        decay = torch.exp(dt[:, t] * A)[:, :, None, None]
        h = decay * h + (dt[:, t, :, None, None] * x[:, t, :, :, None]) * B[:, t, :, None, :]
        ys.append((h * C[:, t, :, None, :]).sum(-1))
    return torch.stack(ys, dim=1), h


def scan_inputs(batch=2, length=45, heads=4, head_dim=3, groups=2, state=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, length, heads, head_dim, generator=g),
            torch.rand(batch, length, heads, generator=g) * 0.6,
            -torch.rand(heads, generator=g) * 3,
            torch.randn(batch, length, groups, state, generator=g),
            torch.randn(batch, length, groups, state, generator=g))


@pytest.mark.parametrize(("chunk_size", "chunks_per_step"), [(8, 1), (8, 3), (16, 16), (64, 1), (1, 4)])
def test_chunked_scan_equals_recurrence(chunk_size, chunks_per_step):
    x, dt, A, B, C = scan_inputs()
    y, state = ssd_scan(x, dt, A, B, C, chunk_size, chunks_per_step=chunks_per_step)
    y_ref, state_ref = recurrence(x, dt, A, B, C)
    torch.testing.assert_close(y.double(), y_ref, atol=2e-5, rtol=1e-5)
    torch.testing.assert_close(state.double(), state_ref, atol=2e-5, rtol=1e-5)


def test_chunked_scan_continues_from_initial_state():
    x, dt, A, B, C = scan_inputs(length=40)
    _, mid = ssd_scan(x[:, :17], dt[:, :17], A, B[:, :17], C[:, :17], 8)
    y_second, _ = ssd_scan(x[:, 17:], dt[:, 17:], A, B[:, 17:], C[:, 17:], 8, initial_state=mid)
    y_ref, _ = recurrence(x, dt, A, B, C)
    torch.testing.assert_close(y_second.double(), y_ref[:, 17:], atol=2e-5, rtol=1e-5)


def reference_scan_module(scan: Mamba2Scan, zxbcdt: torch.Tensor) -> torch.Tensor:
    """Mamba2Scan.forward written out step by step: causal conv by explicit taps, recurrence, D, gated norm."""
    d_inner, g_n, heads = scan.d_inner, scan.ngroups * scan.d_state, scan.nheads
    z, xbc, dt = torch.split(zxbcdt.double(), [d_inner, d_inner + 2 * g_n, heads], dim=-1)
    weight = scan.conv1d.weight.double()[:, 0]  # (channels, taps); tap k multiplies x[t - (taps-1-k)]
    taps = weight.shape[1]
    conv = torch.zeros_like(xbc) + scan.conv1d.bias.double()
    for k in range(taps):
        shift = taps - 1 - k
        shifted = F.pad(xbc, (0, 0, shift, 0))[:, : xbc.shape[1]]
        conv = conv + shifted * weight[:, k]
    xbc = F.silu(conv)
    x, B, C = torch.split(xbc, [d_inner, g_n, g_n], dim=-1)
    x = x.unflatten(-1, (heads, scan.headdim))
    dt = F.softplus(dt + scan.dt_bias.double())
    A = -torch.exp(scan.A_log.double())
    y, _ = recurrence(x, dt, A, B.unflatten(-1, (scan.ngroups, scan.d_state)),
                      C.unflatten(-1, (scan.ngroups, scan.d_state)))
    y = (y + x * scan.D.double()[:, None]).flatten(-2)
    gated = y * F.silu(z)
    return gated * torch.rsqrt(gated.pow(2).mean(-1, keepdim=True) + scan.norm.eps) * scan.norm.weight.double()


def test_scan_module_equals_step_by_step_reference():
    torch.manual_seed(1)
    scan = Mamba2Scan(d_inner=32, d_state=8, headdim=8, chunk_size=16)
    with torch.no_grad():
        scan.norm.weight.uniform_(0.5, 1.5)
    zxbcdt = torch.randn(2, 50, 2 * 32 + 2 * 8 + 4)
    with torch.no_grad():
        out = scan(zxbcdt, use_kernel=False)
    torch.testing.assert_close(out.double(), reference_scan_module(scan, zxbcdt), atol=1e-4, rtol=1e-4)


def _mixer(seed=0):
    torch.manual_seed(seed)
    return BidirectionalMamba2(d_model=16, d_state=8, headdim=8, chunk_size=8).eval()


def _response_positions(mixer, length=24, k=11):
    """Positions whose output changes when only input position k changes."""
    x = torch.randn(1, length, 16)
    x2 = x.clone()
    x2[0, k] += 1.0
    with torch.no_grad():
        delta = (mixer(x2) - mixer(x)).abs().amax(-1)[0]
    return set(torch.nonzero(delta > 1e-6).flatten().tolist())


def test_forward_scan_is_causal_and_backward_scan_anticausal():
    k, length = 11, 24
    forward_only, backward_only = _mixer(), _mixer()
    with torch.no_grad():
        forward_only.mamba_scans[1].norm.weight.zero_()  # silence the flipped scan
        backward_only.mamba_scans[0].norm.weight.zero_()  # silence the forward scan
    assert _response_positions(forward_only, length, k) == set(range(k, length))
    assert _response_positions(backward_only, length, k) == set(range(k + 1))
    assert _response_positions(_mixer(), length, k) == set(range(length))


def test_directions_are_summed_not_averaged():
    both, forward_only, backward_only = _mixer(), _mixer(), _mixer()
    with torch.no_grad():
        forward_only.mamba_scans[1].norm.weight.zero_()
        backward_only.mamba_scans[0].norm.weight.zero_()
        x = torch.randn(2, 19, 16)
        torch.testing.assert_close(both(x), forward_only(x) + backward_only(x), atol=1e-5, rtol=1e-5)


def test_backward_scan_is_the_forward_scan_of_the_reversed_sequence():
    """Hand-built: give both scans identical parameters; reversing the input then reverses the output."""
    mixer = _mixer()
    with torch.no_grad():
        mixer.mamba_scans[1].load_state_dict(mixer.mamba_scans[0].state_dict())
        x = torch.randn(1, 21, 16)
        torch.testing.assert_close(mixer(x.flip(1)), mixer(x).flip(1), atol=1e-5, rtol=1e-5)
        zxbcdt = mixer.in_proj(x)
        expected = mixer.mamba_scans[0](zxbcdt) + mixer.mamba_scans[0](zxbcdt.flip(1)).flip(1)
        torch.testing.assert_close(mixer(x), mixer.out_proj(expected), atol=1e-5, rtol=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not fused_kernel_available(), reason="needs CUDA and mamba-ssm")
def test_fused_kernel_matches_pure_pytorch_scan():
    torch.manual_seed(0)
    mixer = BidirectionalMamba2(d_model=128, d_state=64, headdim=32, chunk_size=64).cuda().eval()
    x = torch.randn(2, 700, 128, device="cuda")
    with torch.no_grad():
        torch.testing.assert_close(mixer(x, use_kernel=True), mixer(x, use_kernel=False), atol=2e-3, rtol=2e-3)
