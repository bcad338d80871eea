"""Floaters: Gaussians that belong to no surface (isolated specks, huge blobs, faint haze).

Worlds trained elsewhere (a Lyra PLY, a Marble SPZ) carry such Gaussians; rendered for a collider they
would become walls in mid-air. ``find_floaters`` marks them so the collider leaves them out; the world
itself keeps them (they may still look right from the input camera).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from lyra_sim.world import GaussianWorld

#: A Gaussian less opaque than this is haze, not a surface.
FAINT_OPACITY = 0.05
#: Huge: the largest axis exceeds HUGE_FACTOR times the world's median largest axis AND HUGE_EXTENT of the
#: scene's extent (2-98 % quantiles of the centres).
HUGE_FACTOR = 20.0
HUGE_EXTENT = 0.05
#: Isolated: fewer than NEIGHBOURS other Gaussians within max(ISOLATION * median spacing, SCALE_REACH * own
#: largest axis), the median spacing being the median distance to the NEIGHBOURS-th neighbour.
NEIGHBOURS = 4
ISOLATION = 8.0
SCALE_REACH = 3.0
SPACING_SAMPLE = 20_000  # Gaussians whose neighbour distances estimate the median spacing


@dataclass
class FloaterReport:
    """Which Gaussians are floaters (``mask``) and why: a Gaussian counts under its first reason
    (faint, then huge, then isolated)."""

    mask: np.ndarray  # (N,) bool, True = floater
    faint: int
    huge: int
    isolated: int

    @property
    def dropped(self) -> int:
        return int(self.mask.sum())

    def as_dict(self) -> dict:
        return {"dropped": self.dropped, "faint": self.faint, "huge": self.huge, "isolated": self.isolated,
                "of": len(self.mask)}

    def as_line(self) -> str:
        return (f"floaters: {self.dropped} of {len(self.mask)} Gaussians kept out of the collider "
                f"({self.faint} faint, {self.huge} huge, {self.isolated} isolated)")


def find_floaters(world: GaussianWorld, faint_opacity: float = FAINT_OPACITY, huge_factor: float = HUGE_FACTOR,
                  isolation: float = ISOLATION, seed: int = 0) -> FloaterReport:
    """Mark the faint, huge and isolated Gaussians of ``world`` (the world is not changed)."""
    n = len(world)
    if n == 0:
        return FloaterReport(np.zeros(0, bool), 0, 0, 0)
    means = world.means.detach().cpu().numpy().astype(np.float32)
    largest = world.scales.detach().cpu().numpy().max(axis=1)
    opacity = world.opacities.detach().cpu().numpy()
    faint = opacity < faint_opacity
    lo, hi = np.quantile(means, [0.02, 0.98], axis=0)
    extent = float((hi - lo).max())
    huge = ~faint & (largest > max(huge_factor * float(np.median(largest)), HUGE_EXTENT * extent))
    candidates = np.flatnonzero(~faint & ~huge)
    isolated = np.zeros(n, bool)
    if len(candidates) > NEIGHBOURS:
        isolated[candidates[_isolated(means[candidates], largest[candidates], isolation, seed)]] = True
    mask = faint | huge | isolated
    return FloaterReport(mask, int(faint.sum()), int(huge.sum()), int(isolated.sum()))


def _isolated(points: np.ndarray, largest: np.ndarray, isolation: float, seed: int) -> np.ndarray:
    """(M,) bool: fewer than NEIGHBOURS other points within max(isolation * median spacing, SCALE_REACH * largest).

    A k-d tree query for every point costs ~10 us each (20 s for 2M on this machine), so a voxel grid decides
    most points first: with voxels of side reach / sqrt(3), any two points sharing a voxel lie within the
    reach, so a voxel holding more than NEIGHBOURS points clears all of them. Only points in sparser voxels
    are asked of the tree.
    """
    tree = cKDTree(points, balanced_tree=False, compact_nodes=False)  # quicker to build, as quick to query here
    rng = np.random.default_rng(seed)
    sample = points[rng.choice(len(points), min(len(points), SPACING_SAMPLE), replace=False)]
    spacing = float(np.median(tree.query(sample, k=NEIGHBOURS + 1, workers=-1)[0][:, -1]))
    base = max(isolation * spacing, 1e-9)
    keys = np.floor((points - points.min(axis=0)) / (base / np.sqrt(3.0))).astype(np.int64)
    span = keys.max(axis=0) + 1
    flat = (keys[:, 0] * span[1] + keys[:, 1]) * span[2] + keys[:, 2]
    _, inverse, counts = np.unique(flat, return_inverse=True, return_counts=True)
    undecided = np.flatnonzero(counts[inverse.reshape(-1)] <= NEIGHBOURS)
    isolated = np.zeros(len(points), bool)
    if len(undecided):
        reach = np.maximum(base, SCALE_REACH * largest[undecided])
        kth = tree.query(points[undecided], k=[NEIGHBOURS + 1], workers=-1)[0][:, 0]
        isolated[undecided[kth > reach]] = True
    return isolated
