"""Real spherical harmonics up to degree 3, in the 3DGS / gsplat convention."""

from __future__ import annotations

import torch

C0 = 0.28209479177387814
C1 = 0.4886025119029199
C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """Basis values (..., (degree+1)^2) at unit directions (..., 3)."""
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, C0)]
    if degree >= 1:
        out += [-C1 * y, C1 * z, -C1 * x]
    if degree >= 2:
        xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
        out += [
            C2[0] * xy,
            C2[1] * yz,
            C2[2] * (2.0 * zz - xx - yy),
            C2[3] * xz,
            C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            C3[0] * y * (3 * xx - yy),
            C3[1] * xy * z,
            C3[2] * y * (4 * zz - xx - yy),
            C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            C3[4] * x * (4 * zz - xx - yy),
            C3[5] * z * (xx - yy),
            C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, dim=-1)


def rgb_to_sh0(rgb: torch.Tensor) -> torch.Tensor:
    """Plain RGB in [0,1] (N,3) -> degree-0 SH coefficients (N,1,3) that render to that RGB."""
    return ((rgb - 0.5) / C0).unsqueeze(1)


def _dc_colour(sh: torch.Tensor) -> torch.Tensor:
    return sh[:, 0, :] * C0 + 0.5


def sh0_to_rgb(sh: torch.Tensor) -> torch.Tensor:
    """View-independent base colour (N,3) of SH coefficients (N,K,3): the DC term alone, clamped to [0,1]."""
    return _dc_colour(sh).clamp(0.0, 1.0)


def eval_sh_colors(sh: torch.Tensor, dirs: torch.Tensor) -> torch.Tensor:
    """Colours (N,3) of SH coefficients (N,K,3) seen along (unnormalised) directions (N,3).

    Matches gsplat: directions are normalised, colour = SH + 0.5, clamped at 0.
    """
    degree = round(sh.shape[1] ** 0.5) - 1
    if degree == 0:
        return _dc_colour(sh).clamp_min(0.0)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(dirs, degree).to(sh.dtype)
    return ((basis.unsqueeze(-1) * sh).sum(dim=1) + 0.5).clamp_min(0.0)


def rotate_sh(sh: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Rotate SH coefficients (N,K,3) so the colour field turns with a 3x3 rotation.

    The per-band rotation matrix is solved in closed form by least squares on sample directions:
    the rotated function is f'(d) = f(R^T d), and the real SH bands are closed under rotation, so
    the fit is exact (to float64 rounding) with more samples than coefficients.
    """
    degree = round(sh.shape[1] ** 0.5) - 1
    gen = torch.Generator().manual_seed(0)
    dirs = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    rot = rotation.detach().to(torch.float64).cpu()
    basis = sh_basis(dirs, degree)
    basis_rot = sh_basis(dirs @ rot, degree)  # rows are R^T d
    mat = torch.linalg.lstsq(basis, basis_rot).solution  # (K, K): coeffs' = mat @ coeffs
    return torch.einsum("jk,nkc->njc", mat.to(sh), sh)
