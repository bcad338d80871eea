"""Collision proxies that match what the camera sees.

Measured depth first: each measured view (the RGB-D input, capture frames) becomes a mesh of its depth layers
(lyra_sim.physics.measured) whose edges stop at depth jumps. The splats fill in what no depth frame saw: the
MEDIAN depth (where transmittance crosses 0.5, so soft edges give the front or the back surface, never a
surface floating between them) of the Gaussians the measured views do not explain (invented ones, thin
edges) is rendered from many virtual
cameras and fused in a TSDF (lyra_sim.geometry.tsdf) with the measured views; fused triangles lying on a
measured surface and facing the same way are dropped (the measurement is kept instead), and so are those a
measured view saw through or that lie deeper behind a thin measured run (a leg) than it is wide. The floor of an
aligned world is a box of real thickness whose top is z = 0, the walls the completion found are boxes too
(lyra_sim.physics.walls). A world that came without measured views (a splat file from elsewhere) has its own
median depth from the camera it was made from stand in for them (lyra_sim.physics.splat_collider: floaters
left out, the scene's extent from what that view sees, its walls found there). Each proxy of an aligned world
says how well it agrees with the picture (lyra_sim.physics.agreement); ``info["stage_seconds"]`` times the
build.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import open3d as o3d
import torch
from tqdm.auto import tqdm

from lyra_sim.camera import Camera, look_at_matrix
from lyra_sim.defaults import COLLIDER_TRIANGLE_BUDGET
from lyra_sim.geometry.tsdf import TRUNCATION_VOXELS, DepthView, fuse_views, surface_mesh
from lyra_sim.io.atomic import atomic_path
from lyra_sim.physics.agreement import collider_agreement, collider_reach
from lyra_sim.physics.floaters import find_floaters
from lyra_sim.physics.measured import behind_thin_runs, depth_mesh, seen_through
from lyra_sim.physics.splat_collider import (
    SPLAT_BACKFACE_VOXELS,
    SPLAT_EDGE_PX,
    SPLAT_TRUNCATION_VOXELS,
    SPLAT_UNDER_VOXELS,
    evidence_info,
    splat_evidence,
)
from lyra_sim.physics.walls import WALL_THICKNESS_M, WallBox, on_walls, wall_box, wall_planes
from lyra_sim.rendering.cpu import median_depth_cpu
from lyra_sim.trajectories import lyra_trajectories
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld, WorldError

PROXY_IMAGE_SIZE = (160, 120)
PROXY_FOV_DEG = 90.0
TRAJECTORY_FRAMES = 4  # views along each of Lyra's six trajectories beside measured views
UNMEASURED_TRAJECTORY_FRAMES = 8  # ... and without any (the renders are all the evidence: 4 halves the seen share)
TRIANGLE_BUDGET = COLLIDER_TRIANGLE_BUDGET
MEASURED_SHARE = 0.6  # of the triangle budget, for the measured views' meshes
MEASURED_OVERSAMPLE = 4  # measured meshes are sampled up to this many times their share, then decimated
DUPLICATE_VOXELS = 2.0  # a fused triangle this close to a measured surface, facing the same way, is dropped
DUPLICATE_COS = 0.7  # "the same way": the cosine between the two normals exceeds this
MEASURED_MIN_COMPONENT = 0.01  # fused pieces under this share of the triangles are dropped beside measured views
FUSED_MIN_COMPONENT = 0.001  # ... and without any
FLOOR_THICKNESS = 0.2  # metres in a metric world: the floor box under z = 0
FLOOR_BOX_TRIANGLES = 12  # the floor box's share of the triangle budget
FREE_SPACE_VOXELS = 2.0  # a fused triangle this far in front of what a measured view saw behind it is dropped
FLOOR_NORMAL_Z = 0.7  # measured triangles in the floor band are floor when their normal's z exceeds this
MEASURED_FLOOR_VOXELS = 1.0  # ... and the band of measured triangles (they lie on the floor the alignment fitted;
#                              the fused floor's 3 voxels would cut a shelf's bottom board 6 cm up)
BOUNDS_SAMPLE = 100_000  # centres whose quantiles give the scene's extent
EDGE_PIXELS = 3  # Gaussians this near a measured depth jump are rendered, not taken as measured
#: The collider's TSDF truncation beside measured views: a thin layer seen from one side (the invented back just
#: under a table top, seen from above) is negative this far behind it, and a view from the other side closes it
#: there: at 4 voxels (12 cm) a 3 cm table top hung a 10 cm slab under itself. Without measured views the renders
#: are all the evidence and disagree by more than that between views: lyra_sim.geometry.tsdf's 4 (at 1.5 the
#: splat-file table's obstacles fell apart, 0.61 -> 0.00 of rays within 5 cm).
MEASURED_TRUNCATION_VOXELS = 1.5
#: Slack (plus 1 % of the range) of ``_bulk_behind_thin_runs``: a fused triangle goes when it lies this much beyond
#: a thin measured run's depth plus its width, and this much in front of the background beside the run.
THIN_RUN_MARGIN_VOXELS = 1.0
EXPLAINED_VOXELS = 2.0  # an observed Gaussian this close (plus 1 % of its depth) to a measured depth is explained


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
                                         o3d.utility.Vector3iVector(self.faces.astype(np.int32)))
        mesh.compute_vertex_normals()
        mesh.triangle_normals = o3d.utility.Vector3dVector()  # OBJ stores vertex normals only
        return mesh

    def save(self, path: str | os.PathLike) -> Path:
        """Write OBJ / PLY / STL (by suffix) atomically with open3d."""
        path = Path(path)
        if path.suffix.lower() not in (".obj", ".ply", ".stl", ".off", ".gltf", ".glb"):
            raise ValueError(f"{path}: expected a mesh file suffix (.obj, .ply, .stl, ...)")
        if path.suffix.lower() == ".glb":
            with atomic_path(path) as tmp:
                write_glb(tmp, self.vertices, self.faces)
            return path
        with atomic_path(path) as tmp:
            tmp_with_suffix = tmp.with_suffix(path.suffix)
            if not o3d.io.write_triangle_mesh(str(tmp_with_suffix), self.to_open3d(), write_ascii=False):
                raise OSError(f"{path}: open3d could not write the mesh")
            tmp_with_suffix.replace(tmp)
        return path


def write_glb(path: str | os.PathLike, vertices: np.ndarray, faces: np.ndarray) -> None:
    """A binary glTF (one mesh, float32 positions, uint32 indices) written with pygltflib. (open3d 0.20's GLB
    writer puts the buffer in a data URI that its own reader, ASSIMP, rejects.)"""
    import pygltflib

    positions = np.ascontiguousarray(vertices, np.float32)
    indices = np.ascontiguousarray(faces.reshape(-1), np.uint32)
    blob = indices.tobytes() + positions.tobytes()
    gltf = pygltflib.GLTF2(
        scene=0, scenes=[pygltflib.Scene(nodes=[0])], nodes=[pygltflib.Node(mesh=0)],
        meshes=[pygltflib.Mesh(primitives=[pygltflib.Primitive(attributes=pygltflib.Attributes(POSITION=1),
                                                               indices=0)])],
        accessors=[
            pygltflib.Accessor(bufferView=0, componentType=pygltflib.UNSIGNED_INT, count=int(indices.size),
                               type=pygltflib.SCALAR),
            pygltflib.Accessor(bufferView=1, componentType=pygltflib.FLOAT, count=len(positions),
                               type=pygltflib.VEC3, min=positions.min(axis=0).tolist(),
                               max=positions.max(axis=0).tolist()),
        ],
        bufferViews=[
            pygltflib.BufferView(buffer=0, byteOffset=0, byteLength=indices.nbytes,
                                 target=pygltflib.ELEMENT_ARRAY_BUFFER),
            pygltflib.BufferView(buffer=0, byteOffset=indices.nbytes, byteLength=positions.nbytes,
                                 target=pygltflib.ARRAY_BUFFER),
        ],
        buffers=[pygltflib.Buffer(byteLength=len(blob))],
    )
    gltf.set_binary_blob(blob)
    gltf.save_binary(str(path))


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
                  fov_deg: float = PROXY_FOV_DEG, ring: int = 12, core_means: np.ndarray | None = None,
                  frames: int = TRAJECTORY_FRAMES) -> Camera:
    """Views that cover a world: Lyra's six trajectories around the generating camera (``frames`` views each)
    plus two rings of cameras standing inside the scene looking outwards (15 and 50 degrees down)."""
    width, height = image_size
    K = Camera.intrinsics_from_fov(width, height, fov_deg)
    reference = torch.from_numpy(_reference_camera(world)).float()
    sample = _core_means(world) if core_means is None else core_means
    depth = float(np.median(np.linalg.norm(sample - reference[:3, 3].numpy(), axis=1)))
    world_to_cams = [
        torch.linalg.inv(reference @ trajectory.cam_to_world)  # trajectories are relative to the first camera
        for trajectory in lyra_trajectories(K, width, height, num_frames=frames,
                                            scene_scale=max(depth, 1e-3))
    ]
    lo, hi = (torch.from_numpy(b) for b in _core_bounds(sample))
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
    """Median depth (lyra_sim.rendering.cpu.median_depth_cpu) of ``world`` from each camera, as DepthViews."""
    for i in tqdm(range(len(cameras)), desc="proxy depth views", unit="view", disable=not progress):
        camera = cameras[i]
        with torch.no_grad():
            depth = median_depth_cpu(world, camera, near=0.01, far=1e10, eps2d=0.3)[0].numpy()
        yield DepthView(depth.astype(np.float32), camera.K.reshape(3, 3).double().numpy(),
                        camera.world_to_cam.reshape(4, 4).double().numpy())


def _as_depth_view(view) -> DepthView:
    return view if isinstance(view, DepthView) else DepthView(*view)


def fuse_depth(views, voxel_size: float, far: float,
               truncation_voxels: float = TRUNCATION_VOXELS) -> o3d.geometry.TriangleMesh:
    """TSDF fusion (lyra_sim.geometry.tsdf) of DepthViews or (depth (H, W) metres, K, world_to_cam) views."""
    vertices, faces = surface_mesh(fuse_views([_as_depth_view(v) for v in views], voxel_size, far,
                                              truncation_voxels))
    return o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(faces.astype(np.int32)))


def measured_meshes(views: list[DepthView], max_triangles: int, up=None,
                    edge_px: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """One mesh (lyra_sim.physics.measured.depth_mesh) of all measured views, triangles facing their camera."""
    vertices, faces, count = [], [], 0
    for view in views:
        v, f = depth_mesh(view.depth, view.K, view.world_to_cam, max(max_triangles // max(len(views), 1), 2), up,
                          edge_px)
        if len(f) == 0:
            continue
        eye = np.linalg.inv(view.world_to_cam)[:3, 3]
        normals = np.cross(v[f[:, 1]] - v[f[:, 0]], v[f[:, 2]] - v[f[:, 0]])
        flip = (normals * (eye - v[f[:, 0]])).sum(axis=1) < 0
        f = np.where(flip[:, None], f[:, ::-1], f)
        vertices.append(v)
        faces.append(f + count)
        count += len(v)
    if not faces:
        return np.zeros((0, 3)), np.zeros((0, 3), np.int64)
    return np.concatenate(vertices), np.concatenate(faces)


def _vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (not unit length) of a triangle mesh."""
    normals = np.zeros_like(vertices)
    corners = vertices[faces]
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    return normals


