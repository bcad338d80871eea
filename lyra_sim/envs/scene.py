"""A simulation-ready scene: an aligned Gaussian world, its collision proxies and a free-space map."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
from scipy import ndimage

from lyra_sim.generate import generate_world
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb, scale_intrinsics
from lyra_sim.io import load_world, world_suffixes
from lyra_sim.physics.aligned import align_with_proxies
from lyra_sim.physics.bullet import ROBOT_HEIGHT, ROBOT_RADIUS
from lyra_sim.physics.proxy import CollisionMesh
from lyra_sim.rendering.warmup import compile_cpu_renderer
from lyra_sim.single_view.depth_sources import PRIOR_ADVICE, FlatPriorWarning
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld, first_keyframe

# The free-space map: floor Gaussians are those within FLOOR_BAND of z = 0 and at least FLOOR_MIN_OPACITY opaque;
# obstacle points lie above what the wheels roll over (WHEEL_STEP, times the robot scale) and below the robot
# plus HEAD_ROOM. The proxy's obstacle surface is sampled OBSTACLE_SAMPLES_PER_CELL times per grid cell of area
# (at least MIN_OBSTACLE_SAMPLES points), and FLOOR_CLOSING closing steps bridge gaps between floor splats.
FLOOR_BAND = 0.03
FLOOR_MIN_OPACITY = 0.2
WHEEL_STEP = 0.03
HEAD_ROOM = 0.05
OBSTACLE_SAMPLES_PER_CELL = 8
MIN_OBSTACLE_SAMPLES = 1000
FLOOR_CLOSING = 2

COMPLETED_FLOOR_MARGIN = 1.0  # metres around the observed scene where a completed floor is free space


@dataclass
class FreeSpace:
    """Floor cells the robot can stand on: seen floor, no obstacle up to robot height, robot radius clear."""

    free: np.ndarray  # (nx, ny) bool
    origin: np.ndarray  # xy of cell (0, 0)'s corner
    cell: float
    labels: np.ndarray = field(init=False)

    def __post_init__(self):
        self.labels, _ = ndimage.label(self.free)

    def cell_centre(self, index: tuple[int, int]) -> np.ndarray:
        return self.origin + (np.asarray(index) + 0.5) * self.cell

    def cell_of(self, xy) -> tuple[int, int]:
        i, j = np.floor((np.asarray(xy) - self.origin) / self.cell).astype(int)
        return int(i), int(j)

    def is_free(self, xy) -> bool:
        i, j = self.cell_of(xy)
        return 0 <= i < self.free.shape[0] and 0 <= j < self.free.shape[1] and bool(self.free[i, j])


@dataclass
class SimScene:
    """What an environment needs; build it once with ``prepare_scene`` and share it between envs."""

    world: GaussianWorld | DynamicGaussianWorld  # aligned: z_up, floor z = 0, metres
    proxies: list[CollisionMesh]  # one per keyframe (one for a static world)
    free_space: FreeSpace
    robot_scale: float = 1.0

    @property
    def times(self) -> list[float]:
        return list(self.world.times) if isinstance(self.world, DynamicGaussianWorld) else [0.0]

    @property
    def camera_to_world(self) -> np.ndarray:
        """The generating camera in the aligned frame."""
        reference = first_keyframe(self.world)
        return np.asarray(reference.info["alignment"]["camera_to_world"])


def free_space_map(world: GaussianWorld, proxy: CollisionMesh, robot_scale: float = 1.0,
                   floor_band: float = FLOOR_BAND) -> FreeSpace:
    """Rasterise the floor and the obstacles below robot height on a grid of half the robot radius.

    A completed floor (unobserved Gaussians from ``generate_world``) counts within
    ``COMPLETED_FLOOR_MARGIN`` metres of the observed scene's extent.
    """
    radius = ROBOT_RADIUS * robot_scale
    cell = radius / 2
    means = world.means.detach().cpu().numpy()
    floor_points = means[(np.abs(means[:, 2]) < floor_band) & (world.opacities.cpu().numpy() > FLOOR_MIN_OPACITY)]
    observed = world.observed.cpu().numpy()
    if not observed.all() and observed.any():  # a completed floor: the room around what was seen, not all of it
        lo, hi = np.quantile(means[observed, :2], [0.01, 0.99], axis=0)
        margin = COMPLETED_FLOOR_MARGIN * robot_scale
        near = ((floor_points[:, :2] >= lo - margin) & (floor_points[:, :2] <= hi + margin)).all(axis=1)
        floor_points = floor_points[near]
    if len(floor_points) == 0:
        raise ValueError("free space: no floor Gaussians near z = 0 (is the world aligned?)")
    origin = floor_points[:, :2].min(axis=0) - 2 * radius
    shape = tuple(np.ceil((floor_points[:, :2].max(axis=0) + 2 * radius - origin) / cell).astype(int) + 1)
    seen = np.zeros(shape, bool)
    idx = np.floor((floor_points[:, :2] - origin) / cell).astype(int)
    seen[idx[:, 0], idx[:, 1]] = True
    seen = ndimage.binary_closing(seen, iterations=FLOOR_CLOSING)

    occupied = np.zeros(shape, bool)
    vertices, faces = proxy.obstacle_mesh
    if len(faces):
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(faces.astype(np.int32)))
        samples = max(int(mesh.get_surface_area() / (cell * cell) * OBSTACLE_SAMPLES_PER_CELL), MIN_OBSTACLE_SAMPLES)
        o3d.utility.random.seed(0)  # the same map every time
        points = np.asarray(mesh.sample_points_uniformly(samples).points)
        points = np.concatenate([points, vertices])
        step = max(WHEEL_STEP * robot_scale, proxy.info.get("floor_band", 0.0))  # what the wheels can roll over
        low = points[(points[:, 2] > step) & (points[:, 2] < ROBOT_HEIGHT * robot_scale + HEAD_ROOM)]
        idx = np.floor((low[:, :2] - origin) / cell).astype(int)
        inside = (idx >= 0).all(axis=1) & (idx[:, 0] < shape[0]) & (idx[:, 1] < shape[1])
        occupied[idx[inside, 0], idx[inside, 1]] = True
    clearance = int(np.ceil(radius / cell))
    disk = np.hypot(*np.mgrid[-clearance:clearance + 1, -clearance:clearance + 1]) <= clearance
    free = seen & ~ndimage.binary_dilation(occupied, structure=disk)
    free = ndimage.binary_erosion(free, structure=np.ones((3, 3)))  # keep away from the edge of the seen floor
    return FreeSpace(free, origin, cell)


def _world_from_source(source, intrinsics, depth_model) -> tuple[GaussianWorld | DynamicGaussianWorld, list]:
    """(world in its own frame, extra measured depth views for the proxy in that frame)."""
    if isinstance(source, GaussianWorld | DynamicGaussianWorld):
        return source, []
    if isinstance(source, tuple) and len(source) == 2:
        rgb = load_rgb(source[0], name="source rgb")
        depth = load_depth(source[1], rgb.shape[:2], name="source depth")
        world = generate_world(rgb, depth=depth, intrinsics=intrinsics)
        small_w, small_h = world.info["image_size"]  # smaller than the frame when generate_world downscaled it
        K = scale_intrinsics(np.asarray(world.info["intrinsics"]), rgb.shape[1] / small_w, rgb.shape[0] / small_h)
        return world, [(depth, K, np.eye(4))]  # the input camera is the world's origin; depth at full size
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in world_suffixes():
        return load_world(source), []
    if intrinsics is not None:
        load_intrinsics(intrinsics, *load_rgb(source, name="source").shape[1::-1])  # fail early, name the input
    world = generate_world(source, intrinsics=intrinsics, depth_model=depth_model)
    if world.info.get("depth_source") == "prior":
        warnings.warn(PRIOR_ADVICE, FlatPriorWarning, stacklevel=3)
    return world, []


def prepare_scene(source, intrinsics=None, scale: float | None = None, camera_height: float | None = None,
                  voxel_size: float | None = None, triangle_budget: int = 30_000, robot_scale: float = 1.0,
                  depth_model=None, progress: bool = False) -> SimScene:
    """Generate or load a world, align it (Z up, floor at 0, metres), build its proxies and free-space map.

    ``source``: an image path or array, an ``(rgb, depth_metres)`` pair (with ``intrinsics``), a world file
    (.ply, .safetensors, .usd*) or a GaussianWorld / DynamicGaussianWorld.
    """
    if isinstance(source, SimScene):
        return source
    compile_cpu_renderer(background=True)  # a fresh environment compiles the renderer while the world is made
    world, extra = _world_from_source(source, intrinsics, depth_model)
    aligned, proxies = align_with_proxies(world, scale=scale, camera_height=camera_height, measured_views=extra,
                                          voxel_size=voxel_size, triangle_budget=triangle_budget, progress=progress)
    reference = first_keyframe(aligned)
    free = free_space_map(reference, proxies[0], robot_scale)
    return SimScene(aligned, proxies, free, robot_scale)

