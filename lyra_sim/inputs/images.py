"""Loading and checking the image, depth and intrinsics inputs of the generators.

Images: EXIF orientation applied; 8/16-bit, grayscale, palette and RGBA files converted to RGB in [0, 1]
(16-bit values scaled by 65535, not clipped at 255); alpha < 0.5 marks pixels without valid content.
Above ``max_pixels`` an image is downscaled (box filter, aspect kept) with a note; above
``MAX_DECODE_PIXELS`` it is refused before it is decoded.
Depth: metres = stored value / ``depth_scale`` (units per metre: 1000 for millimetre PNGs, the default for
16-bit PNGs; 5000 for TUM RGB-D; 1 for .npy and arrays). 8-bit depth images are refused (they cannot hold
metric depth), and so is depth whose median is implausible for metres (likely millimetres).
"""

from __future__ import annotations

import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from lyra_sim.camera import scale_intrinsics  # noqa: F401  (re-exported for the loaders' callers)
from lyra_sim.defaults import DEFAULT_MAX_PIXELS
from lyra_sim.errors import LyraSimError
from lyra_sim.io.guards import input_file, load_npy, read_json

#: Pixels above which ``generate_world`` downscales its input (one Gaussian per pixel: ~0.2 KB each).
#: Images larger than this are refused before decoding (8 bytes per pixel while converting).
MAX_DECODE_PIXELS = 50_000_000
#: A median depth above this many metres is taken as a unit mistake (e.g. millimetres given as metres).
MAX_PLAUSIBLE_MEDIAN_DEPTH_M = 100.0
#: Focal lengths in pixels outside this range are not a camera (below 1 px the field of view passes 180 degrees).
MIN_FOCAL_PX, MAX_FOCAL_PX = 1.0, 1e7
DEFAULT_PNG_DEPTH_SCALE = 1000.0  # 16-bit depth PNGs are millimetres unless told otherwise
# A depth PNG read at the default scale is refused above this median (metres): structured-light and ToF RGB-D
# cameras (Kinect, Xtion, RealSense) measure up to ~4-6 m, indoor frames have medians of 1-3 m; TUM's 5000
# units per metre read as millimetres put those at 5-15 m.
MAX_DEFAULT_PNG_MEDIAN_M = 5.0
_ALPHA_VALID = 0.5


class InputError(LyraSimError):
    """An input image, depth map or intrinsics is unreadable or malformed."""


@dataclass(frozen=True)
class LoadedImage:
    """An input image as the generators use it."""

    rgb: np.ndarray  # (H, W, 3) float32 in [0, 1]
    valid: np.ndarray | None  # (H, W) bool from the alpha channel (alpha >= 0.5); None when fully opaque
    source_size: tuple[int, int]  # (width, height) as given, before any downscaling
    notes: tuple[str, ...] = ()

    @property
    def scale(self) -> float:
        """Output width / source width (1.0 when not downscaled)."""
        return self.rgb.shape[1] / self.source_size[0]


def _open_image(path: Path, name: str, what: str) -> Image.Image:
    """Open (header only) with PIL, refusing absurd sizes before any pixel is decoded."""
    input_file(path, name, InputError)  # no /proc files, FIFOs, folders or symlink loops
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit follows
            img = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise InputError(f"{name}: too large to decode ({exc})") from exc
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{name}: cannot read as {what} ({exc})") from exc
    w, h = img.size
    if w * h > MAX_DECODE_PIXELS:
        img.close()
        raise InputError(f"{name}: {w}x{h} pixels ({w * h / 1e6:.0f} MP) is too large; images above "
                         f"{MAX_DECODE_PIXELS / 1e6:.0f} MP are refused")
    return img


def image_size(path: str | os.PathLike, name: str = "image") -> tuple[int, int]:
    """(width, height) of an image file as stored, read from its header (nothing is decoded)."""
    path = Path(path)
    with _open_image(path, f"{name} {path}", "an image") as img:
        return img.size


def _decode(img: Image.Image, path: Path, name: str, what: str) -> Image.Image:
    """Decode the pixels and apply the EXIF orientation; decoder errors name the file."""
    try:
        img.load()
        ImageOps.exif_transpose(img, in_place=True)  # in place: no second copy of a large image
        return img
    except TypeError as exc:  # PIL raises TypeError for some corrupt EXIF blocks
        raise InputError(f"{name}: cannot decode as {what} ({exc})") from exc
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise InputError(f"{name}: cannot decode as {what} ({exc})") from exc


