"""Periodic plane textures (floor tiles, checkers, parquet): the seen texture's 2D lattice, found from its
masked autocorrelation, and the mean colour at each phase of that lattice, so that unseen parts of the plane,
under objects and beyond the image, continue the pattern in phase.

The autocorrelation of a partly seen grid is normalised per lag by how many seen pairs it overlaps (the
masked correlation of Padfield, "Masked object registration in the Fourier domain", 2012), computed with
scipy's FFT. A lattice is accepted only when it explains most of the seen texture's variance; otherwise
``find_lattice`` returns None and the caller synthesises the texture another way (quilting).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import fft, ndimage

SEARCH_CELLS = 128  # the lattice is searched on the grid averaged down to at most this many cells a side
MIN_OVERLAP = 0.08  # a lag counts when at least this share of the seen cells overlap their shifted copy
PEAK_CORRELATION = 0.5  # a lattice vector's normalised correlation
MIN_EXPLAINED = 0.2  # share of the seen texture's variance the periodic model must predict across periods
MIN_PERIOD_CELLS = 3.0  # shorter periods are noise or the cell grid itself
MAX_HARMONIC = 6  # multiples of a lattice vector used to refine it
MAX_CANDIDATES = 6  # the shortest correlation peaks tried as lattice vectors
PHASE_BINS = 1.0  # phase bins per grid cell along a lattice vector (2 blurred the benchmark's checker: noisier) ...
MAX_PHASE_BINS = 128  # ... up to this many
OUTLIER_MIN = 0.08  # a seen cell this far (RGB distance) from its phase's mean colour may be an outlier ...
OUTLIER_FACTOR = 3.0  # ... when it is also this many times the median distance
AREA_SLACK = 0.05  # a lattice cell may explain this much less variance than the best and still win by being smaller


@dataclass(frozen=True)
class Lattice:
    """Two lattice vectors (rows of ``basis``, in grid cells) and the mean colour at each phase (``cell``,
    (n_a, n_b, C): phase (i / n_a, j / n_b) of the lattice)."""

    basis: np.ndarray  # (2, 2)
    cell: np.ndarray  # (n_a, n_b, C)
    explained: float  # share of the seen texture's variance the model explains

    def phase_bins(self, positions: np.ndarray) -> np.ndarray:
        """(M, 2) integer phase bins of grid positions (M, 2) (in cells, fractional allowed)."""
        fractions = np.mod(positions @ np.linalg.inv(self.basis), 1.0)
        shape = np.array(self.cell.shape[:2])
        return np.minimum((fractions * shape).astype(np.int64), shape - 1)

    def colors_at(self, positions: np.ndarray) -> np.ndarray:
        """Colours (M, C) of the periodic texture at grid positions (M, 2)."""
        bins = self.phase_bins(positions)
        return self.cell[bins[:, 0], bins[:, 1]]


def masked_autocorrelation(values: np.ndarray, seen: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation (2H-1, 2W-1) of ``values`` (H, W) with itself at every lag over the ``seen`` (H, W)
    cells that overlap, and the number of overlapping seen pairs at each lag; lag (0, 0) at the centre."""
    h, w = values.shape
    shape = (2 * h - 1, 2 * w - 1)
    m = seen.astype(np.float64)
    x = np.where(seen, values, 0.0).astype(np.float64)

    def corr(a, b):  # sum over cells of a[p] * b[p + lag], for every lag
        out = fft.irfft2(np.conj(fft.rfft2(a, shape)) * fft.rfft2(b, shape), shape)
        return fft.fftshift(out)

    count = corr(m, m)
    with np.errstate(divide="ignore", invalid="ignore"):
        n = np.maximum(count, 1.0)
        mean_a, mean_b = corr(x, m) / n, corr(m, x) / n
        cov = corr(x, x) / n - mean_a * mean_b
        var_a = np.maximum(corr(x * x, m) / n - mean_a**2, 0.0)
        var_b = np.maximum(corr(m, x * x) / n - mean_b**2, 0.0)
        r = cov / np.sqrt(var_a * var_b)
    return np.clip(np.nan_to_num(r), -1.0, 1.0), np.rint(count)