def _duplicates(mesh: o3d.geometry.TriangleMesh, measured: tuple[np.ndarray, np.ndarray], distance: float,
                opposite: bool = False) -> np.ndarray:
    """Fused triangles whose centre lies within ``distance`` of a measured vertex whose surface faces the same way
    (DUPLICATE_COS; measured vertices lie a pixel footprint apart, well under the two voxels asked for here), or
    the opposite way (``opposite``: cosine under -DUPLICATE_COS)."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    m_vertices, m_faces = measured
    if len(faces) == 0 or len(m_faces) == 0:
        return np.zeros(len(faces), bool)
    from scipy.spatial import cKDTree

    m_normals = _vertex_normals(m_vertices, m_faces)
    centres = vertices[faces].mean(axis=1)
    gap, nearest = cKDTree(m_vertices).query(centres, distance_upper_bound=distance, workers=-1)
    near = np.isfinite(gap)
    normals = np.cross(vertices[faces[:, 1]] - vertices[faces[:, 0]], vertices[faces[:, 2]] - vertices[faces[:, 0]])
    same_way = np.zeros(len(faces), bool)
    n_fused, n_measured = normals[near], m_normals[nearest[near]]
    cos = (n_fused * n_measured).sum(axis=1) / np.maximum(
        np.linalg.norm(n_fused, axis=1) * np.linalg.norm(n_measured, axis=1), 1e-12)
    same_way[near] = (-cos if opposite else cos) > DUPLICATE_COS  # a table top beside a measured front is none
    return near & same_way


def _under_measured_tops(mesh: o3d.geometry.TriangleMesh, measured: tuple[np.ndarray, np.ndarray], reach: float,
                         depth: float) -> np.ndarray:
    """Fused triangles whose centre lies at most ``depth`` below an up-facing measured vertex (normal's z over
    DUPLICATE_COS, z up) and less than ``reach`` from it along x and along y: the TSDF's underside of a thin top
    that only views from above saw (lyra_sim.physics.splat_collider.SPLAT_UNDER_VOXELS)."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    m_vertices, m_faces = measured
    if len(faces) == 0 or len(m_faces) == 0:
        return np.zeros(len(faces), bool)
    from scipy.spatial import cKDTree

    m_normals = _vertex_normals(m_vertices, m_faces)
    tops = m_vertices[m_normals[:, 2] > DUPLICATE_COS * np.linalg.norm(m_normals, axis=1)]
    if len(tops) == 0:
        return np.zeros(len(faces), bool)
    # A box query (Chebyshev distance under 0.5) in coordinates scaled so that the box spans +-reach across and
    # [0, depth] above the centre.
    scale = np.array([0.5 / reach, 0.5 / reach, 1.0 / depth])
    centres = (vertices[faces].mean(axis=1) + np.array([0.0, 0.0, 0.5 * depth])) * scale
    gap, _ = cKDTree(tops * scale).query(centres, p=np.inf, distance_upper_bound=0.5, workers=-1)
    return np.isfinite(gap)


