"""Bring a generated world into the simulation frame: Z up, floor at z = 0, metres.

The floor is the dominant plane the camera looks down on: a RANSAC plane fit over the Gaussian centres,
restricted to planes whose normal is within ``max_tilt_deg`` of the camera's up direction and that lie
below the camera (open3d's ``segment_plane`` finds the dominant plane, which is often a wall, and has no
such constraint, so the search is written here). The rotation takes the floor normal to +Z and the
camera's forward direction, projected on the floor, to +X. The scale comes, in order, from a
user-given ``scale``, the world's own metric scale, or an assumed camera height above the floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from lyra_sim.defaults import DEFAULT_CAMERA_HEIGHT
from lyra_sim.world import OPENCV_TO_Z_UP, DynamicGaussianWorld, GaussianWorld, WorldError


@dataclass(frozen=True)
class Plane:
    """Points p with normal . p + offset = 0; the normal points to the side the camera is on."""

    normal: np.ndarray
    offset: float
    inlier_fraction: float


def _up_and_forward(frame: str) -> tuple[np.ndarray, np.ndarray]:
    if frame == "opencv":
        return np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    return np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])


def _sample_points(world: GaussianWorld, max_points: int, min_opacity: float, rng: np.random.Generator) -> np.ndarray:
    means = world.means.detach().cpu().double().numpy()
    keep = world.opacities.detach().cpu().numpy() >= min_opacity
    points = means[keep] if keep.sum() >= 3 else means
    if len(points) > max_points:
        points = points[rng.choice(len(points), max_points, replace=False)]
    return points


def find_floor(
    world: GaussianWorld,
    camera_position=(0.0, 0.0, 0.0),
    max_tilt_deg: float = 45.0,
    threshold: float | None = None,
    iterations: int = 600,
    max_points: int = 60_000,
    min_opacity: float = 0.2,
    seed: int = 0,
    converge: bool = False,
) -> Plane:
    """RANSAC floor plane of a world (in its own frame), the camera above it: the lowest well-supported
    plane parallel to the best-supported near-horizontal one.

    ``threshold`` (inlier distance) defaults to 1 % of the median camera distance of the points. The plane is
    refined by least squares once in each of two bands, or with ``converge`` to a fixed point in each of three
    (for a completed world: see the comment below).
    """
    rng = np.random.default_rng(seed)
    points = _sample_points(world, max_points, min_opacity, rng)
    if len(points) < 3:
        raise WorldError("align: need at least 3 Gaussians to find a floor")
    camera = np.asarray(camera_position, dtype=np.float64)
    up, _ = _up_and_forward(world.frame)
    scale = float(np.median(np.linalg.norm(points - camera, axis=1)))
    threshold = threshold if threshold is not None else 0.01 * scale
    cos_tilt = math.cos(math.radians(max_tilt_deg))

    triples = points[rng.integers(0, len(points), size=(iterations, 3))]
    normals = np.cross(triples[:, 1] - triples[:, 0], triples[:, 2] - triples[:, 0])
    lengths = np.linalg.norm(normals, axis=1)
    valid = lengths > 1e-12
    normals[valid] /= lengths[valid, None]
    offsets = -np.einsum("ij,ij->i", normals, triples[:, 0])
    camera_side = normals @ camera + offsets
    flip = camera_side < 0  # orient every normal towards the camera
    normals[flip] *= -1
    offsets[flip] *= -1
    camera_side = np.abs(camera_side)
    valid &= (normals @ up >= cos_tilt) & (camera_side > threshold)
    if not valid.any():
        raise WorldError(f"align: no plane within {max_tilt_deg} deg of the camera's up direction below the camera")
    best, best_count = None, -1
    for i in np.flatnonzero(valid):
        count = int((np.abs(points @ normals[i] + offsets[i]) < threshold).sum())
        if count > best_count:
            best, best_count = i, count
    normal, offset = normals[best], offsets[best]
    # A table top can hold more points than the floor: among planes parallel to the best one, take the
    # lowest that still has real support (a quarter of the best plane's points).
    heights = points @ normal
    bins = np.arange(heights.min(), heights.max() + 2 * threshold, 2 * threshold)
    counts, edges = np.histogram(heights, bins=bins)
    supported = np.flatnonzero(counts >= max(0.25 * counts.max(), 0.02 * len(points), 3))
    if len(supported):
        lowest = supported[0]
        offset = -0.5 * float(edges[lowest] + edges[lowest + 1])
    # Refine by least squares (SVD) on the inliers. On a completed world (a splat file: invented walls, backs and
    # back layers stand on the floor) one fit per band leaves part of the RANSAC plane's lean (0.3-0.4 deg on
    # bench scenes given as splat files: 2-3 cm at 4 m), and a tight band about a leaning plane keeps only a strip
    # of the floor, about which the fit can turn. ``converge`` fits three times per band, so the plane is level
    # before the next band, which leaves out the feet of walls and furniture (4 mm of lift in the half band).
    # The completion's own fit on measured points keeps the two single passes: converged, Middlebury's floor moves
    # 0.05 deg and white specks of the far backdrop come back beside its front tyre (bench_real_frame's band).
    bands = (threshold, 0.5 * threshold, 0.25 * threshold) if converge else (threshold, 0.5 * threshold)
    for band in np.repeat(bands, 3 if converge else 1):
        inliers = points[np.abs(points @ normal + offset) < band]
        if len(inliers) < 3:
            break
        centre = inliers.mean(axis=0)
        refined = np.linalg.svd(inliers - centre, full_matrices=False)[2][-1]
        normal = refined if refined @ normal > 0 else -refined
        offset = -float(normal @ centre)
    fraction = float((np.abs(points @ normal + offset) < threshold).mean())
    return Plane(normal=normal, offset=float(offset), inlier_fraction=fraction)


def floor_rotation(normal: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Rotation (rows x, y, z) taking ``normal`` to +Z and ``forward`` (projected on the floor) to +X."""
    z_axis = normal / np.linalg.norm(normal)
    x_axis = forward - (forward @ z_axis) * z_axis
    if np.linalg.norm(x_axis) < 1e-6:  # looking straight down: any horizontal direction
        x_axis = np.cross(z_axis, [0.0, 1.0, 0.0] if abs(z_axis[1]) < 0.9 else [1.0, 0.0, 0.0])
    x_axis /= np.linalg.norm(x_axis)
    y_axis = np.cross(z_axis, x_axis)
    return np.stack([x_axis, y_axis, z_axis])


