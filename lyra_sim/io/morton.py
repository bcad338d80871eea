"""Morton (Z-order) sorting of Gaussian centres: neighbours in space become neighbours in the file.

Chunked and texture formats (compressed PLY's 256-Gaussian chunks, SOG's images) quantise each block
against its own bounds, so their precision depends on spatially coherent blocks.
"""

from __future__ import annotations

import numpy as np

MORTON_BITS = 10  # per axis: 30-bit codes, 1024 cells along each side of the bounding box


def morton_order(means: np.ndarray, bits: int = MORTON_BITS) -> np.ndarray:
    """Indices sorting ``means`` (N, 3) along a Morton curve over their bounding box (stable for ties)."""
    lo, hi = means.min(axis=0), means.max(axis=0)
    extent = np.where(hi > lo, hi - lo, 1.0)
    cells = np.clip(((means - lo) / extent * (1 << bits)).astype(np.int64), 0, (1 << bits) - 1)
    code = np.zeros(len(means), np.int64)
    for bit in range(bits):
        for axis in range(3):
            code |= ((cells[:, axis] >> bit) & 1) << (3 * bit + axis)
    return np.argsort(code, kind="stable")