def _decimated(vertices: np.ndarray, faces: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """open3d's quadric decimation of (vertices, faces) to ``budget`` triangles."""
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                     o3d.utility.Vector3iVector(faces.astype(np.int32)))
    mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=budget)
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)


def _in_measured_free_space(mesh: o3d.geometry.TriangleMesh, views: list[DepthView], margin: float) -> np.ndarray:
    """Fused triangles whose centre a measured view saw through (lyra_sim.physics.measured.seen_through). Space a
    depth camera looked through is empty, whatever the splats invented there."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    if len(faces) == 0:
        return np.zeros(0, bool)
    return seen_through(vertices[faces].mean(axis=1), views, margin)


def _bulk_behind_thin_runs(mesh: o3d.geometry.TriangleMesh, views: list[DepthView], margin: float) -> np.ndarray:
    """Fused triangles whose centre lies deeper behind a measured run the camera saw past on both sides than the
    run is wide (lyra_sim.physics.measured.behind_thin_runs): the completion gives a 3 cm table leg the 0.4 m back
    of its table, and robot cameras passing the leg look through there to what lies behind."""
    vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.triangles)
    if len(faces) == 0 or not views:
        return np.zeros(len(faces), bool)
    return behind_thin_runs(vertices[faces].mean(axis=1), views, margin)


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
                                           max_perimeter=4.0 * math.pi * voxel_size)
        mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices),
                                         o3d.utility.Vector3iVector(faces.astype(np.int32)))
    if len(mesh.triangles) > triangle_budget:
        mesh = mesh.simplify_quadric_decimation(target_number_of_triangles=triangle_budget)
    mesh.remove_degenerate_triangles()
    mesh.remove_unreferenced_vertices()
    return mesh


def floor_box(lo: np.ndarray, hi: np.ndarray, z: float, margin: float,
              thickness: float) -> tuple[np.ndarray, np.ndarray]:
    """A closed box (8 vertices, 12 outward triangles) whose top face is the floor z over [lo, hi] + margin."""
    x0, y0 = lo[:2] - margin
    x1, y1 = hi[:2] + margin
    bottom = z - thickness
    vertices = np.array([[x0, y0, bottom], [x1, y0, bottom], [x1, y1, bottom], [x0, y1, bottom],
                         [x0, y0, z], [x1, y0, z], [x1, y1, z], [x0, y1, z]])
    faces = np.array([[4, 5, 6], [4, 6, 7], [0, 2, 1], [0, 3, 2], [0, 1, 5], [0, 5, 4], [1, 2, 6], [1, 6, 5],
                      [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]])
    return vertices, faces


def _core_means(world: GaussianWorld) -> np.ndarray:
    """Centres (float64) of the observed Gaussians when completion added others (a completed floor reaches far
    beyond the scene), at most BOUNDS_SAMPLE of them (a fixed random choice: their quantiles are as good as
    all of them, and torch.quantile over 600k costs ~0.3 s per call)."""
    means = world.means.detach().cpu().numpy()
    observed = world.observed.cpu().numpy()
    if observed.any() and not observed.all():
        means = means[observed]
    if len(means) > BOUNDS_SAMPLE:
        means = means[np.random.default_rng(0).choice(len(means), BOUNDS_SAMPLE, replace=False)]
    return means.astype(np.float64)


def _core_bounds(core_means: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 2 % and 98 % quantiles of the core's centres (``_core_means``)."""
    lo, hi = np.quantile(core_means, [0.02, 0.98], axis=0)
    return lo.astype(np.float32), hi.astype(np.float32)


