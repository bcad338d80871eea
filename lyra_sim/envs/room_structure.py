"""Which Gaussians of an aligned world are the room (floor and walls) and which are the things in it.

A robot's view "shows the place" when it shows the observed things the input was taken of (the table and the
toys, the motorcycle), not only observed floor and wall. ``structure_mask`` tells them apart: the floor is
everything below ``FLOOR_TOP_M``; the walls are the planes the completion recorded
(``info["completion"]["wall_planes"]``, the same walls the collider turns into boxes), or, for a world without
that record (a splat file, a synthetic scene), the tall vertical planes open3d's RANSAC finds in its observed
Gaussians.
"""

from __future__ import annotations

import numpy as np

from lyra_sim.physics.walls import WallPlane, wall_planes
from lyra_sim.world import GaussianWorld

FLOOR_TOP_M = 0.05  # Gaussians lower than this (metres above the floor) are floor (object feet included)
WALL_BAND_M = 0.06  # Gaussians this close to a wall's plane lie on the wall
# Walls found without the completion's record: vertical planes (|normal z| < WALL_MAX_TILT) whose inliers (within
# WALL_BAND_M) span at least WALL_MIN_HEIGHT_M up and WALL_MIN_WIDTH_M along, among up to FOUND_WALLS planes
# fitted in turn to at most FIT_POINTS observed Gaussians above the floor.
WALL_MAX_TILT = 0.1
WALL_MIN_HEIGHT_M = 1.0
WALL_MIN_WIDTH_M = 1.0
FOUND_WALLS = 6
FIT_POINTS = 20_000
RANSAC_ITERATIONS = 500


def structure_mask(world: GaussianWorld) -> np.ndarray:
    """(N,) bool: the Gaussians that are floor (below ``FLOOR_TOP_M``) or lie on a wall (``structure_walls``)."""
    means = world.means.detach().cpu().numpy().astype(np.float64)
    out = means[:, 2] < FLOOR_TOP_M
    for plane in structure_walls(world):
        out |= np.abs(means @ plane.normal + plane.offset) < WALL_BAND_M
    return out


def structure_walls(world: GaussianWorld) -> list[WallPlane]:
    """The completion's recorded walls (``lyra_sim.physics.walls.wall_planes``), else ``found_walls``."""
    return wall_planes(world) or found_walls(world)


def found_walls(world: GaussianWorld) -> list[WallPlane]:
    """Tall, wide vertical planes among the observed Gaussians above the floor (open3d ``segment_plane``, one plane
    at a time, each one's inliers taken out before the next fit). The completion's and the splat collider's wall
    searches (``single_view.completion.room_walls``, ``physics.splat_collider.source_walls``) work on a depth
    image; a world without a wall record here may have no camera to render one from, so this fits the centres."""
    import open3d as o3d

    means = world.means.detach().cpu().numpy().astype(np.float64)
    points = means[world.observed.cpu().numpy() & (means[:, 2] >= FLOOR_TOP_M)]
    if len(points) > FIT_POINTS:
        points = points[np.random.default_rng(0).choice(len(points), FIT_POINTS, replace=False)]
    o3d.utility.random.seed(0)  # the same walls every time
    walls = []
    for _ in range(FOUND_WALLS):
        if len(points) < 3:
            break
        cloud = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(points))
        (a, b, c, d), inliers = cloud.segment_plane(WALL_BAND_M / 2, 3, RANSAC_ITERATIONS)
        on = points[inliers]
        points = np.delete(points, inliers, axis=0)
        if abs(c) >= WALL_MAX_TILT:
            continue
        norm = float(np.hypot(a, b))
        plane = WallPlane(np.array([a, b, 0.0]) / norm, d / norm, float(on[:, 2].max()))
        (z_lo, a_lo), (z_hi, a_hi) = np.quantile(np.stack([on[:, 2], on @ plane.along], 1), [0.02, 0.98], axis=0)
        if z_hi - z_lo >= WALL_MIN_HEIGHT_M and a_hi - a_lo >= WALL_MIN_WIDTH_M:  # quantiles: a stray inlier is no wall
            walls.append(plane)
    return walls
