"""Collision proxies: render depth of a Gaussian world from many virtual cameras, fuse with open3d's TSDF,
extract and clean a triangle mesh, and keep the floor as a plane."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
import open3d.core as o3c
import torch
from tqdm.auto import tqdm

from lyra_sim.camera import Camera, look_at_matrix
from lyra_sim.io.atomic import atomic_path
from lyra_sim.rendering import render
from lyra_sim.trajectories import lyra_trajectories
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld, WorldError

PROXY_IMAGE_SIZE = (160, 120)
PROXY_FOV_DEG = 90.0


@dataclass
class CollisionMesh:
    """A triangle mesh in the world's frame. ``faces[:obstacle_faces]`` are obstacles, the rest the floor."""

    vertices: np.ndarray  # (V, 3) float64
    faces: np.ndarray  # (F, 3) int64
    obstacle_faces: int
    floor_z: float | None = None  # the floor plane z = floor_z (aligned worlds), None when not known
    info: dict = field(default_factory=dict)

    @property
    def obstacle_mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(vertices, faces) of the obstacles only (compact)."""
        faces = self.faces[: self.obstacle_faces]
        used, inverse = np.unique(faces, return_inverse=True)
        return self.vertices[used], inverse.reshape(-1, 3)

    def to_open3d(self) -> o3d.geometry.TriangleMesh:
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(self.vertices),
                                         o3d.utility.Vector3iVector(self.faces.astype(np.int32)))  # fmt: skip
        mesh.compute_vertex_normals()
        mesh.triangle_normals = o3d.utility.Vector3dVector()  # OBJ stores vertex normals only
        return mesh

    def save(self, path: str | os.PathLike) -> Path:
        """Write OBJ / PLY / STL (by suffix) atomically with open3d."""
        path = Path(path)
        if path.suffix.lower() not in (".obj", ".ply", ".stl", ".off", ".gltf", ".glb"):
            raise ValueError(f"{path}: expected a mesh file suffix (.obj, .ply, .stl, ...)")
        with atomic_path(path) as tmp:
            tmp_with_suffix = tmp.with_suffix(path.suffix)
            if not o3d.io.write_triangle_mesh(str(tmp_with_suffix), self.to_open3d(), write_ascii=False):
                raise OSError(f"{path}: open3d could not write the mesh")
            tmp_with_suffix.replace(tmp)
        return path


def _is_aligned(world: GaussianWorld) -> bool:
    return world.frame == "z_up" and "alignment" in world.info


def _reference_camera(world: GaussianWorld) -> np.ndarray:
    """Camera-to-world of the generating camera (identity for a world in its camera's OpenCV frame)."""
    if _is_aligned(world):
        return np.asarray(world.info["alignment"]["camera_to_world"], dtype=np.float64)
    if world.frame == "opencv":
        return np.eye(4)
    raise WorldError("proxy cameras: a z_up world needs info['alignment'] (use lyra_sim.align.align_world)")


def proxy_cameras(world: GaussianWorld, image_size: tuple[int, int] = PROXY_IMAGE_SIZE,
                  fov_deg: float = PROXY_FOV_DEG, ring: int = 12) -> Camera:
    """Views that cover a world: Lyra's six trajectories around the generating camera plus two rings of
    cameras standing inside the scene looking outwards (15 and 50 degrees down)."""
    width, height = image_size
    K = Camera.intrinsics_from_fov(width, height, fov_deg)
    reference = torch.from_numpy(_reference_camera(world)).float()
    core = _scene_core(world)
    depth = float(torch.median(torch.linalg.norm(core.means.float() - reference[:3, 3], dim=1)))
    world_to_cams = [
        torch.linalg.inv(reference @ trajectory.cam_to_world)  # trajectories are relative to the first camera
        for trajectory in lyra_trajectories(K, width, height, num_frames=8, scene_scale=max(depth, 1e-3))
    ]
    lo, hi = core.bounds(quantile=0.02)
    centre = 0.5 * (lo + hi)
    if world.frame == "z_up":
        up, across = torch.tensor([0.0, 0.0, 1.0]), (torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 1, 0]))
        eye = torch.tensor([float(centre[0]), float(centre[1]), float(reference[2, 3])])
    else:  # OpenCV frame: up is -y, the horizontal plane is x-z
        up, across = torch.tensor([0.0, -1.0, 0.0]), (torch.tensor([1.0, 0, 0]), torch.tensor([0.0, 0, 1]))
        eye = centre.float()
    for pitch in (math.radians(15.0), math.radians(50.0)):
        for k in range(ring):
            yaw = 2 * math.pi * k / ring
            direction = math.cos(yaw) * across[0] + math.sin(yaw) * across[1]
            direction = math.cos(pitch) * direction - math.sin(pitch) * up
            world_to_cams.append(look_at_matrix(eye.numpy(), (eye + direction).numpy(), up=up.numpy()))
    w2c = torch.cat([m.reshape(-1, 4, 4) for m in world_to_cams]).float()
    return Camera(K.expand(len(w2c), 3, 3), w2c, width, height)