def default_voxel_size(world: GaussianWorld, core_means: np.ndarray | None = None) -> float:
    """1/160 of the scene's largest extent (2 %-98 % quantiles of the observed centres, ``_core_means``)."""
    lo, hi = _core_bounds(_core_means(world) if core_means is None else core_means)
    return max(float((hi - lo).max()) / 160.0, 1e-4)


def explained_by_views(means: np.ndarray, views: list[DepthView], tolerance: float) -> np.ndarray:
    """(N,) bool: centres lying on a surface a measured view meshed: within ``tolerance`` plus 1 % of the depth of
    the depth at their pixel, and more than EDGE_PIXELS from a depth jump (a thin leg or a silhouette is a line
    of pixels that its measured mesh may miss; the splats render it from the side). Those surfaces are in the
    collider as measured meshes already."""
    from scipy.ndimage import binary_dilation

    from lyra_sim.single_view.layers import split_layers

    explained = np.zeros(len(means), bool)
    for view in views:
        depth = np.asarray(view.depth, np.float64)
        valid = np.isfinite(depth) & (depth > 0)
        if valid.sum() < 4:
            continue
        edges = split_layers(np.where(valid, depth, np.median(depth[valid]))).any_edge | ~valid
        meshed = valid & ~binary_dilation(edges, iterations=EDGE_PIXELS)
        z, u, v, inside = view.pixels_of(means)
        ui, vi = u[inside].astype(int), v[inside].astype(int)
        on = np.zeros(len(means), bool)
        on[inside] = meshed[vi, ui] & (np.abs(depth[vi, ui] - z[inside]) <= tolerance + 0.01 * z[inside])
        explained |= on
    return explained


