"""From a short RGB-D capture to one world: poses (given or estimated), fusion, and moving parts.

The world is expressed in the first frame's OpenCV camera frame (like a single-frame world), so
``lyra_sim.align``, ``make_env``, USD export and the ROS node treat it like any other. When part of
the scene moves, the result is a ``DynamicGaussianWorld``: the fused static background plus, at
each keyframe, that frame's moving pixels lifted with the package's ``lift_rgbd``.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from lyra_sim.capture.fusion import (
    clean_sequence,
    integrate_tsdf,
    observe,
    project,
    sensor_tolerance,
    surfel_world,
)
from lyra_sim.capture.odometry import OdometryReport, estimate_poses
from lyra_sim.capture.options import CaptureOptions
from lyra_sim.inputs.images import InputError
from lyra_sim.inputs.sequence import RGBDSequence, read_sequence
from lyra_sim.single_view.lift import lift_rgbd
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

log = logging.getLogger(__name__)

MIN_SEEN_THROUGH = 3  # frames that must see through a point before it counts as moving
SEEN_THROUGH_RATIO = 0.25  # ... and their share relative to the frames that saw it
MIN_MOVING_AREA_M2 = 0.004  # less moving surface than this (about 6 x 6 cm) is noise, not an object
MIN_MOVING_PIXELS = 0.002  # share of a frame's pixels that must be in front of the background to count
MIN_MOVING_FRAMES = 3  # frames showing something in front of the background before the world is dynamic


@dataclass
class CaptureResult:
    """The world, the camera-to-world pose of every frame in the world's frame, and how the poses were found."""

    world: GaussianWorld | DynamicGaussianWorld
    cam_to_world: np.ndarray  # (N,4,4), frame 0 at the identity
    pose_source: str  # "given" or "open3d RGB-D odometry + pose graph"
    odometry: OdometryReport | None
    seconds: float


def _keyframes(times: np.ndarray, interval: float) -> list[int]:
    """Frame indices of the keyframes: the first frame, then the first frame ``interval`` seconds after the last."""
    keys = [0]
    for i, t in enumerate(times):
        if t >= times[keys[-1]] + interval - 1e-9:
            keys.append(i)
    return keys


