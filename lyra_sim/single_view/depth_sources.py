"""Where the embedded generator gets depth when none is given.

In order: a monocular depth model the user names or configures (a transformers directory or a
Hugging Face model id: ``depth_models`` finds it, ``depth_inference`` runs it), else a geometric
prior: a ground plane seen from an assumed camera height and pitch, closed by a vertical backdrop.
Every world made on the prior is announced (:class:`FlatPriorWarning`, ``world.info``).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from lyra_sim.align import DEFAULT_CAMERA_HEIGHT
from lyra_sim.defaults import DEPTH_MODEL_ENV, PRIOR_PITCH_DEG
from lyra_sim.inputs.images import InputError
from lyra_sim.single_view.depth_models import EXAMPLE_MODEL

PRIOR_BACKDROP = 6.0  # metres to the prior's vertical backdrop, measured horizontally
MIN_RAY_COMPONENT = 1e-6  # rays this close to parallel to the floor or backdrop never reach it
PRIOR_ADVICE = (
    "no depth given: the world is a FLAT PRIOR (a ground plane and a backdrop, not this scene's shape); for real "
    "geometry pass a depth map (--depth FILE, depth=) or a depth model (--depth-model DIR or a Hugging Face id, "
    f"depth_model=, or set ${DEPTH_MODEL_ENV}), e.g. --depth-model {EXAMPLE_MODEL}"
)


class FlatPriorWarning(UserWarning):
    """A world was generated from an image alone, on the ground-plane-and-backdrop prior."""


@dataclass
class DepthEstimate:
    depth: np.ndarray  # (H,W) metres if metric, else arbitrary units; 0 = invalid
    source: str  # "given", "model:<dir or model id>" or "prior"
    metric: bool
    note: str = ""
    fov_deg: float | None = None  # a model's own horizontal field of view estimate, the depth was made with it
    model: dict = field(default_factory=dict)  # the model's name, files and licence (DepthModelSource.info)


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


def estimate_depth(
    rgb: np.ndarray,
    K: np.ndarray,
    depth_model: str | os.PathLike | None = None,
    camera_height: float = DEFAULT_CAMERA_HEIGHT,
    pitch_deg: float = PRIOR_PITCH_DEG,
    focal_known: bool = True,
) -> DepthEstimate:
    """Depth for an image without a depth map: the named model (``depth_model``, else ``$LYRA_SIM_DEPTH_MODEL``: a
    directory or a Hugging Face model id), else the prior. With ``focal_known`` False a model's own field of view
    estimate (Depth Pro) replaces ``K``'s focal length."""
    name = depth_model or os.environ.get(DEPTH_MODEL_ENV)
    if name:
        from lyra_sim.single_view.depth_inference import model_depth
        from lyra_sim.single_view.depth_models import resolve_depth_model

        source = resolve_depth_model(name)
        result = model_depth(rgb, source, K, focal_known)
        return DepthEstimate(result.depth, f"model:{source.name}", result.metric, note=result.note,
                             fov_deg=result.fov_deg, model=source.info())
    h, w = rgb.shape[:2]
    depth = ground_backdrop_prior(K, w, h, camera_height=camera_height, pitch_deg=pitch_deg)
    note = (f"ground plane {camera_height} m below a camera pitched {pitch_deg} deg down, "
            f"backdrop {PRIOR_BACKDROP:g} m ahead")
    return DepthEstimate(depth, "prior", metric=False, note=note)