def _collider_world(world: GaussianWorld, views: list[DepthView], voxel: float) -> tuple[GaussianWorld | None,
                                                                                           dict | None]:
    """The Gaussians the collider renders (None: none left). Beside measured views, only those the views do not
    explain (``explained_by_views``: in a single-view world all but the invented ones), ~5x fewer to render; a
    world that came without measured depth loses its floaters instead."""
    if views:
        means = world.means.detach().cpu().numpy().astype(np.float64)
        keep = ~explained_by_views(means, views, EXPLAINED_VOXELS * voxel)
        return (world.subset(torch.from_numpy(keep)) if keep.any() else None), None
    report = find_floaters(world)
    kept = world.subset(torch.from_numpy(~report.mask)) if report.dropped else world
    return kept, report.as_dict()


class _Stages:
    """Seconds per build stage, in order (the proxy's ``info["stage_seconds"]``)."""

    def __init__(self, start: float):
        self.seconds: dict[str, float] = {}
        self._last = start

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.seconds[name] = round(now - self._last, 3)
        self._last = now


def _wall_boxes(world: GaussianWorld, views: list[DepthView], voxel: float,
                planes: list | None = None) -> list[WallBox]:
    """Boxes of the completion's walls (lyra_sim.physics.walls; or of ``planes``) from all the world's Gaussians."""
    planes = wall_planes(world) if planes is None else planes
    if not planes:
        return []
    means = world.means.detach().cpu().numpy().astype(np.float64)
    sigmas = world.scales.detach().cpu().numpy().max(axis=1).astype(np.float64)
    thickness = WALL_THICKNESS_M / (world.meters_per_unit or 1.0)
    boxes = [wall_box(plane, means, sigmas, views, voxel, thickness) for plane in planes]
    return [box for box in boxes if box is not None and len(box.faces)]


