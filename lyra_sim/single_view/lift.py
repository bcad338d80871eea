"""The embedded generator: lift an RGB-D image into Gaussians (GEN3C's 3D-cache idea).

Each pixel becomes one flat Gaussian (a surfel) at its unprojected depth, facing the local
surface normal of its layer (``layers``: the image is split at depth jumps), sized to the
pixel's footprint so neighbours blend without holes; missing depth is filled first
(``depth_fill``). ``generate_world`` then completes what the camera could not see
(``completion``), marking those Gaussians unobserved.
"""

from __future__ import annotations

import logging
import os

import numpy as np
from scipy import ndimage

from lyra_sim.camera import Camera
from lyra_sim.defaults import DEFAULT_FOV_DEG
from lyra_sim.errors import warn_from_caller
from lyra_sim.inputs.images import (
    InputError,
    load_depth,
    load_image,
    load_intrinsics,
    scale_intrinsics,
)
from lyra_sim.single_view.completion import CompletionOptions, complete_view
from lyra_sim.single_view.depth_fill import fill_depth
from lyra_sim.single_view.depth_sources import PRIOR_ADVICE, DepthEstimate, FlatPriorWarning, estimate_depth
from lyra_sim.single_view.input_fit import fit_input_colors
from lyra_sim.single_view.layers import ViewGeometry
from lyra_sim.single_view.options import SingleViewOptions
from lyra_sim.single_view.surfels import surfel_world
from lyra_sim.world import GaussianWorld

log = logging.getLogger(__name__)

FOOTPRINT_SIGMA = 0.45  # Gaussian std in pixel footprints: adjacent splats overlap (with eps2d 0.3 px²), stay sharp
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


