"""How well a collider agrees with the picture: ray distances between the collision mesh and the splats'
median depth, seen from a ring of robot-height cameras where the world was observed.

A user cannot see ground truth, but can see this: a collider that matches the splats puts a surface where
every camera ray meets the picture's surface.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.camera import Camera, look_at_matrix, pixel_directions
from lyra_sim.physics.raycast import cast_rays
from lyra_sim.rendering import render
from lyra_sim.world import GaussianWorld, WorldError

RING_HEIGHTS = (0.4, 0.9)  # metres above the floor
RING_YAWS_DEG = (-40.0, -20.0, 0.0, 20.0, 40.0)  # about the input camera's heading
RING_PITCH_DEG = 15.0  # looking down
RING_FORWARD = 0.8  # metres: the farthest forward move, capped at FORWARD_SHARE of the scene's median range
FORWARD_SHARE = 0.3
RING_IMAGE_SIZE = (160, 120)
RING_FOV_DEG = 70.0
WITHIN = 0.05  # metres: a ray "agrees" when collider and picture lie this close along it


@dataclass
class AgreementReport:
    """Distances (m) along camera rays between the collider's first hit and the splats' median depth, over the
    rays whose pixel shows a surface (a collider miss counts as an infinite distance)."""

    median: float
    p95: float
    within: float  # share of rays within WITHIN
    rays: int
    cameras: int
    missed: float  # share of rays that hit no collider triangle

    def as_dict(self) -> dict:
        return {"median_m": self.median, "p95_m": self.p95, "within_5cm": self.within, "rays": self.rays,
                "cameras": self.cameras, "missed": self.missed}

    def as_line(self) -> str:
        return (f"collider vs picture: median {_metres(self.median)}, 95th percentile {_metres(self.p95)}, "
                f"{100 * self.within:.1f} % of {self.rays} rays within {100 * WITHIN:.0f} cm "
                f"({self.cameras} robot-height cameras; {100 * self.missed:.1f} % of rays miss the collider)")


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


def collider_agreement(world: GaussianWorld, mesh, cameras: Camera | None = None) -> AgreementReport:
    """Agreement of the collider ``mesh`` (a CollisionMesh or (vertices, faces), in the world's frame) with the
    splats' median depth from ``cameras`` (default: ``ring_cameras``)."""
    vertices, faces = (mesh.vertices, mesh.faces) if hasattr(mesh, "faces") else mesh
    cameras = ring_cameras(world) if cameras is None else cameras
    with torch.no_grad():
        median = render(world, cameras, background=(0, 0, 0), median=True).median_depth.reshape(
            len(cameras), cameras.height, cameras.width).numpy().astype(np.float64)
    dirs = pixel_directions(cameras.K.double(), cameras.height, cameras.width).numpy()  # (B,H,W,3), z = 1
    cam_to_world = cameras.cam_to_world.double().numpy()
    seen = median > 0
    z = median[seen]
    camera_dirs = dirs[seen]
    batch = np.nonzero(seen)[0]
    lengths = np.linalg.norm(camera_dirs, axis=1)
    world_dirs = np.einsum("nij,nj->ni", cam_to_world[batch, :3, :3], camera_dirs / lengths[:, None])
    origins = cam_to_world[batch, :3, 3]
    hit = cast_rays(vertices, faces, origins, world_dirs)
    distance = np.abs(hit - z * lengths)  # the picture's surface lies at z * |(x, y, 1)| along the unit ray
    if len(distance) == 0:
        return AgreementReport(math.inf, math.inf, 0.0, 0, len(cameras), 0.0)
    # "higher": no interpolation between two misses (inf - inf)
    return AgreementReport(median=float(np.quantile(distance, 0.5, method="higher")),
                           p95=float(np.quantile(distance, 0.95, method="higher")),
                           within=float((distance <= WITHIN).mean()), rays=len(distance),
                           cameras=len(cameras), missed=float(np.isinf(hit).mean()))
