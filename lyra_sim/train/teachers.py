"""Teachers for self-distillation: given an input and camera trajectories, the frames, depth, cameras and
validity masks the decoder must learn to reproduce.

- ``CacheTeacher``: GEN3C's 3D-cache step, no weights. The RGB-D input is unprojected and forward-warped
  into every target camera (bilinear splatting, soft z-buffer); pixels on unreliable depth edges are not
  splatted, and the conservative mask refinement hides warped pixels that lie behind the surface spanned
  by those unreliable pixels. Disoccluded pixels are masked, never invented.
- ``Gen3cTeacher``: an official GEN3C output folder (RGB from the MP4s, cameras from the pose files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import open3d as o3d
import torch
from scipy import ndimage

from lyra_sim.camera import Camera, pixel_directions, relative_poses
from lyra_sim.lyra.gen3c_dir import read_teacher_dir
from lyra_sim.single_view.lift import unreliable_edges
from lyra_sim.single_view.surfels import unproject_depth
from lyra_sim.trajectories import LYRA_VIEW_ORDER, lyra_trajectories

EDGE_WINDOW = 5
EDGE_RATIO = 0.05  # GEN3C: a 5x5 depth range above 5 % of the mean is unreliable
BEHIND_THRESHOLD = 0.02  # GEN3C's conservative refinement: masked when this far behind the edge mesh


@dataclass
class TeacherTrajectory:
    """One trajectory: frames (F, H, W, 3) in [0, 1], depth (F, H, W) z-depth (None when unknown),
    masks (F, H, W) bool (True = valid supervision), cameras (a batch of F)."""

    frames: torch.Tensor
    depth: torch.Tensor | None
    masks: torch.Tensor
    cameras: Camera
    index: int = 0


def unreliable_depth(depth: np.ndarray, window: int = EDGE_WINDOW, ratio: float = EDGE_RATIO) -> np.ndarray:
    """GEN3C's rule: pixels whose window x window depth range exceeds ``ratio`` of the window mean, and
    pixels without depth."""
    valid = depth > 0
    high = ndimage.maximum_filter(np.where(valid, depth, 0.0), size=window)
    low = ndimage.minimum_filter(np.where(valid, depth, np.inf), size=window)
    mean = ndimage.uniform_filter(depth.astype(np.float64), size=window)
    return ~valid | ((high - low) > ratio * mean) | ~np.isfinite(low)


def forward_warp(rgb: np.ndarray, points: np.ndarray, keep: np.ndarray, K: np.ndarray, world_to_cam: np.ndarray,
                 size: tuple[int, int], softness: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Splat coloured points (H, W, 3, in the input camera's frame) into a target camera.

    Bilinear splatting with a soft z-buffer: each point adds to its 4 neighbouring pixels with bilinear
    weights times ``exp(-(z - z_front) / (softness * z_front))``, where z_front is the nearest depth that
    reaches the pixel, so surfaces behind the front one fade out instead of bleeding through.
    Returns rgb (h, w, 3), z-depth (h, w) and the accumulated weight (h, w) (0 = nothing landed).
    """
    width, height = size
    pts = points[keep]
    colours = rgb[keep]
    cam = pts @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    front = z > 1e-6
    cam, z, colours = cam[front], z[front], colours[front]
    u = K[0, 0] * cam[:, 0] / z + K[0, 2] - 0.5  # continuous pixel index (centres at integers)
    v = K[1, 1] * cam[:, 1] / z + K[1, 2] - 0.5
    u0, v0 = np.floor(u).astype(np.int64), np.floor(v).astype(np.int64)
    fu, fv = u - u0, v - v0
    corners = [(u0, v0, (1 - fu) * (1 - fv)), (u0 + 1, v0, fu * (1 - fv)), (u0, v0 + 1, (1 - fu) * fv),
               (u0 + 1, v0 + 1, fu * fv)]
    z_front = np.full(height * width, np.inf)
    targets = []
    for cu, cv, weight in corners:
        inside = (cu >= 0) & (cu < width) & (cv >= 0) & (cv < height) & (weight > 1e-6)
        index = cv[inside] * width + cu[inside]
        np.minimum.at(z_front, index, z[inside])
        targets.append((index, weight[inside], inside))
    accumulated = np.zeros((height * width, 5))
    for index, weight, inside in targets:
        soft = weight * np.exp(-(z[inside] - z_front[index]) / (softness * z_front[index]))
        np.add.at(accumulated, index, np.column_stack([colours[inside] * soft[:, None], z[inside] * soft, soft]))
    total = accumulated[:, 4]
    safe = np.maximum(total, 1e-12)[:, None]
    image = (accumulated[:, :3] / safe).reshape(height, width, 3)
    depth = (accumulated[:, 3] / safe[:, 0]).reshape(height, width)
    return image, depth, total.reshape(height, width)