def _proxy_for(world: GaussianWorld, voxel_size: float | None, triangle_budget: int, cameras: Camera | None,
               extra_views: list, min_component_fraction: float, keep_floor: bool, progress: bool,
               agreement: bool, wall_boxes: bool) -> CollisionMesh:
    if len(world) == 0:
        raise WorldError("build_collision_proxy: the world is empty")
    start = time.perf_counter()
    views = [_as_depth_view(v) for v in extra_views]
    # A world that came without measured depth: its median depth from the view it was made for stands in for the
    # measurement (lyra_sim.physics.splat_collider), floaters left out; None when that view sees nothing.
    evidence = None if views else splat_evidence(world)
    if evidence is not None:
        views = evidence.views
    core = _core_means(world) if evidence is None else evidence.core_means
    voxel = voxel_size or default_voxel_size(world, core)
    frames = TRAJECTORY_FRAMES if views else UNMEASURED_TRAJECTORY_FRAMES
    cameras = cameras if cameras is not None else proxy_cameras(world, core_means=core, frames=frames)
    means = world.means.detach()
    lo, hi = means.amin(dim=0), means.amax(dim=0)  # (torch.quantile at 0 and 1 costs ~0.2 s per call here)
    far = collider_reach(core)  # completed surfaces farther out (the far backdrop): not fused
    if evidence is None:
        rendered, floaters = _collider_world(world, views, voxel)
    else:
        rendered, floaters = _collider_world(evidence.solid, views, voxel)[0], evidence.floaters.as_dict()
    stages = _Stages(start)
    stages.lap("setup")
    measured_budget = int(MEASURED_SHARE * triangle_budget) if views else 0
    # Sampled finer than the budget (MEASURED_OVERSAMPLE), decimated after the floor is cut out: quadric
    # decimation spends the triangles where the shape is (thin legs and posts), not on flat walls.
    up = (0.0, 0.0, 1.0) if _is_aligned(world) else None
    edge_px = SPLAT_EDGE_PX if evidence is not None else 0.5  # (splat_collider: a render's silhouettes spill)
    m_vertices, m_faces = measured_meshes(views, MEASURED_OVERSAMPLE * measured_budget, up, edge_px)
    stages.lap("measured_mesh")
    rendered_views = list(_depth_views(rendered, cameras, progress)) if rendered is not None else []
    stages.lap("render")
    measured = bool(views) and evidence is None  # depth a camera measured, not a splat file's own render
    truncation = SPLAT_TRUNCATION_VOXELS if evidence is not None else TRUNCATION_VOXELS  # (splat_collider)
    mesh = fuse_depth(rendered_views + views, voxel, far, MEASURED_TRUNCATION_VOXELS if measured else truncation)
    stages.lap("fuse")
    drop = _duplicates(mesh, (m_vertices, m_faces), DUPLICATE_VOXELS * voxel) | _in_measured_free_space(
        mesh, views, FREE_SPACE_VOXELS * voxel)
    if measured:  # (a splat file's source-view render is no measurement: lyra_sim.physics.splat_collider)
        drop |= _bulk_behind_thin_runs(mesh, views, THIN_RUN_MARGIN_VOXELS * voxel)
    if evidence is not None:  # the far side of the truncation band behind the source view's surfaces
        drop |= _duplicates(mesh, (m_vertices, m_faces), SPLAT_BACKFACE_VOXELS * voxel, opposite=True)
        if up is not None:
            drop |= _under_measured_tops(mesh, (m_vertices, m_faces), voxel, SPLAT_UNDER_VOXELS * voxel)
    mesh.remove_triangles_by_mask(drop)
    mesh.remove_unreferenced_vertices()
    floor_z = None
    band = 3.0 * voxel  # the fused floor sits up to ~2 voxels off z = 0 (surfel thickness, grazing views)
    if keep_floor and _is_aligned(world):
        floor_z = 0.0
        # The floor becomes an exact box: drop triangles lying in the floor band (before cleaning, so a large
        # completed floor costs no decimation time), add the box afterwards.
        vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)
        if len(faces):
            mesh.remove_triangles_by_mask((np.abs(vertices[faces][:, :, 2] - floor_z) < band).all(axis=1))
            mesh.remove_unreferenced_vertices()
        if len(m_faces):  # measured floor triangles (not the feet of walls and legs: those stand upright)
            corners = m_vertices[m_faces]
            normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])
            upright = np.abs(normals[:, 2]) < FLOOR_NORMAL_Z * np.linalg.norm(normals, axis=1)
            # a splat file's source view stands in for a measurement: its floor pixels were snapped onto the
            # plane, the wider band of the fused floor applies (as measured in bench_colliders --splat-files)
            floor_band = band if evidence is not None else MEASURED_FLOOR_VOXELS * voxel
            in_band = (np.abs(corners[:, :, 2] - floor_z) < floor_band).all(axis=1)
            m_faces = m_faces[~(in_band & ~upright)]
    planes = None if evidence is None else evidence.wall_planes
    walls = _wall_boxes(world, views, voxel, planes) if wall_boxes and _is_aligned(world) else []
    if walls:  # the walls become boxes: the triangles on their fronts go (before decimation: less to decimate)
        mesh.remove_triangles_by_mask(on_walls(walls, np.asarray(mesh.vertices), np.asarray(mesh.triangles)))
        mesh.remove_unreferenced_vertices()
        m_faces = m_faces[~on_walls(walls, m_vertices, m_faces)]
    stages.lap("walls")
    boxes = sum(len(wall.faces) for wall in walls) + (FLOOR_BOX_TRIANGLES if floor_z is not None else 0)
    if evidence is not None:  # walls found in the source view: their boxes come out of the budget first
        measured_budget = min(measured_budget, int(MEASURED_SHARE * max(triangle_budget - boxes, 0)))
    if len(m_faces) > measured_budget:
        m_vertices, m_faces = _decimated(m_vertices, m_faces, measured_budget)
    stages.lap("filter_decimate_measured")
    # Measured triangles are kept as measured (no component filtering: thin posts survive). The fused mesh fills
    # in: beside measured geometry its small pieces are debris (MEASURED_MIN_COMPONENT), alone they may be whole
    # objects (median depth keeps a shelf board a piece of its own: FUSED_MIN_COMPONENT).
    if min_component_fraction is None:
        min_component_fraction = MEASURED_MIN_COMPONENT if views else FUSED_MIN_COMPONENT
    mesh = clean_mesh(mesh, voxel, max(triangle_budget - len(m_faces) - boxes, 2), min_component_fraction)
    stages.lap("clean_fused")
    vertices, faces = np.asarray(mesh.vertices, np.float64), np.asarray(mesh.triangles, np.int64)
    if len(m_faces):
        used, inverse = np.unique(m_faces, return_inverse=True)
        faces = np.concatenate([faces, inverse.reshape(-1, 3) + len(vertices)])
        vertices = np.concatenate([vertices, m_vertices[used]])
    for wall in walls:
        faces = np.concatenate([faces, wall.faces + len(vertices)])
        vertices = np.concatenate([vertices, wall.vertices])
    obstacle_faces = len(faces)
    if floor_z is not None:
        thickness = FLOOR_THICKNESS / (world.meters_per_unit or 1.0)
        box_v, box_f = floor_box(lo.numpy(), hi.numpy(), floor_z, 5 * voxel, thickness)
        faces = np.concatenate([faces, box_f + len(vertices)])
        vertices = np.concatenate([vertices, box_v])
    info = {"voxel_size": voxel, "reach": far, "floor_band": band if floor_z is not None else 0.0,
            "views": len(cameras) + len(views), "fused_triangles": len(mesh.triangles),
            "measured_triangles": len(m_faces), "triangles": len(faces),
            "rendered_gaussians": 0 if rendered is None else len(rendered), "wall_boxes": len(walls),
            "build_seconds": time.perf_counter() - start, "stage_seconds": stages.seconds}
    if floaters is not None:
        info["floaters"] = floaters
    if evidence is not None:
        info["source_views"] = evidence_info(evidence)
    proxy = CollisionMesh(vertices, faces, obstacle_faces, floor_z, info)
    if agreement and _is_aligned(world):
        report = collider_agreement(world, proxy)
        proxy.info["agreement"] = report.as_dict()
        proxy.info["agreement_line"] = report.as_line()
    return proxy