def _target_size(width: int, height: int, max_pixels: int | None) -> tuple[int, int]:
    if max_pixels is None or width * height <= max_pixels:
        return width, height
    factor = math.sqrt(max_pixels / (width * height))
    return max(2, int(width * factor)), max(2, int(height * factor))


def _shrink(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Box-filter ``img`` down to ``size``: an integer ``reduce`` first (4x faster than resizing a big image)."""
    if img.size == size:
        return img
    factor = min(img.width // size[0], img.height // size[1])
    if factor >= 2:
        img = img.reduce(factor)
    return img if img.size == size else img.resize(size, Image.Resampling.BOX)


def _pil_to_array(img: Image.Image, size: tuple[int, int], name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB float32 in [0, 1] at ``size``, alpha float32 or None) from any PIL mode."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        gray = img if img.mode == "I" else img.convert("I")
        hi = gray.getextrema()[1]
        if hi > 65535:
            raise InputError(f"{name}: 32-bit integer image with values up to {hi}; expected 8 or 16-bit colour")
        if gray.size != size:
            gray = _shrink(gray.convert("F"), size)
        values = np.asarray(gray, dtype=np.float32) / 65535.0
        return np.repeat(values[..., None], 3, axis=2), None
    if img.mode == "F":
        img = _shrink(img, size)
        values = np.asarray(img, dtype=np.float32)
        return np.repeat(values[..., None], 3, axis=2), None
    has_alpha = img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info
    if img.mode in ("RGB", "RGBA", "L", "LA"):
        img = _shrink(img, size)  # shrink first: converting a big image would copy it at full size
    mode = "RGBA" if has_alpha else "RGB"
    img = _shrink(img if img.mode == mode else img.convert(mode), size)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return (arr[..., :3], arr[..., 3]) if has_alpha else (arr, None)


def _array_to_rgb(arr: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGB float32 in [0, 1], alpha or None) from a uint8/uint16/float array (gray, RGB or RGBA)."""
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or min(arr.shape[:2]) < 2:
        raise InputError(f"{name}: expected an image of shape (H, W), (H, W, 3) or (H, W, 4), got {arr.shape}")
    if arr.dtype == np.uint8:
        values = arr.astype(np.float32) / 255.0
    elif arr.dtype == np.uint16:
        values = arr.astype(np.float32) / 65535.0
    elif np.issubdtype(arr.dtype, np.floating):
        values = arr.astype(np.float32)
        if not np.isfinite(values).all():
            raise InputError(f"{name}: contains NaN or inf")
        if values.min() < 0 or values.max() > 1:
            raise InputError(f"{name}: float images must lie in [0, 1], got [{values.min():.3g}, {values.max():.3g}]")
    else:
        raise InputError(f"{name}: unsupported dtype {arr.dtype} (use uint8, uint16 or float in [0, 1])")
    alpha = values[..., 3] if values.shape[2] == 4 else None
    rgb = values[..., :3] if values.shape[2] >= 3 else np.repeat(values, 3, axis=2)
    return np.ascontiguousarray(rgb), alpha


def _resize_array(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    channels = [Image.fromarray(np.ascontiguousarray(rgb[..., c])).resize(size, Image.Resampling.BOX)
                for c in range(rgb.shape[2])]
    channels = [np.asarray(channel) for channel in channels]
    return np.stack(channels, axis=-1).clip(0.0, 1.0)


def load_image(image, name: str = "image", max_pixels: int | None = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """An input image (path, PIL image or array) as RGB float32 in [0, 1] plus its alpha validity mask.

    Images above ``max_pixels`` are downscaled (box filter, aspect kept) and say so in ``notes``;
    ``max_pixels=None`` keeps the full size (files above ``MAX_DECODE_PIXELS`` are refused either way).
    """
    if max_pixels is not None and max_pixels < 4:
        raise InputError(f"max_pixels: expected at least 4, got {max_pixels}")
    if isinstance(image, (str, os.PathLike)):
        path = Path(image)
        name = f"{name} {path}"
        img = _open_image(path, name, "an image")
        with img:
            stored = img.size
            try:
                orientation = img.getexif().get(0x0112, 1)
            except (OSError, ValueError, SyntaxError, TypeError):
                orientation = 1  # unreadable EXIF: exif_transpose below leaves the image as stored
            source = (stored[1], stored[0]) if orientation in (5, 6, 7, 8) else stored
            if img.format == "JPEG":  # decode at a reduced size right away (DCT scaling)
                img.draft("RGB", _target_size(*stored, max_pixels))
            rgb, alpha = _pil_to_array(_decode(img, path, name, "an image"), _target_size(*source, max_pixels), name)
    elif isinstance(image, Image.Image):
        image = ImageOps.exif_transpose(image)
        source = image.size
        rgb, alpha = _pil_to_array(image, _target_size(*image.size, max_pixels), name)
    else:
        rgb, alpha = _array_to_rgb(np.asarray(image), name)
        source = (rgb.shape[1], rgb.shape[0])
        size = _target_size(*source, max_pixels)
        if size != source:
            rgb = _resize_array(rgb, size)
            alpha = None if alpha is None else _resize_array(alpha[..., None], size)[..., 0]
    if rgb.ndim != 3 or min(rgb.shape[:2]) < 2:
        raise InputError(f"{name}: expected an image of at least 2x2 pixels, got {rgb.shape[1]}x{rgb.shape[0]}")
    if not np.isfinite(rgb).all() or rgb.min() < 0 or rgb.max() > 1:
        raise InputError(f"{name}: pixel values must lie in [0, 1]")
    notes = []
    if (rgb.shape[1], rgb.shape[0]) != tuple(source):
        notes.append(f"{name}: downscaled from {source[0]}x{source[1]} to {rgb.shape[1]}x{rgb.shape[0]} "
                     f"(pixel budget {max_pixels:,}; pass max_pixels=None to keep the full size)")
    valid = None
    if alpha is not None and (alpha < _ALPHA_VALID).any():
        valid = alpha >= _ALPHA_VALID
        notes.append(f"{name}: {int((~valid).sum()):,} transparent pixels (alpha < 0.5) are treated as invalid")
    return LoadedImage(np.ascontiguousarray(rgb, dtype=np.float32), valid, tuple(source), tuple(notes))


def load_rgb(image, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """RGB float32 (H,W,3) in [0,1] from a path, a PIL image or an array (see :func:`load_image`).

    Unlike ``load_image`` the full size is kept unless ``max_pixels`` is given; alpha is dropped.
    """
    return load_image(image, name, max_pixels).rgb


def _depth_array_from_file(path: Path, name: str, base_name: str,
                           shape: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """(stored depth values, whether they came from an integer image) of a .npy or image file.

    Image headers are checked (bit depth, size against ``shape``) before any pixel is decoded.
    """
    if path.suffix.lower() == ".npy":
        if not path.is_file():
            raise InputError(f"{name}: no such file")
        return load_npy(path, base_name, InputError), False
    img = _open_image(path, name, "a depth image")
    with img:
        if img.mode in ("1", "L", "P", "LA", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
            raise InputError(f"{name}: an {img.mode} (8-bit) image cannot hold metric depth; "
                             "save depth as a 16-bit PNG (e.g. millimetres, --depth-scale 1000) or .npy (metres)")
        if sorted(img.size) != sorted((shape[1], shape[0])):
            raise InputError(f"{name}: depth is {img.width}x{img.height} but the image is {shape[1]}x{shape[0]}")
        img = _decode(img, path, name, "a depth image")
        arr = np.asarray(img.convert("I") if img.mode.startswith("I;16") else img)
    return arr, np.issubdtype(arr.dtype, np.integer)


def _nearest_resize(depth: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resampling (never blends depths across an edge)."""
    rows = ((np.arange(shape[0]) + 0.5) * depth.shape[0] / shape[0]).astype(np.int64)
    cols = ((np.arange(shape[1]) + 0.5) * depth.shape[1] / shape[1]).astype(np.int64)
    return depth[rows[:, None], cols[None, :]]


def load_depth(depth, shape: tuple[int, int], name: str = "depth", depth_scale: float | None = None,
               output_shape: tuple[int, int] | None = None, valid: np.ndarray | None = None) -> np.ndarray:
    """Depth in metres (H,W) float32; zeros, negatives and non-finite values become 0 (invalid).

    ``shape`` is the (H, W) the depth must have (the image's size as given). ``depth_scale`` is stored
    units per metre: 16-bit PNGs default to 1000 (millimetres), .npy files and arrays to 1 (metres).
    ``output_shape`` resamples (nearest) to a downscaled image's size; ``valid`` (at the output size)
    zeroes pixels without valid image content (transparent alpha).
    """
    if depth_scale is not None and not (math.isfinite(depth_scale) and depth_scale > 0):
        raise InputError(f"depth_scale: expected a positive number of units per metre, got {depth_scale}")
    from_png = False
    if isinstance(depth, (str, os.PathLike)):
        path = Path(depth)
        depth, from_png = _depth_array_from_file(path, f"{name} {path}", name, shape)
        name = f"{name} {path}"
    arr = np.asarray(depth)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.ndim != 2:
        raise InputError(f"{name}: expected a single-channel depth map (H, W), got shape {arr.shape}")
    if tuple(arr.shape) != tuple(shape):
        raise InputError(f"{name}: depth is {arr.shape[1]}x{arr.shape[0]} but the image is {shape[1]}x{shape[0]}")
    if arr.dtype == np.bool_ or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name}: unsupported dtype {arr.dtype}")
    scale_given = depth_scale is not None
    if depth_scale is None:
        depth_scale = DEFAULT_PNG_DEPTH_SCALE if from_png else 1.0
    if output_shape is not None and tuple(output_shape) != tuple(arr.shape):
        arr = _nearest_resize(arr, tuple(output_shape))
    with np.errstate(invalid="ignore", over="ignore"):
        out = (arr.astype(np.float64) / depth_scale).astype(np.float32)
    out[~np.isfinite(out) | (out <= 0)] = 0.0
    if valid is not None:
        out[~valid] = 0.0
    positive = out[out > 0]
    if not len(positive):
        raise InputError(f"{name}: no valid (positive, finite) depth values")
    median = float(np.median(positive))
    if median > MAX_PLAUSIBLE_MEDIAN_DEPTH_M:
        raise InputError(
            f"{name}: median depth {median:.4g} m is implausible for metres (likely {_likely_unit(median)}); "
            f"pass depth_scale (--depth-scale) as stored units per metre, e.g. 1000 for millimetres, "
            f"5000 for TUM RGB-D (now {depth_scale:g})")
    if from_png and not scale_given:
        check_default_png_units(median, name)
    return out


def check_default_png_units(median_m: float, name: str = "depth") -> None:
    """Refuse a 16-bit depth PNG read at the default millimetres whose median depth (metres) lies beyond what
    RGB-D cameras measure: TUM RGB-D stores 5000 units per metre, so its frames (median 1-3 m) read 5 x too
    far (5-15 m) and the world would come out five times too big. The user says which unit it is."""
    if median_m <= MAX_DEFAULT_PNG_MEDIAN_M:
        return
    raise InputError(
        f"{name}: median depth {median_m:.2f} m at the default {DEFAULT_PNG_DEPTH_SCALE:g} units per metre "
        f"(millimetres) is beyond an RGB-D camera's usual range ({MAX_DEFAULT_PNG_MEDIAN_M:g} m); pass depth_scale "
        f"(--depth-scale) as stored units per metre: 5000 for TUM RGB-D (median {median_m / 5:.2f} m), or "
        f"{DEFAULT_PNG_DEPTH_SCALE:g} if it really is millimetres")


def _likely_unit(median_m: float) -> str:
    if median_m < 1e5:
        return "millimetres: depth_scale 1000"
    if median_m < 1e6:
        return "0.1 mm units: depth_scale 10000"
    return "not a depth map in any common unit"


def load_intrinsics(intrinsics, width: int, height: int, name: str = "intrinsics") -> np.ndarray:
    """3x3 K from an array, a dict/JSON file with fx, fy, cx, cy (or "K"), checked for sanity."""
    if isinstance(intrinsics, (str, os.PathLike)):
        path = intrinsics
        intrinsics = read_json(path, name, InputError)
        name = f"{name} {path}"
    if isinstance(intrinsics, dict):
        if "K" in intrinsics:
            intrinsics = intrinsics["K"]
        else:
            try:
                fx, fy, cx, cy = (float(intrinsics[k]) for k in ("fx", "fy", "cx", "cy"))
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"{name}: expected keys fx, fy, cx, cy or K ({exc})") from exc
            intrinsics = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]
    try:
        K = np.asarray(intrinsics, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InputError(f"{name}: expected a 3x3 matrix of numbers ({exc})") from exc
    if K.shape != (3, 3) or not np.isfinite(K).all():
        raise InputError(f"{name}: expected a finite 3x3 matrix, got shape {K.shape}")
    if not (MIN_FOCAL_PX <= K[0, 0] <= MAX_FOCAL_PX and MIN_FOCAL_PX <= K[1, 1] <= MAX_FOCAL_PX):
        raise InputError(f"{name}: focal lengths must lie in [{MIN_FOCAL_PX:g}, {MAX_FOCAL_PX:g}] pixels, got "
                         f"fx={K[0, 0]:.6g}, fy={K[1, 1]:.6g}")
    if not (0 <= K[0, 2] <= width and 0 <= K[1, 2] <= height):
        raise InputError(f"{name}: principal point ({K[0, 2]}, {K[1, 2]}) lies outside the {width}x{height} image")
    return K


