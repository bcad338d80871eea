"""Loading and checking the image, depth and intrinsics inputs of the generators."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image

from lyra_sim.errors import LyraSimError


class InputError(LyraSimError):
    """An input image, depth map or intrinsics is unreadable or malformed."""


def load_rgb(image, name: str = "image") -> np.ndarray:
    """RGB float32 (H,W,3) in [0,1] from a path, a PIL image or an array (uint8, or float in [0,1])."""
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        if not path.is_file():
            raise InputError(f"{name}: no such file {path}")
        try:
            with Image.open(path) as img:
                image = np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise InputError(f"{name}: cannot read {path} as an image ({exc})") from exc
    elif isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[..., :3]
    if arr.ndim != 3 or arr.shape[2] != 3 or min(arr.shape[:2]) < 2:
        raise InputError(f"{name}: expected an RGB image of shape (H, W, 3), got {arr.shape}")
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    if arr.dtype == np.uint16:
        return arr.astype(np.float32) / 65535.0
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise InputError(f"{name}: contains NaN or inf")
        if arr.min() < 0 or arr.max() > 1:
            raise InputError(f"{name}: float images must lie in [0, 1], got [{arr.min():.3g}, {arr.max():.3g}]")
        return arr.astype(np.float32)
    raise InputError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")


def load_depth(depth, shape: tuple[int, int], name: str = "depth", depth_scale: float | None = None) -> np.ndarray:
    """Depth in metres (H,W) float32; zeros, negatives and non-finite values become 0 (invalid).

    A path to a 16-bit PNG is read as millimetres (``depth_scale`` 0.001) unless told otherwise;
    ``.npy`` files and arrays are taken as metres (times ``depth_scale`` when given).
    """
    if isinstance(depth, (str, os.PathLike)):
        path = Path(depth)
        if not path.is_file():
            raise InputError(f"{name}: no such file {path}")
        if path.suffix.lower() == ".npy":
            depth = np.load(path, allow_pickle=False)
        else:
            try:
                with Image.open(path) as img:
                    depth = np.asarray(img)
            except OSError as exc:
                raise InputError(f"{name}: cannot read {path} as a depth image ({exc})") from exc
            if depth.dtype == np.uint16 and depth_scale is None:
                depth_scale = 0.001
    arr = np.asarray(depth)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a single-channel depth map (H, W), got shape {arr.shape}")
    if tuple(arr.shape) != tuple(shape):
        raise InputError(f"{name}: depth is {arr.shape[1]}x{arr.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name}: unsupported dtype {arr.dtype}")
    out = arr.astype(np.float32) * np.float32(depth_scale or 1.0)
    out[~np.isfinite(out) | (out <= 0)] = 0.0
    if not (out > 0).any():
        raise InputError(f"{name}: no valid (positive, finite) depth values")
    return out


def load_intrinsics(intrinsics, width: int, height: int, name: str = "intrinsics") -> np.ndarray:
    """3x3 K from an array, a dict/JSON file with fx, fy, cx, cy (or "K"), checked for sanity."""
    if isinstance(intrinsics, (str, os.PathLike)):
        path = Path(intrinsics)
        try:
            intrinsics = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(f"{name}: cannot read {path} as JSON ({exc})") from exc
    if isinstance(intrinsics, dict):
        if "K" in intrinsics:
            intrinsics = intrinsics["K"]
        else:
            try:
                fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{name}: expected keys fx, fy, cx, cy or K ({exc})") from exc
            intrinsics = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    K = np.asarray(intrinsics, dtype=np.float64)
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise InputError(f"{name}: expected a finite 3x3 matrix, got shape {K.shape}")
    if K[0, 0] <= 0 or K[1, 1] <= 0:
        raise InputError(f"{name}: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    if not (0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height):
        raise InputError(f"{name}: principal point ({K[0, 2]}, {K[1, 2]}) lies outside the {width}x{height} image")
    return K