def _refine(r: np.ndarray, centre: np.ndarray, vector: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``vector`` refined from the correlation peaks near its multiples (least squares over k * v = peak_k)."""
    ks, peaks = [], []
    for k in range(1, MAX_HARMONIC + 1):
        guess = np.rint(centre + k * vector).astype(int)
        lo, hi = guess - 2, guess + 3
        if (lo < 0).any() or (hi > np.array(r.shape)).any() or not valid[tuple(guess)]:
            break
        window = r[lo[0] : hi[0], lo[1] : hi[1]]
        best = np.unravel_index(int(np.argmax(window)), window.shape)
        peak = lo + np.array(best)
        if r[tuple(peak)] < PEAK_CORRELATION or (peak - lo == 0).any() or (hi - 1 - peak == 0).any():
            break
        offset = np.zeros(2)
        for axis in range(2):  # parabola through the peak and its two neighbours along each axis
            step = np.eye(2, dtype=int)[axis]
            left, mid, right = r[tuple(peak - step)], r[tuple(peak)], r[tuple(peak + step)]
            denom = left - 2 * mid + right
            offset[axis] = 0.5 * (left - right) / denom if denom < 0 else 0.0
        ks.append(k)
        peaks.append(peak + np.clip(offset, -0.5, 0.5) - centre)
    if not ks:
        return vector
    ks_arr = np.array(ks, np.float64)
    return (ks_arr[:, None] * np.array(peaks)).sum(axis=0) / (ks_arr**2).sum()


def _phase_shape(basis: np.ndarray, per_cell: float = PHASE_BINS) -> np.ndarray:
    """Phase bins along each lattice vector: ``per_cell`` per grid cell of its length, at most MAX_PHASE_BINS."""
    return np.clip(np.rint(per_cell * np.linalg.norm(basis, axis=1)), 2, MAX_PHASE_BINS).astype(int)


def _mean_by_phase(colours: np.ndarray, bins: np.ndarray, shape: np.ndarray) -> np.ndarray:
    """Mean colour (n_a, n_b, C) of ``colours`` (M, C) per phase bin (M, 2); a bin without samples takes its
    nearest filled bin's (cyclically: the cell tiles the plane)."""
    flat = bins[:, 0] * shape[1] + bins[:, 1]
    counts = np.bincount(flat, minlength=shape[0] * shape[1]).astype(np.float64)
    sums = np.stack([np.bincount(flat, colours[:, c], shape[0] * shape[1]) for c in range(colours.shape[1])], -1)
    filled = counts > 0
    cell = np.zeros((shape[0] * shape[1], colours.shape[1]))
    cell[filled] = sums[filled] / counts[filled, None]
    cell = cell.reshape(*shape, -1)
    if not filled.all():
        _, (iy, ix) = ndimage.distance_transform_edt(np.tile(~filled.reshape(shape), (3, 3)), return_indices=True)
        cell = np.tile(cell, (3, 3, 1))[iy, ix][shape[0] : 2 * shape[0], shape[1] : 2 * shape[1]]
    return cell


def _phase_cell(grid: np.ndarray, seen: np.ndarray, basis: np.ndarray) -> tuple[np.ndarray, float]:
    """Mean colour per phase bin of ``basis`` over the seen cells, and the share of the seen variance that the
    periodic model predicts across periods: each lattice cell's colours are predicted from the cells of the
    other parity (a checkerboard split of the periods), so a model that only memorises the seen texture
    (a cell as large as the seen region) explains nothing."""
    shape = _phase_shape(basis)
    positions = np.argwhere(seen).astype(np.float64)
    colours = grid[seen].astype(np.float64)
    lattice_coords = positions @ np.linalg.inv(basis)
    bins = np.minimum((np.mod(lattice_coords, 1.0) * shape).astype(np.int64), shape - 1)
    parity = np.floor(lattice_coords).astype(np.int64).sum(axis=1) % 2 == 0
    error = 0.0
    for half in (parity, ~parity):
        if not half.any() or half.all():
            return _mean_by_phase(colours, bins, shape).astype(np.float32), 0.0
        cell = _mean_by_phase(colours[half], bins[half], shape)
        test = ~half
        error += float(((colours[test] - cell[bins[test, 0], bins[test, 1]]) ** 2).sum())
    total = float(((colours - colours.mean(axis=0)) ** 2).sum())
    explained = 1.0 - error / total if total > 0 else 0.0
    return _mean_by_phase(colours, bins, shape).astype(np.float32), explained


def _downsample(values: np.ndarray, seen: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (H, W) averaged over the seen cells of ``factor`` x ``factor`` blocks, and which blocks had any."""
    if factor == 1:
        return values, seen
    h, w = -(-values.shape[0] // factor) * factor, -(-values.shape[1] // factor) * factor
    pad = ((0, h - values.shape[0]), (0, w - values.shape[1]))
    weights = np.pad(seen, pad).astype(np.float64).reshape(h // factor, factor, w // factor, factor).sum((1, 3))
    sums = np.pad(np.where(seen, values, 0.0), pad).reshape(h // factor, factor, w // factor, factor).sum((1, 3))
    return sums / np.maximum(weights, 1.0), weights > 0


def find_lattice(grid: np.ndarray, seen: np.ndarray) -> Lattice | None:
    """The lattice of a periodic texture ``grid`` (H, W, C) seen at ``seen`` (H, W), or None when the seen
    texture is not periodic (no two independent correlation peaks, or the periodic model explains less than
    MIN_EXPLAINED of its variance)."""
    if seen.sum() < 64:
        return None
    grey = grid.mean(axis=-1)
    if float(grey[seen].std()) < 1e-3:
        return None  # flat colour: nothing periodic to continue
    factor = max(1, int(np.ceil(max(seen.shape) / SEARCH_CELLS)))
    coarse_grey, coarse_seen = _downsample(grey, seen, factor)
    r, count = masked_autocorrelation(coarse_grey, coarse_seen)
    centre = np.array(r.shape) // 2
    valid = count >= MIN_OVERLAP * coarse_seen.sum()
    high = valid & (r > PEAK_CORRELATION)
    labels, count_labels = ndimage.label(high)
    if count_labels < 2:
        return None
    # One peak per connected region of high correlation; the region around lag 0 is no period.
    peaks = np.array(ndimage.maximum_position(r, labels, np.arange(1, count_labels + 1)), np.int64)
    peaks = peaks[labels[tuple(peaks.T)] != labels[tuple(centre)]] - centre
    peaks = peaks[np.linalg.norm(peaks, axis=1) >= MIN_PERIOD_CELLS / factor].astype(np.float64)
    if len(peaks) < 2:
        return None
    peaks = peaks[np.argsort(np.linalg.norm(peaks, axis=1))][:MAX_CANDIDATES]
    peaks = np.array([_refine(r, centre, peak, valid) for peak in peaks])
    # Any two peaks at least 30 deg apart span a lattice; a multiple of the true one explains the seen texture as
    # well (more phases), so the smallest cell whose fit is within AREA_SLACK of the best fit wins.
    fits = []
    for i, first in enumerate(peaks):
        for second in peaks[i + 1 :]:
            cross = abs(first[0] * second[1] - first[1] * second[0])
            if cross > 0.5 * np.linalg.norm(first) * np.linalg.norm(second):
                fits.append((_phase_cell(coarse_grey[..., None], coarse_seen, np.stack([first, second]))[1], cross,
                             first, second))
    if not fits:
        return None
    best = max(fit[0] for fit in fits)
    explained, _, first, second = min((fit for fit in fits if fit[0] >= best - AREA_SLACK), key=lambda fit: fit[1])
    if explained < MIN_EXPLAINED:
        return None
    basis = factor * np.stack([first, second])
    shape = _phase_shape(basis)
    positions = np.argwhere(seen).astype(np.float64)
    bins = np.minimum((np.mod(positions @ np.linalg.inv(basis), 1.0) * shape).astype(np.int64), shape - 1)
    colours = grid[seen].astype(np.float64)
    cell = _mean_by_phase(colours, bins, shape)
    # Seen cells that are no floor (the foot of an object within the floor band) would print specks of the object
    # in every period: cells far from their phase's mean are left out and the means taken again.
    residual = np.linalg.norm(colours - cell[bins[:, 0], bins[:, 1]], axis=1)
    inliers = residual <= max(OUTLIER_MIN, OUTLIER_FACTOR * float(np.median(residual)))
    cell = _mean_by_phase(colours[inliers], bins[inliers], shape)
    return Lattice(basis, cell.astype(np.float32), explained)
