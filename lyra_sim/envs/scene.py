"""A simulation-ready scene: an aligned Gaussian world, its collision proxies and a free-space map."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from scipy import ndimage

from lyra_sim.camera import Camera
from lyra_sim.envs.options import SceneOptions
from lyra_sim.envs.room_structure import structure_mask
from lyra_sim.generate import generate_world
from lyra_sim.inputs.images import load_depth, load_rgb
from lyra_sim.io import load_world, world_suffixes
from lyra_sim.io.scene_file import is_scene_file
from lyra_sim.physics.aligned import align_with_proxies
from lyra_sim.physics.bullet import ROBOT_HEIGHT, ROBOT_RADIUS, BulletScene
from lyra_sim.physics.proxy import CollisionMesh
from lyra_sim.physics.scene_collider import read_scene_collider
from lyra_sim.rendering import render
from lyra_sim.rendering.warmup import compile_cpu_renderer
from lyra_sim.sh import rgb_to_sh0
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

# Candidate robot views scored at prepare time: up to SCORED_CELLS free cells (an even subsample) x SCORED_YAWS
# headings, then every free cell around the REFINED_CELLS best of those (by observed share, and by observed x object
# share), rendered at SCORE_IMAGE_SIZE with the envs' default field of view, SCORE_BATCH cameras per call.
SCORED_CELLS = 48
REFINED_CELLS = 3
SCORED_YAWS = 16
SCORE_IMAGE_SIZE = (32, 24)
SCORE_FOV_DEG = 90.0
SCORE_BATCH = 256
#: The scored views' level of detail (``render``'s ``lod``, pixels): at 32x24 the shares need no exact render; on
#: the bundled example it is 4x faster (15.5 -> 3.9 s for 1,700 views) at a mean share error of 0.011.
SCORE_LOD = 1.0


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
class ViewScores:
    """Robot camera views from free cells, rendered once: what share of each view the world really observed.

    ``observed[m, k]`` is the share of pixels of the view from ``cells[m]`` facing ``yaws[k]`` that show
    mostly observed Gaussians (alpha > 0.5 and more than half of it from Gaussians whose ``observed`` flag is
    set); ``objects[m, k]`` the share that show mostly observed Gaussians of the things in the room, not its floor
    and walls (``lyra_sim.envs.room_structure``); ``covered[m, k]`` the share with alpha > 0.5 at all (anything
    drawn, observed or invented); ``depth[m, k]`` the median depth (metres) of the covered pixels (0: none).
    """

    cells: np.ndarray  # (M, 2) free-space cell indices
    yaws: np.ndarray  # (K,) radians
    observed: np.ndarray  # (M, K)
    covered: np.ndarray  # (M, K)
    objects: np.ndarray  # (M, K)
    depth: np.ndarray  # (M, K)


@dataclass
class ViewShares:
    """Per camera (``ViewScores`` says what each is): observed, covered and object shares, median depth."""

    observed: np.ndarray
    covered: np.ndarray
    objects: np.ndarray
    depth: np.ndarray


@dataclass
class SimScene:
    """What an environment needs; build it once with ``prepare_scene`` and share it between envs."""

    world: GaussianWorld | DynamicGaussianWorld  # aligned: z_up, floor z = 0, metres
    proxies: list[CollisionMesh]  # one per keyframe (one for a static world)
    free_space: FreeSpace
    robot_scale: float = 1.0
    view_scores: ViewScores | None = None  # None: not scored (episodes start uniformly)

    @property
    def times(self) -> list[float]:
        return list(self.world.times)

    @property
    def camera_to_world(self) -> np.ndarray:
        """The generating camera in the aligned frame."""
        return self.world.alignment.camera_to_world


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


def robot_camera_poses(proxy: CollisionMesh, robot_scale: float, xy: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """OpenCV world-to-camera (M, 4, 4) of the robot camera at rest at each ``xy`` (M, 2) facing ``yaws`` (M,):
    the mount PyBullet reports for a robot placed at the origin, moved rigidly (as ``set_robot_pose`` places it)."""
    return _poses_on_mount(robot_camera_mount(proxy, robot_scale), xy, yaws)


def robot_camera_mount(proxy: CollisionMesh, robot_scale: float) -> np.ndarray:
    """Camera-to-world (4, 4) of the robot camera of a robot at rest at the origin facing +x, as PyBullet places it
    on ``proxy`` (a PyBullet world is made for it: ~0.3 s)."""
    bullet = BulletScene(proxy, robot_scale=robot_scale)
    try:
        bullet.set_robot_pose(0.0, 0.0, 0.0)
        return np.linalg.inv(bullet.camera_world_to_cam())
    finally:
        bullet.close()


def _poses_on_mount(mount: np.ndarray, xy: np.ndarray, yaws: np.ndarray) -> np.ndarray:
    """``robot_camera_poses`` from the camera's ``mount`` (``robot_camera_mount``)."""
    c, s = np.cos(yaws), np.sin(yaws)
    base = np.zeros((len(xy), 4, 4))
    base[:, 0, 0], base[:, 0, 1], base[:, 1, 0], base[:, 1, 1] = c, -s, s, c
    base[:, 2, 2] = base[:, 3, 3] = 1.0
    base[:, :2, 3] = xy
    return np.linalg.inv(base @ mount)


