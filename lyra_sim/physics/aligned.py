"""One step from a world in any frame to physics: align it (Z up, floor at 0, metres) and build its collision proxies.

Used by ``lyra-sim export-usd --collision auto`` and :func:`lyra_sim.envs.prepare_scene`.
"""

from __future__ import annotations

import numpy as np

from lyra_sim.align import align_world
from lyra_sim.physics.proxy import TRIANGLE_BUDGET, CollisionMesh, build_collision_proxy
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld, first_keyframe


def is_aligned(world: GaussianWorld | DynamicGaussianWorld) -> bool:
    """True when the world is already in the simulation frame (lyra_sim.align's output, with its report)."""
    reference = first_keyframe(world)
    return reference.frame == "z_up" and "alignment" in reference.info


def move_views(views: list, transform: np.ndarray) -> list:
    """Measured (depth, K, world_to_cam) views carried along an alignment transform x' = m R x + t.

    world_to_cam' = [R_e, m t_e] @ inv([R, t]) and depth' = m depth: the camera keeps its view of the
    moved (and scaled) world.
    """
    transform = np.asarray(transform, dtype=np.float64)
    metres = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rigid = np.eye(4)
    rigid[:3, :3] = transform[:3, :3] / metres
    rigid[:3, 3] = transform[:3, 3]
    moved = []
    for depth, K, world_to_cam in views:
        scaled = np.array(world_to_cam, dtype=np.float64)
        scaled[:3, 3] *= metres
        moved.append((depth * metres, K, scaled @ np.linalg.inv(rigid)))
    return moved


def align_with_proxies(
    world: GaussianWorld | DynamicGaussianWorld,
    scale: float | None = None,
    camera_height: float | None = None,
    measured_views: list | None = None,
    voxel_size: float | None = None,
    triangle_budget: int = TRIANGLE_BUDGET,
    progress: bool = True,
) -> tuple[GaussianWorld | DynamicGaussianWorld, list[CollisionMesh]]:
    """(aligned world, collision proxies in its frame: one per keyframe, one for a static world).

    A world that is already aligned is kept as it is; otherwise ``lyra_sim.align.align_world`` levels and
    scales it (``scale`` metres per unit, or ``camera_height`` as the prior). ``measured_views`` are
    (depth (H, W), K (3, 3), world_to_cam (4, 4)) views in the *input* world's frame (e.g. the RGB-D input);
    they are moved into the aligned frame and fused into the proxy with the rendered views.
    """
    aligned = world if is_aligned(world) else align_world(world, scale=scale, camera_height=camera_height)
    views = []
    if measured_views:
        reference = first_keyframe(aligned)
        views = move_views(measured_views, reference.info["alignment"]["transform"])
    proxies = build_collision_proxy(aligned, voxel_size=voxel_size, triangle_budget=triangle_budget,
                                    extra_views=views, progress=progress)
    return aligned, proxies if isinstance(proxies, list) else [proxies]
