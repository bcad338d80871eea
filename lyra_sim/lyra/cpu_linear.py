"""``nn.Linear`` and ``a @ b.T`` at float32 CPU inference through oneDNN instead of the default BLAS.

On the AMD CPU the decoder was tuned on, oneDNN's float32 matmul runs the decoder's projections 12-25 % faster
than MKL's sgemm (which does not pick its fastest kernels on non-Intel CPUs), and the SSD scan's small per-chunk
products (64 x 256 by 256 x 1024, 1024 x 64 by 64 x 256) about twice as fast. The result is the same float32
product up to summation order. Training, other dtypes and other devices use torch's own operators.
"""

from __future__ import annotations

from functools import cache

import torch
from torch import nn


@cache
def _onednn_linear():
    """torch's oneDNN linear operator, or None where this build has none."""
    if not torch.backends.mkldnn.is_available():
        return None
    return getattr(torch.ops.mkldnn, "_linear_pointwise", None)


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    return (_onednn_linear() is not None and not torch.is_grad_enabled() and x.device.type == "cpu"
            and x.dtype == torch.float32 and weight.dtype == torch.float32)


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)``, through oneDNN when no gradient is recorded and x is a float32 CPU tensor."""
    if not _use_onednn(x, layer.weight):
        return layer(x)
    return _onednn_linear()(x, layer.weight, layer.bias, "none", [], "")


def matmul_transposed(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b.T`` for a 2-D ``b`` (n, k) and ``a`` (..., k), through oneDNN under the same conditions as ``linear``."""
    if not _use_onednn(a, b):
        return a @ b.T
    return _onednn_linear()(a, b, None, "none", [], "")
