"""Synthetic scenes with known geometry, as Gaussian worlds (surfels on analytic surfaces)."""

import math

import numpy as np
import torch

from lyra_sim import GaussianWorld
from lyra_sim.camera import look_at_matrix
from lyra_sim.rotations import rotmat_to_quat

ROOM_X, ROOM_Y, ROOM_Z = (0.0, 4.0), (-1.5, 1.5), 2.0  # floor extent and wall height (metres, z up)
BOX_MIN, BOX_MAX = np.array([2.2, -0.4, 0.0]), np.array([2.8, 0.4, 0.6])
CAMERA_EYE = np.array([0.3, 0.0, 1.3])
CAMERA_TARGET = np.array([3.0, 0.0, 0.4])


def _plane_surfels(origin, u, v, normal, spacing, rng):
    """Jittered grid of surfel centres on the parallelogram origin + s u + t v, plus their normals."""
    nu = max(int(np.linalg.norm(u) / spacing), 1)
    nv = max(int(np.linalg.norm(v) / spacing), 1)
    s, t = np.meshgrid((np.arange(nu) + rng.random(nu)) / nu, (np.arange(nv) + rng.random(nv)) / nv, indexing="ij")
    points = origin + s.reshape(-1, 1) * u + t.reshape(-1, 1) * v
    return points, np.broadcast_to(normal, points.shape)


def room_surfaces(with_box: bool = True, box_offset=(0.0, 0.0)):
    """(origin, u, v, inward normal) of the floor, four walls and the box's visible faces (z-up metres)."""
    x0, x1 = ROOM_X
    y0, y1 = ROOM_Y
    h = ROOM_Z
    planes = [
        ((x0, y0, 0), (x1 - x0, 0, 0), (0, y1 - y0, 0), (0, 0, 1)),  # floor
        ((x1, y0, 0), (0, y1 - y0, 0), (0, 0, h), (-1, 0, 0)),  # far wall
        ((x0, y0, 0), (0, y1 - y0, 0), (0, 0, h), (1, 0, 0)),  # near wall
        ((x0, y0, 0), (x1 - x0, 0, 0), (0, 0, h), (0, 1, 0)),  # right wall (y = y0)
        ((x0, y1, 0), (x1 - x0, 0, 0), (0, 0, h), (0, -1, 0)),  # left wall (y = y1)
    ]
    if with_box:
        shift = np.array([*box_offset, 0.0])
        lo, hi = BOX_MIN + shift, BOX_MAX + shift
        size = hi - lo
        planes += [
            ((lo[0], lo[1], hi[2]), (size[0], 0, 0), (0, size[1], 0), (0, 0, 1)),  # top
            ((lo[0], lo[1], 0), (0, size[1], 0), (0, 0, size[2]), (-1, 0, 0)),  # front
            ((hi[0], lo[1], 0), (0, size[1], 0), (0, 0, size[2]), (1, 0, 0)),  # back
            ((lo[0], lo[1], 0), (size[0], 0, 0), (0, 0, size[2]), (0, -1, 0)),  # side
            ((lo[0], hi[1], 0), (size[0], 0, 0), (0, 0, size[2]), (0, 1, 0)),  # side
        ]
    return [tuple(np.asarray(a, dtype=np.float64) for a in plane) for plane in planes]


def surfels_world(planes, spacing=0.03, seed=0) -> GaussianWorld:
    """Flat opaque Gaussians (discs facing their normals) covering the planes, metric z-up."""
    rng = np.random.default_rng(seed)
    points, normals = zip(*(_plane_surfels(o, u, v, n, spacing, rng) for o, u, v, n in planes), strict=True)
    points, normals = np.concatenate(points), np.concatenate(normals)
    # Rotation taking local z to the normal.
    z = normals / np.linalg.norm(normals, axis=1, keepdims=True)
    helper = np.where(np.abs(z[:, :1]) < 0.9, [[1.0, 0, 0]], [[0, 1.0, 0]])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.cross(z, x)
    rotations = torch.from_numpy(np.stack([x, y, z], axis=2))
    n = len(points)
    colours = torch.from_numpy(0.3 + 0.4 * np.abs(normals)).float()
    return GaussianWorld(
        means=torch.from_numpy(points).float(), quats=rotmat_to_quat(rotations).float(),
        scales=torch.tensor([[0.8 * spacing, 0.8 * spacing, 0.05 * spacing]]).repeat(n, 1),
        opacities=torch.full((n,), 0.95), sh=((colours - 0.5) / 0.28209479)[:, None, :],
        frame="z_up", meters_per_unit=1.0,
    )


def camera_view(world: GaussianWorld, eye=CAMERA_EYE, target=CAMERA_TARGET, roll_deg: float = 0.0,
                scale: float = 1.0) -> tuple[GaussianWorld, torch.Tensor]:
    """The world expressed in a camera's OpenCV frame (as a generator would output it), optionally rescaled
    by an unknown factor. Returns the world and the world-to-camera used."""
    world_to_cam = look_at_matrix(eye, target, up=(0, 0, 1)).double()
    roll = math.radians(roll_deg)
    spin = torch.eye(4, dtype=torch.float64)
    spin[:2, :2] = torch.tensor([[math.cos(roll), -math.sin(roll)], [math.sin(roll), math.cos(roll)]])
    world_to_cam = spin @ world_to_cam
    view = world.transformed(rotation=world_to_cam[:3, :3].float(), translation=world_to_cam[:3, 3].float(),
                             frame="opencv")
    if scale != 1.0:  # an unknown scale, as from a monocular generator
        view = view.transformed(scale=scale)
        view.meters_per_unit = None
    return view, world_to_cam
