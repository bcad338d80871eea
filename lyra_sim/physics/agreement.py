"""How well a collider agrees with the picture: distances from the splats' median-depth surface, seen from a
ring of robot-height cameras where the world was observed, to the collision mesh.

A user cannot see ground truth, but can see this: a collider that matches the splats puts a surface where
every camera ray meets the picture's surface. Rays whose picture surface lies beyond the collider's reach (the
completion's far backdrop sphere, tens of metres out, past where a wall ends) are left out and counted apart:
no collider models the sky, and counting them as misses hid a good collider behind a low figure.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.camera import Camera, look_at_matrix, pixel_directions
from lyra_sim.physics.raycast import cast_rays, distance_to_mesh
from lyra_sim.rendering.cpu import median_depth_cpu
from lyra_sim.world import GaussianWorld, WorldError

RING_HEIGHTS = (0.4, 0.9)  # metres above the floor
RING_YAWS_DEG = (-40.0, -20.0, 0.0, 20.0, 40.0)  # about the input camera's heading
RING_PITCH_DEG = 15.0  # looking down
RING_FORWARD = 0.8  # metres: the farthest forward move, capped at FORWARD_SHARE of the scene's median range
FORWARD_SHARE = 0.3
RING_IMAGE_SIZE = (160, 120)
RING_FOV_DEG = 70.0
WITHIN = 0.05  # metres: a ray "agrees" when collider and picture lie this close along it
REACH_FACTOR = 1.5  # the collider fuses depth this many observed-scene diagonals along a view (proxy's ``far``)


@dataclass
class AgreementReport:
    """Distances (m) from the splats' median-depth surface point of each camera ray whose pixel shows a surface
    within the collider's reach to the nearest collider triangle; ``missed``: the share of those rays that hit no
    collider triangle; ``far_field``: the share of all surface rays whose picture lies beyond ``reach`` (left out)."""

    median: float
    p95: float
    within: float  # share of rays within WITHIN
    rays: int
    cameras: int
    missed: float  # share of rays that hit no collider triangle
    far_field: float = 0.0  # share of surface rays whose picture lies beyond ``reach``
    reach: float = math.inf  # world units along a ray

    def as_dict(self) -> dict:
        return {"median_m": self.median, "p95_m": self.p95, "within_5cm": self.within, "rays": self.rays,
                "cameras": self.cameras, "missed": self.missed, "far_field": self.far_field, "reach": self.reach}

    def as_line(self) -> str:
        far = (f"; {100 * self.far_field:.1f} % more show the far field beyond the collider's {self.reach:.1f} m "
               "reach, left out" if self.far_field > 0 else "")
        return (f"collider vs picture: median {_metres(self.median)}, 95th percentile {_metres(self.p95)}, "
                f"{100 * self.within:.1f} % of {self.rays} rays within {100 * WITHIN:.0f} cm "
                f"({self.cameras} robot-height cameras; {100 * self.missed:.1f} % of rays miss the collider{far})")


def collider_reach(core_means: np.ndarray) -> float:
    """How far along a view the collider fuses depth: REACH_FACTOR x the diagonal of the observed scene's centres
    (``core_means``); completed surfaces farther out (the far backdrop) get no collider."""
    if len(core_means) == 0:
        return math.inf
    return float(np.linalg.norm(core_means.max(axis=0) - core_means.min(axis=0))) * REACH_FACTOR


def _metres(value: float) -> str:
    return "no hit" if not math.isfinite(value) else f"{value:.3f} m"


def ring_cameras(world: GaussianWorld, image_size: tuple[int, int] = RING_IMAGE_SIZE,
                 fov_deg: float = RING_FOV_DEG) -> Camera:
    """Robot-height cameras (RING_HEIGHTS) where the input camera stood and a step forward, yawed over
    RING_YAWS_DEG about its heading and pitched RING_PITCH_DEG down (an aligned, z-up world)."""
    if not (world.frame == "z_up" and "alignment" in world.info):
        raise WorldError("collider agreement: the world must be aligned (lyra_sim.align.align_world)")
    camera_to_world = np.asarray(world.info["alignment"]["camera_to_world"], dtype=np.float64)
    eye0 = camera_to_world[:3, 3]
    forward = camera_to_world[:3, 2].copy()
    forward[2] = 0.0
    heading = math.atan2(forward[1], forward[0]) if np.linalg.norm(forward) > 1e-6 else 0.0
    observed = world.observed_only() if bool(world.observed.any()) else world
    means = observed.means.detach().cpu().numpy().astype(np.float64)
    scene_range = float(np.median(np.linalg.norm(means[:, :2] - eye0[:2], axis=1))) if len(means) else 1.0
    step = min(RING_FORWARD, FORWARD_SHARE * scene_range)
    w2c = []
    pitch = math.radians(RING_PITCH_DEG)
    for move in (0.0, step):
        for height in RING_HEIGHTS:
            eye = np.array([eye0[0] + move * math.cos(heading), eye0[1] + move * math.sin(heading), height])
            for yaw_deg in RING_YAWS_DEG:
                yaw = heading + math.radians(yaw_deg)
                look = np.array([math.cos(yaw) * math.cos(pitch), math.sin(yaw) * math.cos(pitch), -math.sin(pitch)])
                w2c.append(look_at_matrix(eye, eye + look, up=(0.0, 0.0, 1.0)).float())
    width, height = image_size
    K = Camera.intrinsics_from_fov(width, height, fov_deg)
    return Camera(K.expand(len(w2c), 3, 3), torch.stack(w2c), width, height)


def collider_agreement(world: GaussianWorld, mesh, cameras: Camera | None = None,
                        reach: float | None = None) -> AgreementReport:
    """Agreement of the collider ``mesh`` (a CollisionMesh or (vertices, faces), in the world's frame) with the
    splats' median depth from ``cameras`` (default: ``ring_cameras``), over picture surfaces within ``reach``
    along the ray (default: the CollisionMesh's ``info["reach"]``, else ``collider_reach`` of the observed
    Gaussians)."""
    vertices, faces = (mesh.vertices, mesh.faces) if hasattr(mesh, "faces") else mesh
    cameras = ring_cameras(world) if cameras is None else cameras
    if reach is None:
        reach = getattr(mesh, "info", {}).get("reach")
    if reach is None:
        observed = world.observed_only() if bool(world.observed.any()) else world
        reach = collider_reach(observed.means.detach().cpu().numpy().astype(np.float64))
    with torch.no_grad():
        median = median_depth_cpu(world, cameras, near=0.01, far=1e10, eps2d=0.3).numpy().astype(np.float64)
    dirs = pixel_directions(cameras.K.double(), cameras.height, cameras.width).numpy()  # (B,H,W,3), z = 1
    cam_to_world = cameras.cam_to_world.double().numpy()
    surface = median > 0
    seen = surface & (median * np.linalg.norm(dirs, axis=-1) <= reach)
    far_field = float(1.0 - seen.sum() / max(int(surface.sum()), 1))
    z = median[seen]
    camera_dirs = dirs[seen]
    batch = np.nonzero(seen)[0]
    lengths = np.linalg.norm(camera_dirs, axis=1)
    world_dirs = np.einsum("nij,nj->ni", cam_to_world[batch, :3, :3], camera_dirs / lengths[:, None])
    origins = cam_to_world[batch, :3, 3]
    hit = cast_rays(vertices, faces, origins, world_dirs)
    # The picture's surface point lies at z * |(x, y, 1)| along the unit ray; its distance to the collider is
    # taken to the nearest triangle (along the ray, a floor splat 1 cm high would count metres at grazing rays).
    distance = distance_to_mesh(vertices, faces, origins + (z * lengths)[:, None] * world_dirs)
    if len(distance) == 0:
        return AgreementReport(math.inf, math.inf, 0.0, 0, len(cameras), 0.0, far_field, reach)
    # "higher": no interpolation between two misses (inf - inf)
    return AgreementReport(median=float(np.quantile(distance, 0.5, method="higher")),
                           p95=float(np.quantile(distance, 0.95, method="higher")),
                           within=float((distance <= WITHIN).mean()), rays=len(distance),
                           cameras=len(cameras), missed=float(np.isinf(hit).mean()), far_field=far_field,
                           reach=reach)