def edge_mesh(points: np.ndarray, unreliable: np.ndarray) -> o3d.t.geometry.RaycastingScene | None:
    """The surface spanned by unreliable pixels, ready for ray casting (None when there are none).

    The mesh: the two triangles of every 2x2 pixel quad that touches an unreliable pixel (these stretch
    across depth discontinuities). Built once per input, cast from every target camera.
    """
    width = unreliable.shape[1]
    touched = (unreliable[:-1, :-1] | unreliable[1:, :-1] | unreliable[:-1, 1:] | unreliable[1:, 1:])
    valid = points[..., 2] > 0
    quad_valid = valid[:-1, :-1] & valid[1:, :-1] & valid[:-1, 1:] & valid[1:, 1:]
    rows, cols = np.nonzero(touched & quad_valid)
    if len(rows) == 0:
        return None
    a = rows * width + cols
    b, c, d = a + 1, a + width, a + width + 1
    triangles = np.concatenate([np.stack([a, c, b], 1), np.stack([b, c, d], 1)]).astype(np.uint32)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(points.reshape(-1, 3).astype(np.float32)), o3d.core.Tensor(triangles))
    return scene


def edge_mesh_depth(scene: o3d.t.geometry.RaycastingScene | None, K: np.ndarray, world_to_cam: np.ndarray,
                    size: tuple[int, int]) -> np.ndarray:
    """Z-depth of the edge mesh in a target camera (inf where the ray misses or there is no mesh)."""
    target_w, target_h = size
    if scene is None:
        return np.full((target_h, target_w), np.inf)
    cam_to_world = np.linalg.inv(world_to_cam)
    directions = pixel_directions(torch.from_numpy(np.asarray(K, np.float64)), target_h, target_w).numpy()
    world_dirs = directions @ cam_to_world[:3, :3].T  # unnormalised: t_hit is then the z-depth
    origins = np.broadcast_to(cam_to_world[:3, 3], world_dirs.shape)
    rays = np.concatenate([origins, world_dirs], -1).reshape(-1, 6).astype(np.float32)
    hit = scene.cast_rays(o3d.core.Tensor(rays))["t_hit"].numpy().reshape(target_h, target_w)
    return np.where(np.isfinite(hit), hit, np.inf)


@dataclass
class _Cache:
    """The unprojected input: colours, points, unreliable pixels and their edge mesh."""

    rgb: np.ndarray
    points: np.ndarray
    unreliable: np.ndarray
    edges: o3d.t.geometry.RaycastingScene | None