def lift_rgbd(
    rgb: np.ndarray,
    depth: np.ndarray,
    K: np.ndarray,
    stride: int = 1,
    opacity: float = 0.95,
    drop_edges: bool = True,
    metric: bool = True,
    fill_holes: bool = False,
    geometry: ViewGeometry | None = None,
) -> GaussianWorld:
    """Gaussians (OpenCV frame of the input camera) from RGB (H,W,3) in [0,1] and z-depth (H,W).

    Each pixel with depth becomes a surfel. The image is split into layers at depth jumps (``layers``),
    normals come from within a layer, and pixels beside a jump are not stretched along tilted normals, so
    nothing spans a jump. ``fill_holes`` fills missing depth first (``depth_fill``: every pixel is lifted);
    without it pixels of depth 0 are skipped (a mask). ``drop_edges`` also drops the pixels on depth edges
    (``unreliable_edges``), as the lift always did; ``generate_world`` keeps them (``drop_edges=False``).
    ``geometry``: the depth's points, layers and normals when the caller has them already (else made here).
    """
    if stride < 1:
        raise InputError(f"stride: expected an integer >= 1, got {stride}")
    depth = np.asarray(depth, dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise InputError("depth: no valid (positive, finite) depth values")
    if drop_edges:
        valid &= ~unreliable_edges(np.where(valid, depth, 0.0))
        depth = np.where(valid, depth, 1.0)
    elif fill_holes:
        depth = fill_depth(depth, rgb)
        valid = np.ones_like(valid)
    else:
        depth = np.where(valid, depth, 1.0)
    if geometry is None:
        geometry = ViewGeometry.of(depth, K)
    points, layers, normals = geometry.points, geometry.layers, geometry.normals
    keep = np.zeros_like(valid)
    keep[stride // 2 :: stride, stride // 2 :: stride] = True
    keep &= valid
    if not keep.any():
        raise InputError("depth: no reliable pixels left after dropping invalid depth and depth edges")
    pts = points[keep]
    nrm = normals[keep]
    view = pts / np.linalg.norm(pts, axis=-1, keepdims=True)
    cos = np.clip(np.abs((nrm * view).sum(-1)), 1.0 / MAX_TILT_STRETCH, 1.0)
    cos = np.where(layers.any_edge[keep], 1.0, cos)  # beside a jump: no stretch towards the other surface
    footprint = depth[keep] / np.sqrt(K[0, 0] * K[1, 1]) * stride
    # Stretch only along the foreshortened direction (the view ray projected on the surface): a floor seen at
    # a grazing angle gets long, thin surfels that cover one pixel each on screen, not a horizontal smear.
    tilt = view - (view * nrm).sum(-1, keepdims=True) * nrm
    scales = np.stack(
        [FOOTPRINT_SIGMA * footprint / cos, FOOTPRINT_SIGMA * footprint, THICKNESS * footprint], axis=-1
    )
    return surfel_world(pts, nrm, scales, rgb[keep], opacity, observed=True, metric=metric, tangents=tilt)


def generate_world(
    image,
    depth=None,
    intrinsics=None,
    fov_deg: float = SingleViewOptions.fov_deg,
    depth_model: str | os.PathLike | None = SingleViewOptions.depth_model,
    depth_scale: float | None = SingleViewOptions.depth_scale,
    camera_height: float = SingleViewOptions.camera_height,
    pitch_deg: float = SingleViewOptions.pitch_deg,
    stride: int = SingleViewOptions.stride,
    opacity: float = SingleViewOptions.opacity,
    max_pixels: int | None = SingleViewOptions.max_pixels,
    complete: bool = SingleViewOptions.complete,
    completion: CompletionOptions | None = SingleViewOptions.completion,
) -> GaussianWorld:
    """A Gaussian world from one image (+ optional depth) on any CPU; nothing is downloaded unless a model id is named.

    Depth sources, in order: ``depth`` (stored units / ``depth_scale`` units per metre: 16-bit PNG paths
    default to millimetres, 1000; arrays and .npy to metres, 1), a transformers depth model (``depth_model`` or
    $LYRA_SIM_DEPTH_MODEL: a local directory or a Hugging Face model id, downloaded once into the Hugging Face
    cache; Depth Anything V2 relative or metric, Depth Pro), else the ground-and-backdrop prior (``camera_height``,
    ``pitch_deg``), announced by a :class:`FlatPriorWarning` and ``info["depth_warning"]``. ``intrinsics`` is a 3x3
    K, a dict or JSON file with fx, fy, cx, cy; without it a ``fov_deg`` horizontal field of view is used, else the
    depth model's own estimate (Depth Pro), else 60 degrees. The world is in the input camera's OpenCV frame;
    ``world.info`` records the depth source (and the model's files and licence), whether the scale is metric,
    and the intrinsics used and where they came from. Images above ``max_pixels`` (0: never) are downscaled (K and
    depth follow) and transparent pixels (alpha < 0.5) get invalid depth; ``info["input_notes"]`` says so.

    Every input pixel is kept (missing depth filled, the image split into layers at depth jumps).
    With ``complete`` (default) the unseen floor, walls, surfaces behind occlusion edges and object
    backs are added as Gaussians whose ``observed`` flag is False (``completion``: CompletionOptions);
    ``world.info["completion"]`` reports the methods and the completed area; ``world.observed_only()``
    drops them again.
    """
    loaded = load_image(image, max_pixels=max_pixels or None)
    rgb = loaded.rgb
    h, w = rgb.shape[:2]
    src_w, src_h = loaded.source_size
    for note in loaded.notes:
        log.warning("%s", note)
    if intrinsics is None:
        K = Camera.intrinsics_from_fov(w, h, DEFAULT_FOV_DEG if fov_deg is None else fov_deg).double().numpy()
        k_source = (f"assumed {DEFAULT_FOV_DEG} deg horizontal field of view" if fov_deg is None
                    else f"given {fov_deg} deg horizontal field of view")
    else:
        K = scale_intrinsics(load_intrinsics(intrinsics, src_w, src_h), w / src_w, h / src_h)
        k_source = "given"
    if depth is not None:
        metres = load_depth(depth, (src_h, src_w), depth_scale=depth_scale, output_shape=(h, w), valid=loaded.valid)
        estimate = DepthEstimate(metres, "given", metric=True)
    else:
        estimate = estimate_depth(rgb, K, depth_model, camera_height=camera_height, pitch_deg=pitch_deg,
                                  focal_known=intrinsics is not None or fov_deg is not None)
        if estimate.fov_deg is not None:  # the model made its depth with its own field of view: so does the lift
            K = Camera.intrinsics_from_fov(w, h, estimate.fov_deg).double().numpy()
            k_source = f"estimated by {estimate.model.get('name')}: {estimate.fov_deg:.1f} deg horizontal field of view"
        if estimate.source == "prior":
            warn_from_caller(PRIOR_ADVICE, FlatPriorWarning)
        if loaded.valid is not None:  # transparent pixels carry no content: invalid depth
            estimate.depth = np.where(loaded.valid, estimate.depth, 0.0).astype(estimate.depth.dtype)
    depth_map = fill_depth(estimate.depth, rgb)
    lifted = depth_map if loaded.valid is None else np.where(loaded.valid, depth_map, 0.0)  # alpha: no content
    geometry = ViewGeometry.of(depth_map, K)  # once: the lift and the completion share it
    world = lift_rgbd(rgb, lifted, K, stride=stride, opacity=opacity, drop_edges=False, metric=estimate.metric,
                      geometry=geometry)
    world = fit_input_colors(world, rgb, K, cautious=geometry.layers.far_edge)  # before completion hides behind it
    report = {"enabled": False}
    if complete:
        added, report = complete_view(rgb, depth_map, K, geometry, world, estimate.metric, completion,
                                      opacity=opacity)
        report = {"enabled": True, **report}
        if added is not None:
            world = GaussianWorld.concatenate([world, added])
    world.info = {
        "generator": "lift_rgbd",
        "depth_source": estimate.source,
        "metric": estimate.metric,
        "intrinsics": K.round(4).tolist(),
        "intrinsics_source": k_source,
        "image_size": [w, h],
        **({"depth_note": estimate.note} if estimate.note else {}),
        **({"depth_model": estimate.model} if estimate.model else {}),
        **({"depth_warning": PRIOR_ADVICE} if estimate.source == "prior" else {}),
        **({"input_notes": list(loaded.notes)} if loaded.notes else {}),
        "filled_depth_pixels": int((~np.isfinite(estimate.depth) | (estimate.depth <= 0)).sum()),
        "completion": report,
    }
    log.info(
        "generated %d Gaussians; depth source: %s (%s)",
        len(world),
        estimate.source,
        "metric" if estimate.metric else "scale unknown",
    )
    return world
