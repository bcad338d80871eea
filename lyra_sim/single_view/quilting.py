"""Image quilting (Efros and Freeman, SIGGRAPH 2001): a texture of any size stitched from blocks of a sample.

Each block of the output is a block of the sample that agrees with what is already placed in the overlap
(sum of squared differences, chosen at random among those within ``tolerance`` of the best), and it is cut
into its neighbours along the minimum-error boundary (dynamic programming), so seams run where the two
blocks agree. Written here in numpy because no installed, well-kept library does patch-based synthesis:
opencv-contrib's ``xphoto`` is not installed (and would replace opencv-python-headless), scikit-image has
only diffusion / biharmonic inpainting. OpenCV's masked template matching scores every block position.
"""

from __future__ import annotations

import numpy as np


def min_error_cut(cost: np.ndarray) -> np.ndarray:
    """For an overlap's error surface ``cost`` (rows, cols), the mask (rows, cols) of the pixels right of the
    vertical path of least total cost (one column per row, moving at most one column between rows):
    those take the new block, the rest keep the old one."""
    rows, cols = cost.shape
    total = cost.astype(np.float64).copy()
    for i in range(1, rows):
        left = np.concatenate([[np.inf], total[i - 1, :-1]])
        right = np.concatenate([total[i - 1, 1:], [np.inf]])
        total[i] += np.minimum(np.minimum(left, total[i - 1]), right)
    path = np.empty(rows, np.int64)
    path[-1] = int(np.argmin(total[-1]))
    for i in range(rows - 2, -1, -1):
        j = path[i + 1]
        lo, hi = max(j - 1, 0), min(j + 2, cols)
        path[i] = lo + int(np.argmin(total[i, lo:hi]))
    return np.arange(cols)[None, :] >= path[:, None]


def quilt(sample: np.ndarray, shape: tuple[int, int], block: int, overlap: int, rng: np.random.Generator,
          tolerance: float = 0.1) -> np.ndarray:
    """A texture (H, W, C) of ``shape`` (H, W) quilted from ``sample`` (h, w, C) in ``block``-pixel blocks that
    overlap by ``overlap`` pixels (Efros-Freeman; ``tolerance``: blocks within (1 + tolerance) of the best
    overlap error are equally likely)."""
    sample = np.asarray(sample, np.float32)
    if sample.ndim != 3 or min(sample.shape[:2]) < block or not 0 < overlap < block:
        raise ValueError(f"quilt: need a (h, w, C) sample of at least {block} pixels a side and 0 < overlap < "
                         f"block, got sample {sample.shape}, block {block}, overlap {overlap}")
    import cv2  # here, not at the top: `import lyra_sim` must not load cv2

    step = block - overlap
    ny = max(1, int(np.ceil((shape[0] - overlap) / step)))
    nx = max(1, int(np.ceil((shape[1] - overlap) / step)))
    out = np.zeros((ny * step + overlap, nx * step + overlap, sample.shape[2]), np.float32)
    limit = np.array(sample.shape[:2]) - block + 1  # block positions in the sample
    for by in range(ny):
        for bx in range(nx):
            y, x = by * step, bx * step
            placed = np.zeros((block, block), np.float32)
            if bx:
                placed[:, :overlap] = 1.0
            if by:
                placed[:overlap, :] = 1.0
            target = out[y : y + block, x : x + block]
            if not placed.any():
                sy, sx = rng.integers(limit[0]), rng.integers(limit[1])
            else:  # the overlap error of every block position at once (OpenCV's masked template matching)
                errors = cv2.matchTemplate(sample, np.ascontiguousarray(target), cv2.TM_SQDIFF,
                                           mask=np.repeat(placed[..., None], sample.shape[2], axis=-1))
                errors = np.nan_to_num(np.maximum(errors, 0.0), nan=np.inf)
                good = np.flatnonzero(errors <= errors.min() * (1.0 + tolerance) + 1e-6)
                sy, sx = np.unravel_index(good[rng.integers(len(good))], errors.shape)
            choice = sample[sy : sy + block, sx : sx + block]
            new = np.ones((block, block), bool)
            difference = ((choice - target) ** 2).sum(axis=-1)
            if bx:
                new[:, :overlap] &= min_error_cut(difference[:, :overlap])
            if by:
                new[:overlap, :] &= min_error_cut(difference[:overlap, :].T).T
            out[y : y + block, x : x + block] = np.where(new[..., None], choice, target)
    return out[: shape[0], : shape[1]]