def build_collision_proxy(
    world: GaussianWorld | DynamicGaussianWorld,
    voxel_size: float | None = None,
    triangle_budget: int = TRIANGLE_BUDGET,
    cameras: Camera | None = None,
    extra_views: list | None = None,
    min_component_fraction: float | None = None,
    keep_floor: bool = True,
    progress: bool = True,
    agreement: bool = True,
    wall_boxes: bool = True,
) -> CollisionMesh | list[CollisionMesh]:
    """Collision mesh of a world, in the world's frame (one per keyframe for a dynamic world).

    ``extra_views`` are measured views (DepthView or (depth metres (H, W), K (3, 3), world_to_cam (4, 4)),
    e.g. the RGB-D input): each becomes a mesh of its depth layers (up to MEASURED_SHARE of
    ``triangle_budget``), kept as measured. Median depth is rendered from the Gaussians (``proxy_cameras``:
    Lyra's trajectories and views from inside) and fused with
    the measured views in a TSDF of ``voxel_size`` (default: 1/160 of the scene extent); the fused mesh loses
    the triangles a measured surface already holds or a measured view saw through, and is cleaned (components
    under ``min_component_fraction`` of the triangles dropped, default MEASURED_MIN_COMPONENT beside measured
    views and FUSED_MIN_COMPONENT without; holes up to 4 voxels filled; decimated to the rest of the budget).
    For an aligned world (lyra_sim.align) the floor is a box whose top is z = 0, and
    ``agreement`` adds ``info["agreement"]`` (lyra_sim.physics.agreement) and its one-line summary
    ``info["agreement_line"]``. ``wall_boxes``: the walls the completion found (lyra_sim.physics.walls) become
    boxes of real thickness, replacing the triangles on their fronts. Without ``extra_views`` the world's median
    depth from its source camera, floaters left out, stands in for them (lyra_sim.physics.splat_collider;
    ``info["floaters"]`` and ``info["source_views"]`` say what was dropped and used; the walls found in that view
    become boxes).
    """
    extra_views = extra_views or []
    if isinstance(world, DynamicGaussianWorld):
        return [_proxy_for(w, voxel_size, triangle_budget, cameras, extra_views, min_component_fraction,
                           keep_floor, progress, agreement, wall_boxes) for w in world.worlds]
    return _proxy_for(world, voxel_size, triangle_budget, cameras, extra_views, min_component_fraction, keep_floor,
                      progress, agreement, wall_boxes)