def observed_shares(world: GaussianWorld, cameras: Camera, lod: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per camera: the share of pixels showing mostly observed Gaussians, and the share with alpha > 0.5
    (``lod``: the render's level of detail; None: exact). ``view_shares`` gives these and more."""
    shares = view_shares(world, cameras, lod)
    return shares.observed, shares.covered


def view_shares(world: GaussianWorld, cameras: Camera, lod: float | None = None) -> ViewShares:
    """``ViewShares`` of ``world`` seen by ``cameras`` (``lod``: the render's level of detail; None: exact)."""
    return _flagged_shares(view_flag_world(world), cameras, lod)


def view_flag_world(world: GaussianWorld) -> GaussianWorld:
    """``world`` recoloured to its flags: red = observed, green = observed and not floor or wall
    (``room_structure.structure_mask``), blue 0. Drawn over black, a pixel's red and green are the opacity it owes
    to observed Gaussians and to observed objects (one world for many calls keeps its render index, built once)."""
    observed = world.observed.cpu().numpy()
    flags = np.zeros((len(observed), 3), np.float32)
    flags[:, 0] = observed
    flags[:, 1] = observed & ~structure_mask(world)
    return world._replace(sh=rgb_to_sh0(torch.from_numpy(flags).to(world.sh.dtype)))


def _flagged_shares(flagged: GaussianWorld, cameras: Camera, lod: float | None) -> ViewShares:
    """``view_shares`` of the world whose ``view_flag_world`` is ``flagged``."""
    parts = []
    for start in range(0, len(cameras), SCORE_BATCH):
        batch = cameras[start : start + SCORE_BATCH]
        with torch.no_grad():
            result = render(flagged, batch, background=(0.0, 0.0, 0.0), lod=lod)
        alpha = result.alpha.reshape(len(batch), -1).numpy()
        rgb = result.rgb.reshape(len(batch), -1, 3).numpy()
        covered = alpha > 0.5
        depth = np.sort(np.where(covered, result.depth.reshape(len(batch), -1).numpy(), np.inf), axis=1)
        count = covered.sum(axis=1)
        median = np.where(count > 0, depth[np.arange(len(batch)), np.maximum(count - 1, 0) // 2], 0.0)
        parts.append(((covered & (rgb[..., 0] > 0.5 * alpha)).mean(axis=1), covered.mean(axis=1),
                      (covered & (rgb[..., 1] > 0.5 * alpha)).mean(axis=1), median))
    return ViewShares(*(np.concatenate(column) for column in zip(*parts, strict=True)))


def score_views(world: GaussianWorld, proxy: CollisionMesh, free: FreeSpace, robot_scale: float = 1.0,
                cells: int = SCORED_CELLS, yaws: int = SCORED_YAWS, refine: int = REFINED_CELLS) -> ViewScores:
    """Render the robot camera from an even subsample of ``cells`` free cells in ``yaws`` headings each, then
    from every free cell around the ``refine`` best of them by observed share and the ``refine`` best by observed
    x object share (within half the subsample's stride): views that see mostly observed content are rare and close
    together (a 15 cm camera sees mostly what a high capture camera could not), so an even subsample alone finds
    too few of them."""
    indices = np.argwhere(free.free)
    stride = max(1, int(np.ceil(np.sqrt(len(indices) / cells))))
    picked = indices[(indices[:, 0] % stride == 0) & (indices[:, 1] % stride == 0)]
    if len(picked) == 0:
        picked = indices[:1]
    headings = np.arange(yaws) * (2 * np.pi / yaws)
    flagged, mount = view_flag_world(world), robot_camera_mount(proxy, robot_scale)  # once for both passes
    shares = _score_cells(flagged, mount, free, picked, headings)
    if refine > 0 and stride > 1:  # around the most observed views and around those that also show the objects
        ranks = (-shares.observed.max(axis=1), -(shares.observed * shares.objects).max(axis=1))
        best = np.concatenate([picked[np.argsort(rank, kind="stable")[:refine]] for rank in ranks])
        around = (np.abs(indices[:, None, :] - best[None]).max(axis=-1) <= stride // 2).any(axis=1)
        around &= ~((indices % stride) == 0).all(axis=1)  # not the subsample's own cells again
        if around.any():
            more = _score_cells(flagged, mount, free, indices[around], headings)
            picked = np.concatenate([picked, indices[around]])
            shares = ViewShares(*(np.concatenate([a, b]) for a, b in zip(
                dataclasses.astuple(shares), dataclasses.astuple(more), strict=True)))
    return ViewScores(picked, headings, shares.observed, shares.covered, shares.objects, shares.depth)


def _score_cells(flagged: GaussianWorld, mount: np.ndarray, free: FreeSpace, cells: np.ndarray,
                 headings: np.ndarray) -> ViewShares:
    """``ViewShares`` as (len(cells), len(headings)) arrays of the robot camera's views from ``cells`` (``flagged``:
    the ``view_flag_world``, ``mount``: the ``robot_camera_mount``)."""
    xy = np.repeat(free.origin + (cells + 0.5) * free.cell, len(headings), axis=0)
    world_to_cam = _poses_on_mount(mount, xy, np.tile(headings, len(cells)))
    width, height = SCORE_IMAGE_SIZE
    K = Camera.intrinsics_from_fov(width, height, SCORE_FOV_DEG)
    cameras = Camera(K.expand(len(xy), 3, 3), torch.from_numpy(world_to_cam).float(), width, height)
    shares = _flagged_shares(flagged, cameras, lod=SCORE_LOD)
    return ViewShares(*(column.reshape(len(cells), -1) for column in dataclasses.astuple(shares)))


def _world_from_source(source, intrinsics, depth_model, depth_scale: float | None = None,
                       generate_options: dict | None = None) -> tuple[GaussianWorld | DynamicGaussianWorld, list]:
    """(world in its own frame, extra measured depth views for the proxy in that frame)."""
    generate_options = generate_options or {}
    if isinstance(source, GaussianWorld | DynamicGaussianWorld):
        return source, []
    if isinstance(source, tuple) and len(source) == 2:
        rgb = load_rgb(source[0], name="source rgb")
        depth = load_depth(source[1], rgb.shape[:2], name="source depth", depth_scale=depth_scale)
        world = generate_world(rgb, depth=depth, intrinsics=intrinsics, **generate_options)
        camera = world.generating_camera  # smaller than the frame when generate_world downscaled it
        K = camera.resized(rgb.shape[1], rgb.shape[0]).K[0].double().numpy()
        return world, [(depth, K, np.eye(4))]  # the input camera is the world's origin; depth at full size
    if isinstance(source, str | os.PathLike) and Path(source).suffix.lower() in world_suffixes():
        return load_world(source), []
    # depth_model None: $LYRA_SIM_DEPTH_MODEL if set; on the flat prior generate_world warns at the user's line
    return generate_world(source, intrinsics=intrinsics, depth_model=depth_model, **generate_options), []


def prepare_scene(source, intrinsics=None, scale: float | None = SceneOptions.scale,
                  camera_height: float | None = SceneOptions.camera_height,
                  voxel_size: float | None = SceneOptions.voxel_size,
                  triangle_budget: int = SceneOptions.triangle_budget, robot_scale: float = SceneOptions.robot_scale,
                  depth_model=SceneOptions.depth_model, progress: bool = SceneOptions.progress,
                  depth_scale: float | None = SceneOptions.depth_scale,
                  generate_options: dict | None = SceneOptions.generate_options,
                  score_start_views: bool = SceneOptions.score_start_views) -> SimScene:
    """Generate or load a world, align it (Z up, floor at 0, metres), build its proxies and free-space map.

    ``source``: an image path or array, an ``(rgb, depth)`` pair (with ``intrinsics``; depth in metres as an
    array, or a file of ``depth_scale`` units per metre: 16-bit PNGs default to millimetres), a world file
    (.ply, .safetensors, .usd*), a ``scene.json`` from ``lyra-sim simready`` (its collider is reused) or a
    GaussianWorld / DynamicGaussianWorld. ``generate_options`` go to ``generate_world`` (fov_deg, max_pixels,
    completion, ...). ``SceneOptions`` documents each option (``make_env`` takes the same names).
    ``score_start_views`` renders candidate robot views once (``ViewScores``) so that episodes
    can start where the world was observed.
    """
    if isinstance(source, SimScene):
        return source
    compile_cpu_renderer(background=True)  # a fresh environment compiles the renderer while the world is made
    if isinstance(source, str | os.PathLike) and is_scene_file(source):  # simready's output: reuse its collider
        world, collider = load_world(source), read_scene_collider(source)
        free = free_space_map(world, collider, robot_scale)
        scores = score_views(world.keyframes[0], collider, free, robot_scale) if score_start_views else None
        return SimScene(world, [collider], free, robot_scale, scores)
    world, extra = _world_from_source(source, intrinsics, depth_model, depth_scale, generate_options)
    aligned, proxies = align_with_proxies(world, scale=scale, camera_height=camera_height, measured_views=extra,
                                          voxel_size=voxel_size, triangle_budget=triangle_budget, progress=progress)
    reference = first_keyframe(aligned)
    if "agreement_line" in proxies[0].info:  # how well the collider matches the picture (lyra_sim.physics.agreement)
        print(proxies[0].info["agreement_line"])
    free = free_space_map(reference, proxies[0], robot_scale)
    scores = score_views(reference, proxies[0], free, robot_scale) if score_start_views else None
    return SimScene(aligned, proxies, free, robot_scale, scores)

