"""Running a transformers monocular depth model on one image: Depth Anything (V1/V2, relative or metric) and
Depth Pro (metric, with its own field-of-view estimate).

Depth Anything goes through transformers' own image processor and ``post_process_depth_estimation``.
Depth Pro's processor (``DepthProImageProcessor``) needs torchvision, which has no build for the pinned
CPU torch, so its documented steps are done here with torch: rescale and normalise, then resize
(bilinear, no antialiasing) to the checkpoint's size; the canonical inverse depth it predicts becomes
metres with the focal length ``f``: ``depth = f / (W * inverse)`` (W the image width in pixels).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass

import numpy as np

from lyra_sim.single_view.depth_models import DepthModelError, DepthModelSource, load_config

RELATIVE_DEPTH_CAP = 50.0  # a relative model's depth (median 1) is clipped here: the sky is not infinitely far
DISPARITY_ZERO_PERCENTILE = 1  # a relative model's disparity shift: its 1st percentile becomes zero
MAX_METRIC_DEPTH = 1e4  # metres; Depth Pro's own clamp
DEPTH_PRO_SIZE = 1536  # DepthProImageProcessor's defaults, used where the checkpoint's preprocessor_config omits them
DEPTH_PRO_MEAN_STD = 0.5


@dataclass
class ModelDepth:
    depth: np.ndarray  # (H,W) metres if metric, else relative (median 1); 0 = no depth there
    metric: bool
    fov_deg: float | None = None  # the model's horizontal field of view estimate, when the depth was made with it
    note: str = ""


def model_depth(rgb: np.ndarray, source: DepthModelSource, K: np.ndarray, focal_known: bool) -> ModelDepth:
    """Depth of ``rgb`` (H,W,3 in [0,1]) by the model at ``source``. ``K`` is the camera's intrinsics; with
    ``focal_known`` False a model that estimates its field of view (Depth Pro) uses its own focal length."""
    import torch

    config = load_config(source)
    with torch.no_grad():
        if config["model_type"] == "depth_pro":
            result = _depth_pro(rgb, source, K, focal_known)
        else:
            result = _depth_anything(rgb, source, config)
    if not (result.depth > 0).any():
        raise DepthModelError(f"depth model {source.name}: predicted no usable depth for this image")
    return result


@functools.lru_cache(maxsize=2)
def _loaded(path: str):
    """(model, processor or None) for a model folder, loaded once per process (batches reuse it)."""
    try:
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation
    except ImportError as exc:
        raise DepthModelError("depth model: needs the 'transformers' package (pip install 'lyra-sim[depth]')") from exc
    model = AutoModelForDepthEstimation.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
    if model.config.model_type == "depth_pro":
        return model, None
    # the PIL backend: the same preprocessing with or without torchvision installed (the tested one)
    return model, AutoImageProcessor.from_pretrained(path, local_files_only=True, backend="pil")


def _depth_anything(rgb: np.ndarray, source: DepthModelSource, config: dict) -> ModelDepth:
    model, processor = _loaded(str(source.path))
    h, w = rgb.shape[:2]
    inputs = processor(images=(rgb * 255).round().astype(np.uint8), return_tensors="pt")
    outputs = model(**inputs)
    pred = processor.post_process_depth_estimation(outputs, target_sizes=[(h, w)])[0]["predicted_depth"]
    pred = pred.float().numpy()
    if config.get("depth_estimation_type", "relative") == "metric":
        return ModelDepth(np.where(pred > 0, pred, 0.0).astype(np.float32), metric=True)
    return ModelDepth(relative_depth(pred), metric=False, note="relative depth (inverse of the model's disparity, "
                      "median 1): the scale is unknown")


def relative_depth(disparity: np.ndarray) -> np.ndarray:
    """Depth with median 1 from a relative model's affine-invariant disparity (shifted so its 1st percentile is 0)."""
    shifted = disparity - np.percentile(disparity, DISPARITY_ZERO_PERCENTILE)
    valid = shifted > 1e-6
    depth = np.zeros_like(shifted, dtype=np.float32)
    depth[valid] = 1.0 / shifted[valid]
    if valid.any():
        depth[valid] /= np.median(depth[valid])
    return np.minimum(depth, RELATIVE_DEPTH_CAP)


def depth_pro_pixels(rgb: np.ndarray, preprocessor: dict):
    """DepthProImageProcessor's pixel values: rescale to [0,1], normalise, then resize (bilinear, no antialias)."""
    import torch

    size = preprocessor.get("size") or {}
    height, width = size.get("height", DEPTH_PRO_SIZE), size.get("width", DEPTH_PRO_SIZE)
    mean = torch.tensor(preprocessor.get("image_mean", [DEPTH_PRO_MEAN_STD] * 3)).view(1, 3, 1, 1)
    std = torch.tensor(preprocessor.get("image_std", [DEPTH_PRO_MEAN_STD] * 3)).view(1, 3, 1, 1)
    scale = preprocessor.get("rescale_factor", 1 / 255)
    pixels = torch.from_numpy((rgb * 255).round().astype(np.float32)).permute(2, 0, 1)[None] * scale
    pixels = (pixels - mean) / std
    return torch.nn.functional.interpolate(pixels, size=(height, width), mode="bilinear", align_corners=False,
                                           antialias=False)


def _depth_pro(rgb: np.ndarray, source: DepthModelSource, K: np.ndarray, focal_known: bool) -> ModelDepth:
    import torch

    model, _ = _loaded(str(source.path))
    h, w = rgb.shape[:2]
    processor_file = source.path / "preprocessor_config.json"
    preprocessor = json.loads(processor_file.read_text()) if processor_file.is_file() else {}
    outputs = model(pixel_values=depth_pro_pixels(rgb, preprocessor))
    fov = None if outputs.field_of_view is None else float(outputs.field_of_view.reshape(-1)[0])
    if fov is not None and not 0 < fov < 180:
        raise DepthModelError(f"depth model {source.name}: field-of-view estimate {fov:.1f} deg is not in (0, 180); "
                              "pass intrinsics")
    if focal_known or fov is None:
        focal, used_fov = float(K[0, 0]), None
        note = "metric depth scaled for the camera's focal length" + ("" if focal_known else
                                                                      " (assumed: the model has no field-of-view head)")
    else:
        focal, used_fov = 0.5 * w / math.tan(math.radians(fov) / 2), fov
        note = f"metric depth and the model's own field of view ({fov:.1f} deg horizontal)"
    inverse = torch.nn.functional.interpolate(outputs.predicted_depth[:, None], size=(h, w), mode="bilinear",
                                              align_corners=False)[0, 0].float().numpy()
    inverse = inverse * w / focal
    depth = np.zeros_like(inverse)
    valid = inverse > 0  # the head ends in a ReLU: zero is "no depth", not 10 km
    depth[valid] = np.minimum(1.0 / inverse[valid], MAX_METRIC_DEPTH)
    return ModelDepth(depth.astype(np.float32), metric=True, fov_deg=used_fov, note=note)