def _depth_views(world: GaussianWorld, cameras: Camera, progress: bool):
    for i in tqdm(range(len(cameras)), desc="proxy depth views", unit="view", disable=not progress):
        camera = cameras[i]
        with torch.no_grad():
            result = render(world, camera, background=(0, 0, 0))
        depth = result.surface_depth()
        depth = (depth.squeeze(-1) if depth.dim() == 3 else depth).numpy().astype(np.float32)
        yield depth, camera.K.reshape(3, 3).numpy(), camera.world_to_cam.reshape(4, 4).double().numpy()


def fuse_depth(views, voxel_size: float, far: float) -> o3d.geometry.TriangleMesh:
    """TSDF fusion of (depth (H, W) metres, K, world_to_cam) views with open3d's VoxelBlockGrid.

    (The legacy ScalableTSDFVolume of open3d 0.20 integrates nothing here; the tensor API works.)
    The grid is sized to the blocks the views touch, so memory follows the scene, not a fixed cap.
    """
    views = [(np.ascontiguousarray(d, np.float32), np.asarray(K, np.float64), np.asarray(e, np.float64))
             for d, K, e in views if (np.asarray(d) > 0).any()]  # fmt: skip  (empty views touch no block)
    trunc = 4.0
    probe = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (o3c.float32, o3c.float32, o3c.float32),
                                          ((1), (1), (3)), voxel_size, 8, 1)  # fmt: skip
    blocks = [probe.compute_unique_block_coordinates(o3d.t.geometry.Image(o3c.Tensor(d)), o3c.Tensor(K),
                                                     o3c.Tensor(e), 1.0, far, trunc).numpy()
              for d, K, e in views]  # fmt: skip
    count = len(np.unique(np.concatenate(blocks), axis=0)) if blocks else 0
    grid = o3d.t.geometry.VoxelBlockGrid(("tsdf", "weight", "color"), (o3c.float32, o3c.float32, o3c.float32),
                                         ((1), (1), (3)), voxel_size, 8, max(int(count * 1.2) + 16, 64))  # fmt: skip
    for (depth, K, world_to_cam), coords in zip(views, blocks, strict=True):
        depth_image = o3d.t.geometry.Image(o3c.Tensor(depth))
        color = o3d.t.geometry.Image(o3c.Tensor(np.zeros((*depth.shape, 3), np.float32)))
        intrinsic, extrinsic = o3c.Tensor(K), o3c.Tensor(world_to_cam)
        grid.integrate(o3c.Tensor(coords), depth_image, color, intrinsic, intrinsic, extrinsic, 1.0, far, trunc)
    if count == 0:
        return o3d.geometry.TriangleMesh()
    return grid.extract_triangle_mesh(weight_threshold=0.5).to_legacy()


def fill_small_holes(vertices: np.ndarray, faces: np.ndarray, max_perimeter: float) -> tuple[np.ndarray, np.ndarray]:
    """Close boundary loops shorter than ``max_perimeter`` with a fan around their centroid.

    (open3d 0.20's tensor ``fill_holes`` added triangles that reference uninitialised vertices here, so
    this small, checkable version is used instead.) Loops through non-manifold vertices are left open.
    """
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = directed[:, 0] * len(vertices) + directed[:, 1]
    reverse = directed[:, 1] * len(vertices) + directed[:, 0]
    boundary = directed[~np.isin(reverse, key)]
    starts, counts = np.unique(boundary[:, 0], return_counts=True)
    branching = set(starts[counts > 1].tolist())
    following = {int(u): int(v) for u, v in boundary if int(u) not in branching}
    new_vertices, new_faces, visited = [], [], set()
    for first in list(following):
        if first in visited:
            continue
        loop, current = [], first
        while current in following and current not in visited:
            visited.add(current)
            loop.append(current)
            current = following[current]
        if current != first or len(loop) < 3:
            continue
        points = vertices[loop]
        perimeter = float(np.linalg.norm(points - np.roll(points, -1, axis=0), axis=1).sum())
        if perimeter > max_perimeter:
            continue
        centre = len(vertices) + len(new_vertices)
        new_vertices.append(points.mean(axis=0))
        # Boundary edge u -> v belongs to a face running u -> v; the patch runs v -> u.
        new_faces += [[v, u, centre] for u, v in zip(loop, loop[1:] + loop[:1], strict=True)]
    if not new_faces:
        return vertices, faces
    return np.concatenate([vertices, np.array(new_vertices)]), np.concatenate([faces, np.array(new_faces)])


def clean_mesh(mesh: o3d.geometry.TriangleMesh, voxel_size: float, triangle_budget: int,
               min_component_fraction: float) -> o3d.geometry.TriangleMesh:
    """Drop small pieces, fill small holes, decimate to the triangle budget."""
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    mesh.remove_duplicated_vertices()
    if len(mesh.triangles):
        clusters, counts, _ = mesh.cluster_connected_triangles()
        clusters, counts = np.asarray(clusters), np.asarray(counts)
        small = counts[clusters] < max(min_component_fraction * len(clusters), 1)
        mesh.remove_triangles_by_mask(small)
        mesh.remove_unreferenced_vertices()
    if len(mesh.triangles):
        vertices, faces = fill_small_holes(np.asarray(mesh.vertices), np.asarray(mesh.triangles),
                                           max_perimeter=4.0 * math.pi * voxel_size)  # fmt: skip
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(faces.astype(np.int32)))  # fmt: skip
    if len(mesh.triangles) > triangle_budget:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=triangle_budget)
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    return mesh