class CacheTeacher:
    """GEN3C's 3D cache as a teacher: warp one RGB-D frame along camera trajectories."""

    def __init__(self, behind_threshold: float = BEHIND_THRESHOLD, softness: float = 0.01,
                 min_weight: float = 0.3, edge_rule: str = "curvature"):
        """``edge_rule``: "gen3c" (5x5 range > 5 % of the mean, as GEN3C at 704x1280) or "curvature"
        (inverse-depth second difference, lyra_sim.single_view.lift): at 64x48 the GEN3C rule flagged 68 % of
        a slanted floor as unreliable, the curvature rule keeps planes at every resolution."""
        if edge_rule not in ("gen3c", "curvature"):
            raise ValueError(f"edge_rule: expected 'gen3c' or 'curvature', got {edge_rule!r}")
        self.behind_threshold, self.softness, self.min_weight = behind_threshold, softness, min_weight
        self.edge_rule = edge_rule

    def unreliable(self, depth: np.ndarray) -> np.ndarray:
        if self.edge_rule == "gen3c":
            return unreliable_depth(depth)
        return unreliable_edges(depth) | (depth <= 0)

    def _cache(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray) -> _Cache:
        rgb = np.asarray(rgb, dtype=np.float64)
        if rgb.max() > 1.0:
            rgb = rgb / 255.0
        depth = np.asarray(depth, dtype=np.float64)
        points = unproject_depth(depth, np.asarray(K, dtype=np.float64))
        unreliable = self.unreliable(depth)
        return _Cache(rgb, points, unreliable, edge_mesh(points, unreliable))

    def render(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, cameras: Camera) -> TeacherTrajectory:
        """Frames seen by ``cameras`` (world = the input camera's OpenCV frame)."""
        return self._warp(self._cache(rgb, depth, K), cameras)

    def _warp(self, cache: _Cache, cameras: Camera) -> TeacherTrajectory:
        frames, depths, masks = [], [], []
        for i in range(len(cameras)):
            camera = cameras[i]
            world_to_cam = camera.world_to_cam.reshape(4, 4).double().numpy()
            K_target = camera.K.reshape(3, 3).double().numpy()
            size = (camera.width, camera.height)
            image, z, weight = forward_warp(cache.rgb, cache.points, ~cache.unreliable, K_target, world_to_cam, size,
                                            self.softness)
            valid = weight >= self.min_weight
            behind = z > edge_mesh_depth(cache.edges, K_target, world_to_cam, size) + self.behind_threshold
            valid &= ~behind
            frames.append(np.where(valid[..., None], image, 0.0))
            depths.append(np.where(valid, z, 0.0))
            masks.append(valid)
        return TeacherTrajectory(torch.from_numpy(np.stack(frames)).float(), torch.from_numpy(np.stack(depths)).float(),
                                 torch.from_numpy(np.stack(masks)), cameras)

    def trajectories(self, rgb: np.ndarray, depth: np.ndarray, K: np.ndarray, num_frames: int,
                     order: tuple[int, ...] = LYRA_VIEW_ORDER) -> list[TeacherTrajectory]:
        """Lyra's six trajectories (scene scale = median input depth) through the cache."""
        height, width = depth.shape
        scale = float(np.median(depth[depth > 0])) if (depth > 0).any() else 1.0
        cameras = lyra_trajectories(torch.as_tensor(K, dtype=torch.float32), width, height, num_frames=num_frames,
                                    scene_scale=scale, order=order)
        cache = self._cache(rgb, depth, K)  # unprojection and edge mesh once for all trajectories
        results = []
        for index, camera in zip(order, cameras, strict=True):
            trajectory = self._warp(cache, camera)
            trajectory.index = index
            results.append(trajectory)
        return results


class Gen3cTeacher:
    """An official GEN3C output folder: RGB frames from the MP4s, cameras from pose/intrinsics, no depth."""

    def __init__(self, path: str | os.PathLike, name: str | None = None):
        self.scene = read_teacher_dir(path, name)

    def trajectories(self, order: tuple[int, ...] = LYRA_VIEW_ORDER) -> list[TeacherTrajectory]:
        import imageio.v3 as iio

        reference = self.scene.ordered(order)[0].cam_to_world[0]
        results = []
        for view in self.scene.ordered(order):
            if view.rgb_path is None:
                raise FileNotFoundError(f"{self.scene.root}/{view.index}/rgb/{self.scene.name}.mp4: missing")
            frames = torch.from_numpy(np.stack(list(iio.imiter(view.rgb_path)))).float() / 255.0
            height, width = frames.shape[1:3]
            relative = relative_poses(view.cam_to_world, reference)
            cameras = Camera(view.K().float(), torch.linalg.inv(relative).float(), width, height)
            masks = torch.ones(frames.shape[:3], dtype=torch.bool)
            results.append(TeacherTrajectory(frames, None, masks, cameras, view.index))
        return results
