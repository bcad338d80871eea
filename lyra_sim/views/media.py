"""Writing rendered frames: PNG images, contact sheets, MP4 videos and depth previews (atomic).

``render_path`` renders a camera path of a world and writes all of them in one call.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from lyra_sim.camera import Camera
from lyra_sim.io.atomic import atomic_dir, atomic_path
from lyra_sim.rendering import DEFAULT_BACKGROUND, render, resolve_backend, unit_float_to_uint8
from lyra_sim.views.options import RenderOptions
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

CONTACT_SHEET_FRAMES = 16  # frames tiled in a contact sheet by default


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(H,W,3) float in [0,1] or uint8 -> uint8 array."""
    arr = image.detach().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image)
    return arr if arr.dtype == np.uint8 else unit_float_to_uint8(arr)


def depth_to_uint8(depth: torch.Tensor | np.ndarray, max_depth: float | None = None) -> np.ndarray:
    """Grey preview of a depth map (near bright, far dark, empty black)."""
    d = depth.detach().cpu().numpy() if isinstance(depth, torch.Tensor) else np.asarray(depth)
    valid = d > 0
    if not valid.any():
        return np.zeros((*d.shape, 3), np.uint8)
    top = max_depth or float(np.percentile(d[valid], 99))
    grey = np.where(valid, 1.0 - np.clip(d / max(top, 1e-9), 0, 1) * 0.85, 0.0)
    return np.repeat((grey * 255).astype(np.uint8)[..., None], 3, axis=-1)


def save_png(image: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write an (H,W,3) image (float in [0,1] or uint8) as PNG, atomically; returns the path."""
    with atomic_path(path) as tmp:
        Image.fromarray(to_uint8(image)).save(tmp, format="PNG")
    return Path(path)


def contact_sheet(frames: Sequence[np.ndarray], columns: int | None = None,
                  max_frames: int = CONTACT_SHEET_FRAMES) -> np.ndarray:
    """Up to ``max_frames`` evenly spaced frames tiled in a grid (uint8)."""
    if not frames:
        raise ValueError("contact_sheet: no frames")
    pick = np.linspace(0, len(frames) - 1, min(max_frames, len(frames))).round().astype(int)
    chosen = [to_uint8(frames[i]) for i in pick]
    cols = columns or math.ceil(math.sqrt(len(chosen)))
    rows = math.ceil(len(chosen) / cols)
    h, w = chosen[0].shape[:2]
    sheet = np.full((rows * h, cols * w, 3), 255, np.uint8)
    for i, frame in enumerate(chosen):
        r, c = divmod(i, cols)
        sheet[r * h : (r + 1) * h, c * w : (c + 1) * w] = frame
    return sheet


def save_mp4(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: int = 24) -> Path:
    """H.264 MP4 through imageio's ffmpeg plugin (the ffmpeg binary ships in imageio-ffmpeg)."""
    stack = np.stack([to_uint8(f) for f in frames])
    h, w = stack.shape[1:3]
    stack = stack[:, : h - h % 2, : w - w % 2]  # yuv420p needs even sizes
    with atomic_path(path) as tmp:
        iio.imwrite(tmp, stack, extension=".mp4", fps=fps, codec="libx264", plugin="FFMPEG", macro_block_size=1)
    return Path(path)


def path_time(world: GaussianWorld | DynamicGaussianWorld, index: int, count: int) -> float | None:
    """World time of frame ``index`` of ``count`` spread evenly over a dynamic world's keyframes (None if static)."""
    if len(world.times) == 1:
        return None
    return world.times[0] + (world.times[-1] - world.times[0]) * index / max(count - 1, 1)


def render_path(world: GaussianWorld | DynamicGaussianWorld, cameras: Camera, out_dir: str | os.PathLike,
                backend: str = RenderOptions.backend, mp4: bool = RenderOptions.mp4, background=DEFAULT_BACKGROUND,
                depth_frames: bool = RenderOptions.depth_frames, fps: int = RenderOptions.fps,
                lod: float | None = RenderOptions.lod) -> dict:
    """Render every camera of a path to ``out_dir``: frame_NNNN.png, contact_sheet.png and flythrough.mp4
    (``lod``: the CPU renderer's level of detail, see ``lyra_sim.render``).

    A dynamic world is played from its first to its last keyframe time over the path. ``depth_frames``
    also writes depth_NNNN.png previews. Returns the written paths: {"frames": [...], "contact_sheet": ...,
    "mp4": ...} (no "mp4" when ``mp4`` is False).
    """
    backend = resolve_backend(backend, world.keyframes[0])
    out_dir = Path(out_dir)
    frames, names = [], {"frames": []}
    with atomic_dir(out_dir) as tmp:  # all files appear together, or none (full disk, error, SIGTERM)
        for i in tqdm(range(len(cameras)), desc="rendering", unit="frame"):
            with torch.no_grad():
                result = render(world, cameras[i], backend=backend, background=background,
                                t=path_time(world, i, len(cameras)), lod=lod)
            frames.append(result.rgb.numpy())
            names["frames"].append(save_png(result.rgb, tmp / f"frame_{i:04d}.png").name)
            if depth_frames:
                save_png(depth_to_uint8(result.depth), tmp / f"depth_{i:04d}.png")
        names["contact_sheet"] = save_png(contact_sheet(frames), tmp / "contact_sheet.png").name
        if mp4:
            names["mp4"] = save_mp4(frames, tmp / "flythrough.mp4", fps=fps).name
    return {key: [str(out_dir / n) for n in value] if isinstance(value, list) else str(out_dir / value)
            for key, value in names.items()}