def _floor_quad(lo: np.ndarray, hi: np.ndarray, z: float, margin: float) -> tuple[np.ndarray, np.ndarray]:
    x0, y0 = lo[:2] - margin
    x1, y1 = hi[:2] + margin
    vertices = np.array([[x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    return vertices, np.array([[0, 1, 2], [0, 2, 3]])


def _scene_core(world: GaussianWorld) -> GaussianWorld:
    """The observed Gaussians when completion added others (a completed floor reaches far beyond the scene)."""
    return world.observed_only() if bool(world.observed.any()) and not bool(world.observed.all()) else world


def default_voxel_size(world: GaussianWorld) -> float:
    """1/160 of the scene's largest extent (2 %-98 % quantiles of the observed centres)."""
    lo, hi = _scene_core(world).bounds(quantile=0.02)
    return max(float((hi - lo).max()) / 160.0, 1e-4)


def _proxy_for(world: GaussianWorld, voxel_size: float | None, triangle_budget: int, cameras: Camera | None,
               extra_views: list, min_component_fraction: float, keep_floor: bool, progress: bool) -> CollisionMesh:
    if len(world) == 0:
        raise WorldError("build_collision_proxy: the world is empty")
    voxel = voxel_size or default_voxel_size(world)
    cameras = cameras if cameras is not None else proxy_cameras(world)
    lo, hi = world.bounds(quantile=0.0)
    core_lo, core_hi = _scene_core(world).bounds(quantile=0.0)
    far = float((core_hi - core_lo).norm()) * 1.5  # completed surfaces farther out are not fused
    mesh = fuse_depth(list(_depth_views(world, cameras, progress)) + list(extra_views), voxel, far)
    floor_z = None
    if keep_floor and _is_aligned(world):
        floor_z = 0.0
        # The floor becomes an exact plane: drop fused triangles lying in the floor band (before cleaning, so a
        # large completed floor costs no decimation time), add a quad afterwards.
        band = 3.0 * voxel  # the fused floor sits up to ~2 voxels off z = 0 (surfel thickness, grazing views)
        vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)
        if len(faces):
            mesh.remove_triangles_by_mask((np.abs(vertices[faces][:, :, 2] - floor_z) < band).all(axis=1))
            mesh.remove_unreferenced_vertices()
    mesh = clean_mesh(mesh, voxel, triangle_budget, min_component_fraction)
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)
    obstacle_faces = len(faces)
    if floor_z is not None:
        quad_v, quad_f = _floor_quad(lo.numpy(), hi.numpy(), floor_z, margin=5 * voxel)
        faces = np.concatenate([faces, quad_f + len(vertices)])
        vertices = np.concatenate([vertices, quad_v])
    info = {"voxel_size": voxel, "floor_band": 3.0 * voxel if floor_z is not None else 0.0,
            "views": len(cameras) + len(extra_views), "triangles": len(faces)}
    return CollisionMesh(vertices, faces, obstacle_faces, floor_z, info)


def build_collision_proxy(
    world: GaussianWorld | DynamicGaussianWorld,
    voxel_size: float | None = None,
    triangle_budget: int = 30_000,
    cameras: Camera | None = None,
    extra_views: list | None = None,
    min_component_fraction: float = 0.01,
    keep_floor: bool = True,
    progress: bool = True,
) -> CollisionMesh | list[CollisionMesh]:
    """Collision mesh of a world, in the world's frame (one per keyframe for a dynamic world).

    Depth is rendered from the Gaussians (``proxy_cameras``: Lyra's trajectories and views from inside),
    pixels with alpha < SURFACE_ALPHA (0.5) are left out, views are fused in a TSDF of ``voxel_size`` (default: 1/160 of
    the scene extent), and the mesh is cleaned (components under ``min_component_fraction`` of the
    triangles dropped, holes up to 4 voxels filled, decimated to ``triangle_budget``). For an aligned
    world (lyra_sim.align) the floor is replaced by an exact plane at z = 0. ``extra_views`` adds measured
    (depth metres (H, W), K (3, 3), world_to_cam (4, 4)) views, e.g. the RGB-D input itself.
    """
    extra_views = extra_views or []
    if isinstance(world, DynamicGaussianWorld):
        return [_proxy_for(w, voxel_size, triangle_budget, cameras, extra_views, min_component_fraction,
                           keep_floor, progress) for w in world.worlds]  # fmt: skip
    return _proxy_for(world, voxel_size, triangle_budget, cameras, extra_views, min_component_fraction, keep_floor,
                      progress)  # fmt: skip
