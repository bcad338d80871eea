"""Issue 13's mixer rewrite (shifted multiply-add conv1d, shared gate, CPU chunk length, in-place inference path)
against the frozen previous mixer, in inference and in training (gradients)."""

import pytest
import torch
from previous_mamba2_mixer import previous_mixer_forward
from previous_ssd_scan import ssd_scan as previous_ssd_scan
from previous_ssd_scan_inplace import ssd_scan as previous_inplace_scan

from lyra_sim.lyra.mamba2 import CPU_CHUNK_SIZE, BidirectionalMamba2, causal_depthwise_conv1d


@pytest.mark.parametrize("inference", [True, False])  # blocks of rows vs whole-sequence passes
@pytest.mark.parametrize(("taps", "length", "rows"), [(4, 50, 7), (4, 50, 256), (4, 2, 1), (3, 1, 4), (1, 7, 3)])
def test_shifted_conv_equals_conv1d(taps, length, rows, inference):
    torch.manual_seed(taps + length)
    conv = torch.nn.Conv1d(12, 12, taps, groups=12, padding=taps - 1)
    x = torch.randn(3, length, 12)
    with torch.no_grad():
        expected = conv(x.transpose(1, 2))[..., :length].transpose(1, 2)
    with torch.inference_mode(inference):
        with_bias = causal_depthwise_conv1d(x, conv.weight, conv.bias, rows)
        without_bias = causal_depthwise_conv1d(x, conv.weight, None, rows)
    torch.testing.assert_close(with_bias, expected, atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(without_bias, expected - conv.bias, atol=1e-6, rtol=1e-6)


def _mixer(d_model, d_state, headdim, chunk_size, ngroups=1, seed=0):
    torch.manual_seed(seed)
    mixer = BidirectionalMamba2(d_model, d_state, headdim, ngroups=ngroups, chunk_size=chunk_size)
    with torch.no_grad():  # non-trivial norm weights and D, so that a swapped direction would show
        for scan in mixer.mamba_scans:
            scan.norm.weight.uniform_(0.5, 1.5)
            scan.D.uniform_(-1, 1)
    return mixer


@pytest.mark.parametrize(("d_model", "d_state", "headdim", "ngroups", "chunk_size", "length"),
                         [(512, 256, 64, 1, 256, 300),  # Lyra's width: the CPU chunk replaces 256
                          (32, 8, 8, 2, 16, 70)])
@pytest.mark.parametrize("previous_scan", [previous_ssd_scan, previous_inplace_scan])
def test_mixer_inference_matches_previous_implementation(d_model, d_state, headdim, ngroups, chunk_size, length,
                                                         previous_scan):
    mixer = _mixer(d_model, d_state, headdim, chunk_size, ngroups).eval()
    hidden = torch.randn(2, length, d_model)
    with torch.inference_mode():
        expected = previous_mixer_forward(mixer, hidden, previous_scan)
        out = mixer(hidden, use_kernel=False)
    assert CPU_CHUNK_SIZE < 256
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=1e-4)


def test_mixer_gradients_match_previous_implementation():
    mixer = _mixer(32, 8, 8, 16, ngroups=2)
    hidden = torch.randn(2, 70, 32)
    weights = torch.randn(2, 70, 32)
    grads = []
    for forward in (lambda h: mixer(h, use_kernel=False), lambda h: previous_mixer_forward(mixer, h)):
        mixer.zero_grad()
        leaf = hidden.clone().requires_grad_()
        (forward(leaf) * weights).sum().backward()
        grads.append([leaf.grad] + [p.grad.clone() for p in mixer.parameters()])
    for new, old in zip(*grads, strict=True):
        torch.testing.assert_close(new, old, atol=1e-4, rtol=1e-4)
