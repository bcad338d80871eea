"""The pure-PyTorch bidirectional Mamba-2 mixer as it was before issue 13's block rewrite, kept for tests and
benchmarks only: nn.Conv1d in the transposed layout, the whole projection flipped for the backward scan, a
gated norm per direction, and the given scan (by default the frozen pre-issue-13 one) at the config's chunk."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from previous_ssd_scan import ssd_scan as previous_ssd_scan

from lyra_sim.lyra.mamba2 import BidirectionalMamba2, Mamba2Scan


def _gated_norm(scan: Mamba2Scan, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    norm = scan.norm
    gated = (y.float() * F.silu(z.float())).unflatten(-1, (-1, norm.group_size))
    normed = gated * torch.rsqrt(gated.pow(2).mean(-1, keepdim=True) + norm.eps)
    return (normed.flatten(-2) * norm.weight.float()).to(y.dtype)


def previous_scan_forward(scan: Mamba2Scan, zxbcdt: torch.Tensor, ssd_scan=previous_ssd_scan) -> torch.Tensor:
    """One direction, (b, l, 2*d_inner + 2*g*n + heads) -> (b, l, d_inner)."""
    length = zxbcdt.shape[1]
    g_n = scan.ngroups * scan.d_state
    z, xbc, dt = torch.split(zxbcdt, [scan.d_inner, scan.d_inner + 2 * g_n, scan.nheads], dim=-1)
    xbc = F.silu(scan.conv1d(xbc.transpose(1, 2))[..., :length].transpose(1, 2))
    x, B, C = torch.split(xbc, [scan.d_inner, g_n, g_n], dim=-1)
    x = x.unflatten(-1, (scan.nheads, scan.headdim))
    dt = F.softplus(dt.float() + scan.dt_bias.float())
    A = -torch.exp(scan.A_log.float())
    y, _ = ssd_scan(x, dt, A, B.unflatten(-1, (scan.ngroups, scan.d_state)),
                    C.unflatten(-1, (scan.ngroups, scan.d_state)), scan.chunk_size)
    y = y.float() + x.float() * scan.D.float()[:, None]
    return _gated_norm(scan, y.flatten(-2).to(zxbcdt.dtype), z)


def previous_mixer_forward(mixer: BidirectionalMamba2, hidden: torch.Tensor,
                           ssd_scan=previous_ssd_scan) -> torch.Tensor:
    """(b, l, d_model) -> (b, l, d_model) with the mixer's own weights."""
    zxbcdt = mixer.in_proj(hidden)
    forward_scan, backward_scan = mixer.mamba_scans
    forward = previous_scan_forward(forward_scan, zxbcdt, ssd_scan)
    backward = previous_scan_forward(backward_scan, zxbcdt.flip(1), ssd_scan).flip(1)
    return mixer.out_proj(forward + backward)