def _completion_floor(world: GaussianWorld) -> Plane | None:
    """The floor the single-view completion found (and built the invented floor on), when the world records it:
    finding it again on the completed world would cost a second RANSAC and could only find that same plane."""
    floor = world.info.get("completion", {}).get("floor") if world.frame == "opencv" else None
    if not isinstance(floor, dict) or "normal" not in floor:
        return None
    try:
        normal, offset = np.asarray(floor["normal"], dtype=np.float64), float(floor["offset"])
        fraction = float(floor["inlier_fraction"])
    except (KeyError, TypeError, ValueError) as exc:
        raise WorldError(f"info.completion.floor: malformed ({exc})") from exc
    if normal.shape != (3,) or not (np.isfinite(normal).all() and math.isfinite(offset)) or offset <= 0:
        raise WorldError("info.completion.floor: expected a finite unit normal and a positive offset")
    return Plane(normal / np.linalg.norm(normal), offset, fraction)


def align_world(
    world: GaussianWorld | DynamicGaussianWorld,
    scale: float | None = None,
    camera_height: float | None = None,
    camera_position=None,
    max_tilt_deg: float = 45.0,
    seed: int = 0,
) -> GaussianWorld | DynamicGaussianWorld:
    """The world in the simulation frame ("z_up", floor at z = 0, metres), with a report in ``info["alignment"]``.

    Scale: ``scale`` (metres per world unit) if given; else the world's ``meters_per_unit`` if known; else
    the camera is assumed ``camera_height`` (default 1.2 m) above the floor. ``camera_position`` is the
    generating camera in the world's frame (default: the origin of an "opencv" world). A "z_up" world from
    elsewhere has no known camera: only its floor height is found (x, y stay), its scale is taken as 1 m
    per unit unless known, and a level viewpoint 1.2 m above the floor centre looking along +x stands in
    for the camera. The report holds the floor plane, tilt, scale source, the camera pose in the new frame
    and the 4x4 transform applied. Dynamic worlds are aligned with their first keyframe's floor.
    """
    reference = world.keyframes[0]
    virtual_camera = camera_position is None and reference.frame == "z_up"
    at_generating_camera = camera_position is None
    if camera_position is None:
        camera_position = (0.0, 0.0, 0.0)
        if virtual_camera:  # search for the floor as seen from high above the scene
            lo, hi = reference.bounds(quantile=0.01)
            camera_position = (float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, float(hi[2] + (hi - lo).max()))
    plane = _completion_floor(reference) if at_generating_camera else None
    if plane is None:
        plane = find_floor(reference, camera_position, max_tilt_deg, seed=seed, converge=True)
    up, forward = _up_and_forward(reference.frame)
    rotation = floor_rotation(plane.normal, forward)
    camera = np.asarray(camera_position, dtype=np.float64)
    height_units = float(plane.normal @ camera + plane.offset)  # camera height in world units
    notes = []
    if virtual_camera and scale is None and reference.meters_per_unit is None:
        scale = 1.0
        notes.append("scale unknown and no camera: assumed 1 unit = 1 m")
    if scale is not None:
        if not (math.isfinite(scale) and scale > 0):
            raise WorldError(f"scale: expected a positive number of metres per unit, got {scale}")
        metres, source = float(scale), "given"
    elif reference.meters_per_unit is not None:
        metres, source = reference.meters_per_unit, "metric world"
    else:
        assumed = DEFAULT_CAMERA_HEIGHT if camera_height is None else float(camera_height)
        metres, source = assumed / height_units, f"camera height {assumed:g} m assumed"
        if camera_height is None:
            notes.append(f"scale unknown: assumed the camera was {assumed:g} m above the floor")
    # x -> metres * R x + t, with t putting the floor at z = 0 and the camera above the origin.
    camera_aligned = metres * rotation @ camera
    translation = np.array([-camera_aligned[0], -camera_aligned[1], metres * plane.offset])
    if virtual_camera:
        translation[:2] = 0.0
        camera_aligned[2] = DEFAULT_CAMERA_HEIGHT - metres * plane.offset  # the stand-in viewpoint's height
    tilt = math.degrees(math.acos(float(np.clip(plane.normal @ up, -1.0, 1.0))))
    transform = np.eye(4)
    transform[:3, :3] = metres * rotation
    transform[:3, 3] = translation
    # Camera pose (camera-to-world, OpenCV optical axes) in the aligned frame.
    camera_axes = np.eye(3) if reference.frame == "opencv" else np.asarray(OPENCV_TO_Z_UP)  # columns: optical axes
    camera_pose = np.eye(4)
    camera_pose[:3, :3] = rotation @ camera_axes
    camera_pose[:3, 3] = camera_aligned + translation
    report = {
        "floor_normal": plane.normal.tolist(), "floor_offset": plane.offset,
        "floor_inlier_fraction": plane.inlier_fraction, "camera_tilt_deg": tilt,
        "meters_per_unit": metres, "scale_source": source, "camera_height_m": float(camera_pose[2, 3]),
        "transform": transform.tolist(), "camera_to_world": camera_pose.tolist(), "notes": notes,
    }

    def apply(w: GaussianWorld) -> GaussianWorld:
        aligned = w.transformed(rotation=torch.from_numpy(rotation).float(),
                                translation=torch.from_numpy(translation).float(), scale=metres, frame="z_up",
                                meters_per_unit=1.0)
        aligned.info = {**w.info, "alignment": report}
        return aligned

    return world.map(apply)