def _static_zbuffer(points: np.ndarray, cam_to_ref: np.ndarray, K: np.ndarray, shape: tuple[int, int],
                    voxel_size: float) -> np.ndarray:
    """Nearest static depth per pixel (inf where none), with no gaps between the projected surface points.

    Points one voxel apart land ``voxel * f / z`` pixels apart, so each point is z-buffered in cells at
    least that wide (cells of 2, 4, 8 or 16 pixels, by its depth), and the levels are combined by minimum.
    """
    h, w = shape
    pc, rows, cols, inside = project(points, cam_to_ref, K, shape)
    spacing = np.where(inside, voxel_size * np.sqrt(K[0, 0] * K[1, 1]) / np.maximum(pc[:, 2], 1e-6), np.inf)
    out = np.full((h, w), np.inf)
    for level, cell in enumerate((2, 4, 8, 16)):
        sel = inside & (spacing <= cell) & (spacing > (cell // 2 if level else 0))
        if level == 3:
            sel = inside & (spacing > 8)
        if not sel.any():
            continue
        ch, cw = -(-h // cell), -(-w // cell)
        cells = np.full(ch * cw, np.inf)
        np.minimum.at(cells, (rows[sel] // cell) * cw + cols[sel] // cell, pc[sel, 2])
        out = np.minimum(out, np.repeat(np.repeat(cells.reshape(ch, cw), cell, axis=0), cell, axis=1)[:h, :w])
    return out


def moving_masks(seq: RGBDSequence, cam_to_ref: np.ndarray, static_points: np.ndarray, voxel_size: float,
                 depth_max: float) -> list[np.ndarray]:
    """Per frame, the pixels (within ``depth_max``) clearly in front of the fused static background, without specks.

    Expects cleaned depth (``clean_sequence``).
    """
    h, w = seq.frames[0].depth.shape
    min_pixels = max(16, (h * w) // 2000)
    masks = []
    for i, frame in enumerate(seq.frames):
        depth = frame.depth
        static = _static_zbuffer(static_points, cam_to_ref[i], seq.K, (h, w), voxel_size)
        # Only where something static was seen behind: a surface with nothing known behind it cannot be said to move.
        mask = (depth > 0) & (depth <= depth_max) & np.isfinite(static)
        mask &= depth < static - 2.5 * sensor_tolerance(depth, voxel_size)
        mask = ndimage.binary_opening(mask, iterations=2)
        labels, count = ndimage.label(mask)
        if count:
            sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
            mask = np.isin(labels, 1 + np.flatnonzero(sizes >= min_pixels))
        masks.append(mask)
    return masks


def _check_depth_in_range(seq: RGBDSequence, depth_max: float) -> None:
    """Every frame needs some valid depth within ``depth_max`` (e.g. not all 65535, the sensors' "no return")."""
    for frame in seq.frames:
        if not ((frame.depth > 0) & (frame.depth <= depth_max)).any():
            raise InputError(f"{seq.source}: frame {frame.name} has no valid depth within {depth_max} m "
                             f"(nearest {float(frame.depth[frame.depth > 0].min(initial=np.inf)):.3g} m)")


def reconstruct_sequence(
    seq: RGBDSequence,
    voxel_size: float = CaptureOptions.voxel_size,
    depth_max: float = CaptureOptions.depth_max,
    sh_degree: int = CaptureOptions.sh_degree,
    dynamic: bool | None = CaptureOptions.dynamic,
    keyframe_interval: float = CaptureOptions.keyframe_interval,
    progress: bool = True,
) -> CaptureResult:
    """Fuse a sequence into one world (see the module docstring).

    ``dynamic``: None detects moving parts and returns a ``DynamicGaussianWorld`` when there are
    any; False always returns the static world (moving parts are left out); True always returns a
    dynamic world. ``sh_degree`` 1 fits view-dependent colour from the views, 0 keeps the best view's.
    """
    if sh_degree not in (0, 1):
        raise InputError(f"sh_degree: expected 0 or 1, got {sh_degree}")
    if not (np.isfinite(voxel_size) and 0.002 <= voxel_size <= 0.5):
        raise InputError(f"voxel_size: expected metres in [0.002, 0.5], got {voxel_size}")
    if not (np.isfinite(depth_max) and depth_max > 0):
        raise InputError(f"depth_max: expected a positive number of metres, got {depth_max}")
    _check_depth_in_range(seq, depth_max)  # cheap, and odometry and fusion cannot run without it
    t0 = time.perf_counter()
    if seq.has_poses:
        poses = seq.poses
        cam_to_ref, report, pose_source = np.linalg.inv(poses[0]) @ poses, None, "given"
    elif len(seq) == 1:
        cam_to_ref, report, pose_source = np.eye(4)[None], None, "one frame (its camera is the world frame)"
    else:
        try:
            cam_to_ref, report = estimate_poses(seq, depth_max=depth_max, progress=progress)
        except RuntimeError as exc:  # open3d's C++ errors: a frame it cannot register
            raise InputError(f"{seq.source}: RGB-D odometry failed ({' '.join(str(exc).split())[:200]}); "
                             "give poses (--poses) or check the depth frames") from exc
        pose_source = "open3d RGB-D odometry + pose graph"
    raw, seq = seq, clean_sequence(seq)
    points, normals = integrate_tsdf(seq, cam_to_ref, voxel_size, depth_max, progress=progress)
    if not len(points):
        raise InputError(f"{seq.source}: the fused volume has no surface (is there valid depth within {depth_max} m?)")
    obs = observe(points, normals, seq, cam_to_ref, voxel_size, sh_degree, progress=progress)
    moving = (obs.seen_through >= MIN_SEEN_THROUGH) & (obs.seen_through >= SEEN_THROUGH_RATIO * obs.seen)
    moving_area = float(moving.sum()) * voxel_size**2
    log.info("fused %d surface points; %.3f m^2 seen through (moving)", len(points), moving_area)
    masks, moving_frames = None, 0
    if moving_area >= MIN_MOVING_AREA_M2 or dynamic:
        masks = moving_masks(seq, cam_to_ref, points[~moving], voxel_size, depth_max)
        h, w = seq.frames[0].depth.shape
        moving_frames = sum(int(m.sum() >= MIN_MOVING_PIXELS * h * w) for m in masks)
    if dynamic is None:  # a moving object shows in several frames; stray pixels of a pose error do not add up
        dynamic = moving_frames >= MIN_MOVING_FRAMES
    if moving_frames:  # fuse the background again without the moving pixels
        points, normals = integrate_tsdf(seq, cam_to_ref, voxel_size, depth_max, masks=[~m for m in masks],
                                         progress=progress)
        obs = observe(points, normals, seq, cam_to_ref, voxel_size, sh_degree, progress=progress)
    static = surfel_world(points, normals, obs, voxel_size, sh_degree)
    h, w = seq.frames[0].depth.shape
    info = {
        "generator": "rgbd_sequence",
        "frames": len(seq),
        "pose_source": pose_source,
        **({"odometry": report.summary()} if report else {}),
        "voxel_size": voxel_size,
        "depth_source": "given",
        "metric": True,
        "intrinsics": np.asarray(seq.K).round(4).tolist(),
        "image_size": [w, h],
        "reference_cam_to_world": (seq.poses[0] if seq.has_poses else np.eye(4)).round(6).tolist(),
        "moving_area_m2": round(moving_area, 4),
        "moving_frames": moving_frames,
    }
    static.info = dict(info)
    if not dynamic:
        return CaptureResult(static, cam_to_ref, pose_source, report, time.perf_counter() - t0)
    times = seq.timestamps
    keys = _keyframes(times, keyframe_interval)
    worlds = []
    for k in keys:
        frame = raw.frames[k]
        parts = [static]
        if masks[k].any():
            depth = np.where(masks[k], frame.depth, 0.0)
            part = lift_rgbd(frame.rgb, depth, seq.K).transformed(rotation=cam_to_ref[k][:3, :3],
                                                                    translation=cam_to_ref[k][:3, 3])
            parts.append(part)
        world = GaussianWorld.concatenate(parts) if len(parts) > 1 else static.subset(slice(None))
        world.info = {**info, "keyframe_frame": frame.name, "moving_gaussians": len(world) - len(static)}
        worlds.append(world)
    return CaptureResult(DynamicGaussianWorld(times[keys], worlds), cam_to_ref, pose_source, report,
                         time.perf_counter() - t0)


def generate_world_from_sequence(
    path: str | os.PathLike | RGBDSequence,
    intrinsics=None,
    poses: str | os.PathLike | None = CaptureOptions.poses,
    depth_scale: float | None = CaptureOptions.depth_scale,
    every: int = CaptureOptions.every,
    max_frames: int | None = CaptureOptions.max_frames,
    frame_limit: int = CaptureOptions.frame_limit,
    **options,
) -> GaussianWorld | DynamicGaussianWorld:
    """Read a sequence folder (see ``read_sequence``) and fuse it (``options`` go to ``reconstruct_sequence``)."""
    if isinstance(path, RGBDSequence):
        seq = path
    else:
        seq = read_sequence(path, intrinsics=intrinsics, poses=poses, depth_scale=depth_scale, every=every,
                            max_frames=max_frames, frame_limit=frame_limit)
    return reconstruct_sequence(seq, **options).world
