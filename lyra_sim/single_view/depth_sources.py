"""Where the embedded generator gets depth when none is given.

In order: a local monocular depth model directory (transformers ``AutoModelForDepthEstimation``,
e.g. Depth Anything V2, never downloaded), else a geometric prior: a ground plane seen from an
assumed camera height and pitch, closed by a vertical backdrop.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lyra_sim.align import DEFAULT_CAMERA_HEIGHT
from lyra_sim.defaults import PRIOR_PITCH_DEG
from lyra_sim.inputs.images import InputError

DEPTH_MODEL_ENV = "LYRA_SIM_DEPTH_MODEL"
PRIOR_BACKDROP = 6.0  # metres to the prior's vertical backdrop, measured horizontally
RELATIVE_DEPTH_CAP = 50.0  # a relative model's depth (median 1) is clipped here: the sky is not infinitely far
DISPARITY_ZERO_PERCENTILE = 1  # a relative model's disparity shift: its 1st percentile becomes zero
MIN_RAY_COMPONENT = 1e-6  # rays this close to parallel to the floor or backdrop never reach it
PRIOR_ADVICE = (
    "no depth given: the world is a FLAT PRIOR (a ground plane and a backdrop, not this scene's shape); for real "
    "geometry pass a depth map (--depth FILE, depth=) or a local depth model (--depth-model DIR, depth_model=; "
    "e.g. Depth Anything V2 saved with transformers)"
)


class FlatPriorWarning(UserWarning):
    """A world was generated from an image alone, on the ground-plane-and-backdrop prior."""


@dataclass
class DepthEstimate:
    depth: np.ndarray  # (H,W) metres if metric, else arbitrary units; 0 = invalid
    source: str  # "given", "model:<dir>" or "prior"
    metric: bool
    note: str = ""


def ground_backdrop_prior(
    K: np.ndarray,
    width: int,
    height: int,
    camera_height: float = DEFAULT_CAMERA_HEIGHT,
    pitch_deg: float = PRIOR_PITCH_DEG,
    backdrop: float = PRIOR_BACKDROP,
) -> np.ndarray:
    """Z-depth (H,W) of a flat floor ``camera_height`` below a camera pitched down ``pitch_deg``,
    closed by a vertical wall ``backdrop`` metres ahead (measured horizontally)."""
    if camera_height <= 0 or backdrop <= 0:
        raise InputError("camera_height and backdrop must be positive")
    v = np.broadcast_to((np.arange(height) + 0.5)[:, None], (height, width))
    y = (v - K[1, 2]) / K[1, 1]  # ray (x, y, 1): z-depth equals the ray parameter
    pitch = math.radians(pitch_deg)
    down = y * math.cos(pitch) + math.sin(pitch)
    forward = math.cos(pitch) - y * math.sin(pitch)
    with np.errstate(divide="ignore"):
        t_floor = np.where(down > MIN_RAY_COMPONENT, camera_height / np.maximum(down, MIN_RAY_COMPONENT), np.inf)
        t_wall = np.where(forward > MIN_RAY_COMPONENT, backdrop / np.maximum(forward, MIN_RAY_COMPONENT), np.inf)
    depth = np.minimum(t_floor, t_wall)
    return np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)


def model_depth(rgb: np.ndarray, model_dir: str | os.PathLike) -> DepthEstimate:
    """Depth from a local transformers depth-estimation model directory (offline only).

    Metric models (config ``depth_estimation_type == "metric"``) give metres. Relative models
    (Depth Anything V2 default) predict inverse depth up to scale and shift; it is turned into
    depth with median 1 and reported as non-metric.
    """
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():
        raise InputError(f"depth model: {model_dir} is not a transformers model directory (no config.json)")
    try:
        import torch
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except ImportError as exc:
        raise InputError("depth model: needs the 'transformers' package (pip install 'lyra-sim[depth]')") from exc
    processor = AutoImageProcessor.from_pretrained(model_dir, local_files_only=True)
    model = AutoModelForDepthEstimation.from_pretrained(model_dir, local_files_only=True).eval()
    h, w = rgb.shape[:2]
    inputs = processor(images=(rgb * 255).astype(np.uint8), return_tensors="pt")
    with torch.no_grad():
        pred = model(**inputs).predicted_depth  # (1, h', w')
    pred = torch.nn.functional.interpolate(pred[:, None], size=(h, w), mode="bicubic", align_corners=False)[0, 0]
    pred = pred.numpy().astype(np.float32)
    metric = getattr(model.config, "depth_estimation_type", "relative") == "metric"
    if metric:
        depth = np.where(pred > 0, pred, 0.0)
    else:
        disparity = pred - np.percentile(pred, DISPARITY_ZERO_PERCENTILE)
        valid = disparity > 1e-6
        depth = np.zeros_like(pred)
        depth[valid] = 1.0 / disparity[valid]
        if valid.any():
            depth[valid] /= np.median(depth[valid])
        depth = np.minimum(depth, RELATIVE_DEPTH_CAP)
    if not (depth > 0).any():
        raise InputError(f"depth model: {model_dir} predicted a constant depth map (no usable depth)")
    return DepthEstimate(depth.astype(np.float32), f"model:{model_dir}", metric)


def estimate_depth(
    rgb: np.ndarray,
    K: np.ndarray,
    depth_model: str | os.PathLike | None = None,
    camera_height: float = DEFAULT_CAMERA_HEIGHT,
    pitch_deg: float = PRIOR_PITCH_DEG,
) -> DepthEstimate:
    """Depth for an image without a depth map: the model directory if one is configured, else the prior."""
    model_dir = depth_model or os.environ.get(DEPTH_MODEL_ENV)
    if model_dir:
        return model_depth(rgb, model_dir)
    h, w = rgb.shape[:2]
    depth = ground_backdrop_prior(K, w, h, camera_height=camera_height, pitch_deg=pitch_deg)
    note = (f"ground plane {camera_height} m below a camera pitched {pitch_deg} deg down, "
            f"backdrop {PRIOR_BACKDROP:g} m ahead")
    return DepthEstimate(depth, "prior", metric=False, note=note)
