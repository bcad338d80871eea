"""The embedded generator: lift an RGB-D image into Gaussians (GEN3C's 3D-cache idea).

Each valid pixel becomes one flat Gaussian (a surfel) at its unprojected depth, facing the
local surface normal, sized to the pixel's footprint so neighbours blend without holes. Pixels
on unreliable depth edges (occlusion boundaries, see ``unreliable_edges``) are dropped.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
from scipy import ndimage

from lyra_sim.align import DEFAULT_CAMERA_HEIGHT
from lyra_sim.camera import DEFAULT_FOV_DEG, pixel_directions
from lyra_sim.generate.depth_sources import PRIOR_PITCH_DEG, DepthEstimate, estimate_depth
from lyra_sim.generate.images import (
    DEFAULT_MAX_PIXELS,
    InputError,
    load_depth,
    load_image,
    load_intrinsics,
    scale_intrinsics,
)
from lyra_sim.rotations import rotmat_to_quat
from lyra_sim.sh import rgb_to_sh0
from lyra_sim.world import GaussianWorld

log = logging.getLogger(__name__)

FOOTPRINT_SIGMA = 0.6  # Gaussian std in pixel footprints: adjacent splats overlap smoothly
THICKNESS = 0.1  # std along the normal, in footprints
MAX_TILT_STRETCH = 4.0  # cap on the in-plane stretch of surfaces seen at grazing angles


def unreliable_edges(depth: np.ndarray, rel_jump: float = 0.05, margin: int = 1) -> np.ndarray:
    """Mask of pixels on depth discontinuities (and ``margin`` pixels around them).

    GEN3C flags pixels whose 5x5 depth range exceeds 5 % of the mean; at low resolution that
    also deletes slanted floors and table tops. Inverse depth is affine across any plane, so
    its second difference is zero on planes at every resolution and large at occlusion edges:
    a pixel is flagged when that second difference exceeds ``rel_jump`` of its inverse depth.
    """
    valid = depth > 0
    inv = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    padded = np.pad(inv, 1, mode="edge")
    d2u = np.abs(padded[1:-1, 2:] - 2 * inv + padded[1:-1, :-2])
    d2v = np.abs(padded[2:, 1:-1] - 2 * inv + padded[:-2, 1:-1])
    edges = (np.maximum(d2u, d2v) > rel_jump * inv) | ~valid
    return ndimage.maximum_filter(edges, size=2 * margin + 1, mode="nearest") & valid


def unproject_depth(depth: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Camera-frame points (H,W,3) of a z-depth map through pixel centres (+0.5), OpenCV pinhole K."""
    rays = pixel_directions(torch.from_numpy(np.asarray(K, np.float64)), *depth.shape).numpy()
    return rays * depth[..., None]


def _normals(points: np.ndarray) -> np.ndarray:
    """Per-pixel unit normals (H,W,3) facing the camera, from central differences of the point map."""
    du = np.gradient(points, axis=1)
    dv = np.gradient(points, axis=0)
    n = np.cross(du, dv)
    norm = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(norm > 1e-12, n / np.maximum(norm, 1e-12), np.array([0.0, 0.0, -1.0]))
    facing = (n * points).sum(-1, keepdims=True) > 0  # normal should point back to the camera
    return np.where(facing, -n, n)


def _frames_from_normals(normals: np.ndarray) -> np.ndarray:
    """Rotation matrices (M,3,3) whose third column is the normal (surfel frame)."""
    helper = np.where(np.abs(normals[:, :1]) < 0.9, np.array([[1.0, 0, 0]]), np.array([[0.0, 1, 0]]))
    t1 = np.cross(helper, normals)
    t1 /= np.linalg.norm(t1, axis=-1, keepdims=True)
    t2 = np.cross(normals, t1)
    return np.stack([t1, t2, normals], axis=-1)


