"""Quaternion helpers (real-first w, x, y, z), batched over leading axes."""

from __future__ import annotations

import torch


def quat_to_rotmat(q: torch.Tensor) -> torch.Tensor:
    """Unit-normalised quaternions (..., 4) -> rotation matrices (..., 3, 3)."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return torch.stack(rows, dim=-1).reshape(*q.shape[:-1], 3, 3)


def quat_multiply(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Hamilton product a * b (rotation b first, then a)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        dim=-1,
    )


def rotmat_to_quat(r: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) -> unit quaternions (..., 4) with w >= 0 (Shepperd's method)."""
    m = r.reshape(-1, 3, 3)
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    diag = torch.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], dim=-1)
    choice = diag.argmax(dim=-1)
    q = torch.empty(m.shape[0], 4, dtype=m.dtype, device=m.device)
    for case in range(4):
        sel = choice == case
        if not sel.any():
            continue
        s = m[sel]
        if case == 0:
            t = 1 + trace[sel]
            vals = [t, s[:, 2, 1] - s[:, 1, 2], s[:, 0, 2] - s[:, 2, 0], s[:, 1, 0] - s[:, 0, 1]]
        elif case == 1:
            t = 1 + s[:, 0, 0] - s[:, 1, 1] - s[:, 2, 2]
            vals = [s[:, 2, 1] - s[:, 1, 2], t, s[:, 0, 1] + s[:, 1, 0], s[:, 0, 2] + s[:, 2, 0]]
        elif case == 2:
            t = 1 - s[:, 0, 0] + s[:, 1, 1] - s[:, 2, 2]
            vals = [s[:, 0, 2] - s[:, 2, 0], s[:, 0, 1] + s[:, 1, 0], t, s[:, 1, 2] + s[:, 2, 1]]
        else:
            t = 1 - s[:, 0, 0] - s[:, 1, 1] + s[:, 2, 2]
            vals = [s[:, 1, 0] - s[:, 0, 1], s[:, 0, 2] + s[:, 2, 0], s[:, 1, 2] + s[:, 2, 1], t]
        q[sel] = torch.stack(vals, dim=-1) * (0.5 / t.sqrt()).unsqueeze(-1)
    q = q * torch.where(q[:, :1] < 0, -1.0, 1.0)
    return q.reshape(*r.shape[:-2], 4)
