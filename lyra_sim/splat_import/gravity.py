"""Which file axis is up, for splats whose frame is arbitrary (INRIA trainers, SOG, compressed PLY).

Each of the six signed axes is tried as up: the floor is looked for below the scene (``lyra_sim.align``'s
RANSAC, within 30 degrees of that axis), and scored by its support (share of splats on it) times the
square of the share of splats above it (a ceiling or a wall seen from outside has the scene on its
wrong side). The convention's usual up axis gets a small bonus, so a cube-shaped room keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.align import find_floor
from lyra_sim.splat_import.options import UP_AXES
from lyra_sim.world import GaussianWorld, WorldError

AXES = dict(zip(UP_AXES, ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)), strict=True))
SEARCH_SAMPLE = 100_000  # Gaussians the search looks at
MAX_TILT_DEG = 30.0
HINT_BONUS = 1.25


@dataclass
class UpChoice:
    """The chosen up axis (a label of AXES), the rotation taking it to +z, and every axis's score."""

    axis: str
    rotation: np.ndarray  # (3, 3) proper rotation: x_z_up = R @ x_file
    scores: dict[str, float]

    def as_line(self) -> str:
        ranked = ", ".join(f"{a} {s:.2f}" for a, s in sorted(self.scores.items(), key=lambda kv: -kv[1])[:3])
        return f"gravity: file axis {self.axis} is up (floor scores {ranked})"


def rotation_to_z_up(up) -> np.ndarray:
    """A proper rotation whose third row is ``up`` (so ``up`` becomes +z); x becomes the first file axis
    perpendicular to it in the order +z, +x, +y (so the OpenCV camera's +z stays forward)."""
    up = np.asarray(up, dtype=np.float64)
    forward = next(np.array(a, np.float64) for a in ((0, 0, 1), (1, 0, 0), (0, 1, 0)) if abs(np.dot(a, up)) < 0.5)
    left = np.cross(up, forward)
    return np.stack([forward, left, up])


def find_up(world: GaussianWorld, hint: str | None = "-y", seed: int = 0) -> UpChoice:
    """The file axis that is up in ``world`` (any frame label: its axes are taken as unknown)."""
    rng = np.random.default_rng(seed)
    sample = world if len(world) <= SEARCH_SAMPLE else world.subset(
        torch.from_numpy(np.sort(rng.choice(len(world), SEARCH_SAMPLE, replace=False))))
    sample = sample.with_sh_degree(0)
    scores = {}
    for label, axis in AXES.items():
        rotation = rotation_to_z_up(axis)
        turned = sample.transformed(rotation=torch.from_numpy(rotation).float(), frame="z_up")
        lo, hi = turned.bounds(quantile=0.01)
        above = (float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, float(hi[2] + (hi - lo).max()))
        try:
            plane = find_floor(turned, above, max_tilt_deg=MAX_TILT_DEG, seed=seed)
        except WorldError:
            scores[label] = 0.0
            continue
        points = turned.means.double().numpy()
        heights = points @ plane.normal + plane.offset
        # find_floor's inlier threshold is 1 % of the median distance to the camera, and its plane may sit up to
        # one threshold above the floor (it starts from the middle of the lowest height bin): allow two.
        band = 0.02 * float(np.median(np.linalg.norm(points - np.asarray(above), axis=1)))
        share_above = float((heights > -band).mean())
        scores[label] = plane.inlier_fraction * share_above**2 * (HINT_BONUS if label == hint else 1.0)
    best = max(scores, key=scores.get)
    if scores[best] <= 0:
        raise WorldError("gravity: no floor-like plane found along any axis; give the up axis with --up")
    return UpChoice(best, rotation_to_z_up(AXES[best]), scores)