def lift_rgbd(
    rgb: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    stride: int = 1,
    opacity: float = 0.95,
    drop_edges: bool = True,
    metric: bool = True,
) -> GaussianWorld:
    """Gaussians (OpenCV frame of the input camera) from RGB (H,W,3) in [0,1] and z-depth (H,W)."""
    if stride < 1:
        raise InputError(f"stride: expected an integer >= 1, got {stride}")
    points = unproject_depth(depth, K)
    valid = depth > 0
    if drop_edges:
        valid &= ~unreliable_edges(depth)
    normals = _normals(points)
    keep = np.zeros_like(valid)
    keep[stride // 2 :: stride, stride // 2 :: stride] = True
    keep &= valid
    if not keep.any():
        raise InputError("depth: no reliable pixels left after dropping invalid depth and depth edges")
    pts = points[keep]
    nrm = normals[keep]
    view = pts / np.linalg.norm(pts, axis=-1, keepdims=True)
    cos = np.clip(np.abs((nrm * view).sum(-1)), 1.0 / MAX_TILT_STRETCH, 1.0)
    footprint = depth[keep] / np.sqrt(K[0, 0] * K[1, 1]) * stride
    scales = np.stack(
        [FOOTPRINT_SIGMA * footprint / cos, FOOTPRINT_SIGMA * footprint / cos, THICKNESS * footprint], axis=-1
    )
    quats = rotmat_to_quat(torch.from_numpy(_frames_from_normals(nrm)))
    colors = torch.from_numpy(rgb[keep].astype(np.float32))
    return GaussianWorld(
        means=torch.from_numpy(pts).float(),
        quats=quats.float(),
        scales=torch.from_numpy(scales).float(),
        opacities=torch.full((pts.shape[0],), float(opacity)),
        sh=rgb_to_sh0(colors),
        frame="opencv",
        meters_per_unit=1.0 if metric else None,
    )


def generate_world(
    image,
    depth=None,
    intrinsics=None,
    fov_deg: float = DEFAULT_FOV_DEG,
    depth_model: str | os.PathLike | None = None,
    depth_scale: float | None = None,
    camera_height: float = DEFAULT_CAMERA_HEIGHT,
    pitch_deg: float = PRIOR_PITCH_DEG,
    stride: int = 1,
    opacity: float = 0.95,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
) -> GaussianWorld:
    """A Gaussian world from one image (+ optional depth) on any CPU, with no downloads.

    Depth sources, in order: ``depth`` (stored units / ``depth_scale`` units per metre: 16-bit PNG paths
    default to millimetres, 1000; arrays and .npy to metres, 1), a local
    transformers depth model (``depth_model`` or $LYRA_SIM_DEPTH_MODEL), else the ground-and-
    backdrop prior (``camera_height``, ``pitch_deg``). ``intrinsics`` is a 3x3 K, a dict or
    JSON file with fx, fy, cx, cy; without it a ``fov_deg`` horizontal field of view is assumed.
    The world is in the input camera's OpenCV frame; ``world.info`` records the depth source,
    whether the scale is metric, and the intrinsics used. Images above ``max_pixels`` are downscaled (K and
    depth follow) and transparent pixels (alpha < 0.5) get invalid depth; ``info["input_notes"]`` says so.
    """
    loaded = load_image(image, max_pixels=max_pixels)
    rgb = loaded.rgb
    h, w = rgb.shape[:2]
    src_w, src_h = loaded.source_size
    for note in loaded.notes:
        log.warning("%s", note)
    if intrinsics is None:
        from lyra_sim.camera import Camera

        K = Camera.intrinsics_from_fov(w, h, fov_deg).double().numpy()
        k_source = f"assumed {fov_deg} deg horizontal field of view"
    else:
        K = scale_intrinsics(load_intrinsics(intrinsics, src_w, src_h), w / src_w, h / src_h)
        k_source = "given"
    if depth is not None:
        metres = load_depth(depth, (src_h, src_w), depth_scale=depth_scale, output_shape=(h, w), valid=loaded.valid)
        estimate = DepthEstimate(metres, "given", metric=True)
    else:
        estimate = estimate_depth(rgb, K, depth_model, camera_height=camera_height, pitch_deg=pitch_deg)
        if loaded.valid is not None:  # transparent pixels carry no content: invalid depth
            estimate.depth = np.where(loaded.valid, estimate.depth, 0.0).astype(estimate.depth.dtype)
    world = lift_rgbd(rgb, estimate.depth, K, stride=stride, opacity=opacity, metric=estimate.metric)
    world.info = {
        "generator": "lift_rgbd",
        "depth_source": estimate.source,
        "metric": estimate.metric,
        "intrinsics": K.round(4).tolist(),
        "intrinsics_source": k_source,
        "image_size": [w, h],
        **({"depth_note": estimate.note} if estimate.note else {}),
        **({"input_notes": list(loaded.notes)} if loaded.notes else {}),
    }
    log.info(
        "generated %d Gaussians; depth source: %s (%s)",
        len(world),
        estimate.source,
        "metric" if estimate.metric else "scale unknown",
    )
    return world
