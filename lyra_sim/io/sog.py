"""PlayCanvas SOG, version 2 (``.sog`` zip bundles; ``meta.json`` with its images beside it, read only).

Each Gaussian is one pixel of a set of lossless WebP images, in Morton order (row-major from the top left):
``means_l``/``means_u`` hold the low and high bytes of 16-bit positions, quantised between per-axis bounds
of sign(x) * ln(1 + |x|); ``quats`` the three smallest quaternion components times sqrt(2) in [-1, 1] and
252 + the index (w, x, y, z) of the largest in alpha; ``scales`` three indices into a 256-entry codebook
of log scales; ``sh0`` three indices into a codebook of DC coefficients and the opacity (0..255) in
alpha; ``shN_labels`` a 16-bit index into a palette of higher-order SH coefficient sets whose values are
indices into a third codebook (``shN_centroids``, 64 sets per row). ``meta.json`` holds bounds, codebooks
and file names. The axes are those of a 3DGS PLY. lyra_sim's frame, scale and info go into
``meta.json`` under ``"lyra_sim"`` (other readers ignore it); the ``observed`` flag has no room.

Images go through Pillow's WebP codec (lossless, ``exact`` so colour under zero alpha survives). The
codebooks are 1-D k-means (Lloyd on sorted values); the SH palette (splat-transform's size, up to 65,536
entries) is a tree of k-means with at most 64 centres per node, so 2M Gaussians at SH degree 3 encode in
seconds on a CPU, where splat-transform runs a flat k-means on a GPU. No Python library writes SOG (gsply
reads it, with imagecodecs).
"""

from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.gsply_arrays import warn_if_observed_flags_dropped
from lyra_sim.io.guards import MAX_JSON_BYTES, parse_json
from lyra_sim.io.morton import morton_order
from lyra_sim.world import FRAMES, GaussianWorld, WorldError

VERSION = 2
CODEBOOK = 256
_SQRT2 = math.sqrt(2.0)
_SH_COEFFS = {1: 3, 2: 8, 3: 15}  # higher-order coefficients per channel at each SH degree ("bands")
_QUAT_OTHERS = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))
_MAX_MEMBER_BYTES = 1 << 30  # a bundle member larger than this is not a SOG image
BRANCH = 64  # SH palette: centres per node of the k-means tree
FIT_PER_CENTRE = 32  # SH palette: sample points per centre when fitting a node


# --- quantisers ----------------------------------------------------------------------------------------------


def codebook_1d(values: np.ndarray, size: int = CODEBOOK, iterations: int = 12, sample: int = 500_000,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(sorted codebook (size,), uint8 labels like ``values``): 1-D k-means (Lloyd on sorted centres)."""
    flat = values.reshape(-1).astype(np.float64)
    rng = np.random.default_rng(seed)
    fit = flat if len(flat) <= sample else rng.choice(flat, sample, replace=False)
    # Half the starting centres at quantiles (dense where the values are), half evenly over the range (the tails).
    start = np.concatenate([np.quantile(fit, (np.arange(size // 2) + 0.5) / (size // 2)),
                            np.linspace(fit.min(), fit.max(), size - size // 2)]) if len(fit) else np.zeros(1)
    centres = np.unique(start)
    for _ in range(iterations):
        labels = np.searchsorted((centres[1:] + centres[:-1]) / 2, fit)
        sums = np.bincount(labels, fit, len(centres))
        counts = np.bincount(labels, minlength=len(centres))
        centres = np.unique(np.where(counts > 0, sums / np.maximum(counts, 1), centres))
    book = np.full(size, centres[-1])
    book[: len(centres)] = centres
    labels = np.searchsorted((centres[1:] + centres[:-1]) / 2, flat).astype(np.uint8)
    return book.astype(np.float32), labels.reshape(values.shape)


def _nearest(points: np.ndarray, centres: np.ndarray, block: int = 65536) -> np.ndarray:
    """Index of the nearest centre for every point (squared Euclidean distance), in blocks. numpy, not torch:
    torch's CPU matmul costs milliseconds per call on the many small nodes of the tree below."""
    c2 = (centres * centres).sum(1)
    out = np.empty(len(points), np.int64)
    for start in range(0, len(points), block):
        p = points[start:start + block]
        out[start:start + block] = (c2 - 2.0 * (p @ centres.T)).argmin(1)
    return out


def _lloyd(points: np.ndarray, k: int, iterations: int, rng: np.random.Generator) -> np.ndarray:
    """k centres of ``points`` by Lloyd's k-means from random points."""
    centres = points[rng.permutation(len(points))[:k]].copy()
    for _ in range(iterations):
        labels = _nearest(points, centres)
        order = np.argsort(labels, kind="stable")
        used, starts = np.unique(labels[order], return_index=True)
        sums = np.add.reduceat(points[order], starts, axis=0)
        centres[used] = sums / np.diff(np.append(starts, len(order)))[:, None]
    return centres


def _tree_kmeans(points: np.ndarray, k: int, iterations: int, rng: np.random.Generator):
    """(centres (<= k, D), labels (N,)): k-means as a tree of at most BRANCH centres per node, each node fitted
    on a sample of FIT_PER_CENTRE points per centre, so each point meets ~BRANCH centres per level instead of
    k (a flat 65,536-centre k-means of 2M points would take minutes on a CPU)."""
    n = len(points)
    if k >= n:
        return points.copy(), np.arange(n)
    branch = min(k, BRANCH)
    fit = points if n <= FIT_PER_CENTRE * branch else points[rng.permutation(n)[: FIT_PER_CENTRE * branch]]
    centres = _lloyd(fit, branch, iterations, rng)
    labels = _nearest(points, centres)
    if branch == k:
        return centres, labels
    order = np.argsort(labels, kind="stable")
    groups, starts = np.unique(labels[order], return_index=True)
    ends = np.append(starts[1:], n)
    budget = 1 + np.floor((k - branch) * (ends - starts) / n).astype(int)  # >= 1 centre per group, <= k in all
    parts, out, offset = [], np.empty(n, np.int64), 0
    for group, start, end in zip(groups, starts, ends, strict=True):
        members = order[start:end]
        sub_centres, sub_labels = _tree_kmeans(points[members], int(budget[group]), iterations, rng)
        parts.append(sub_centres)
        out[members] = sub_labels + offset
        offset += len(sub_centres)
    return np.concatenate(parts), out


def sh_palette(coefficients: np.ndarray, size: int, iterations: int = 4, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(palette (<= size, D), labels (N,)): tree k-means of the (N, D) higher-order SH coefficients."""
    points = np.ascontiguousarray(coefficients, np.float32)
    return _tree_kmeans(points, size, iterations, np.random.default_rng(seed))


def palette_size(count: int) -> int:
    """splat-transform's palette size for ``count`` Gaussians (1024 x a power of two, at most 65536)."""
    return int(min(64, 2 ** math.floor(math.log2(max(count, 1) / 1024))) * 1024)


# --- writing -------------------------------------------------------------------------------------------------


def _log_transform(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.log1p(np.abs(x))


def _webp(pixels: np.ndarray, width: int, height: int) -> bytes:
    """Lossless WebP of (n, 4) uint8 RGBA pixels laid out row-major in a width x height image."""
    from PIL import Image

    image = np.zeros((height * width, 4), np.uint8)
    image[: len(pixels)] = pixels
    buffer = io.BytesIO()
    Image.fromarray(image.reshape(height, width, 4), "RGBA").save(buffer, "WEBP", lossless=True, exact=True,
                                                                   quality=0, method=0)
    return buffer.getvalue()


def _pack_quats(quats: np.ndarray) -> np.ndarray:
    q = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    largest = np.abs(q).argmax(axis=1)
    q = q * np.where(q[np.arange(len(q)), largest] < 0, -1.0, 1.0)[:, None]
    others = np.array(_QUAT_OTHERS)[largest]
    small = np.take_along_axis(q, others, axis=1) * _SQRT2
    out = np.empty((len(q), 4), np.uint8)
    out[:, :3] = np.clip(np.round((small * 0.5 + 0.5) * 255), 0, 255)
    out[:, 3] = 252 + largest
    return out


def sog_files(world: GaussianWorld, sh_iterations: int = 4) -> dict[str, bytes]:
    """The files of a SOG bundle for ``world`` (meta.json and the WebP images), Gaussians in Morton order."""
    n = len(world)
    if n == 0:
        raise WorldFileError("SOG cannot hold an empty world")
    order = morton_order(world.means.detach().cpu().double().numpy())
    means = world.means.detach().cpu().double().numpy()[order]
    width = math.ceil(math.sqrt(n) / 4) * 4
    height = math.ceil(n / width / 4) * 4
    files: dict[str, bytes] = {}
    logged = _log_transform(means)
    lo, hi = logged.min(0), logged.max(0)
    q = np.round((logged - lo) / np.where(hi > lo, hi - lo, 1.0) * 65535).astype(np.uint32)
    alpha = np.full((n, 1), 255, np.uint8)
    files["means_l.webp"] = _webp(np.concatenate([(q & 255).astype(np.uint8), alpha], 1), width, height)
    files["means_u.webp"] = _webp(np.concatenate([(q >> 8).astype(np.uint8), alpha], 1), width, height)
    files["quats.webp"] = _webp(_pack_quats(world.quats.detach().cpu().double().numpy()[order]), width, height)
    log_scales = np.log(np.maximum(world.scales.detach().cpu().double().numpy()[order], 1e-30))
    scale_book, scale_labels = codebook_1d(log_scales)
    files["scales.webp"] = _webp(np.concatenate([scale_labels, alpha], 1), width, height)
    sh = world.sh.detach().cpu().float().numpy()[order]
    dc_book, dc_labels = codebook_1d(sh[:, 0])
    opacity = np.clip(np.round(world.opacities.detach().cpu().double().numpy()[order] * 255), 0, 255)
    files["sh0.webp"] = _webp(np.concatenate([dc_labels, opacity.astype(np.uint8)[:, None]], 1), width, height)
    meta = {
        "version": VERSION, "asset": {"generator": "lyra_sim"}, "count": n,
        "means": {"mins": lo.tolist(), "maxs": hi.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_book.tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": dc_book.tolist(), "files": ["sh0.webp"]},
    }
    if world.sh_degree > 0:
        coeffs = _SH_COEFFS[world.sh_degree]
        rest = sh[:, 1:].transpose(0, 2, 1).reshape(n, 3 * coeffs)  # channel-major, as PLY's f_rest
        palette, labels = sh_palette(rest, palette_size(n), sh_iterations)
        rest_book, palette_labels = codebook_1d(palette)
        rows = math.ceil(len(palette) / 64)
        centroids = np.zeros((rows * 64, coeffs, 4), np.uint8)
        centroids[: len(palette), :, :3] = palette_labels.reshape(-1, 3, coeffs).transpose(0, 2, 1)
        centroids[..., 3] = 255
        files["shN_centroids.webp"] = _webp(centroids.reshape(-1, 4), 64 * coeffs, rows)
        label_pixels = np.zeros((n, 4), np.uint8)
        label_pixels[:, 0], label_pixels[:, 1], label_pixels[:, 3] = labels & 255, labels >> 8, 255
        files["shN_labels.webp"] = _webp(label_pixels, width, height)
        meta["shN"] = {"count": len(palette), "bands": world.sh_degree, "codebook": rest_book.tolist(),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    meta["lyra_sim"] = {"frame": world.frame, "meters_per_unit": world.meters_per_unit, "info": world.info}
    files["meta.json"] = json.dumps(meta, separators=(",", ":"), default=str).encode()
    return files


def write_sog(world: GaussianWorld, path: str | os.PathLike) -> Path:
    """Write a ``.sog`` bundle (a zip of meta.json and the images, stored: WebP is compressed) atomically."""
    path = Path(path)
    if world.sh_degree > 3:
        raise WorldFileError(f"{path}: SOG holds SH degree 0-3, the world has {world.sh_degree}")
    warn_if_observed_flags_dropped(world, path, "SOG")
    files = sog_files(world)
    with atomic_path(path) as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as bundle:
        for name, data in files.items():
            bundle.writestr(name, data)
    return path


# --- reading -------------------------------------------------------------------------------------------------


def is_sog_meta(path: Path) -> bool:
    """True when a ``.json`` file is a SOG meta.json (a "means" entry naming its image files)."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            return False
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(meta, dict) and isinstance(meta.get("means"), dict) and "files" in meta["means"]


def _opener(path: Path):
    """(meta text, function reading a member by name) for a bundle or a meta.json folder."""
    if path.suffix.lower() == ".json":
        folder = path.parent.resolve()

        def read(name: str) -> bytes:
            target = (folder / name).resolve()
            if target.parent != folder or not target.is_file():
                raise WorldFileError(f"{path}: meta.json names {name!r}, not a file beside it")
            return target.read_bytes()

        if path.stat().st_size > MAX_JSON_BYTES:
            raise WorldFileError(f"{path}: {path.stat().st_size:,} bytes is too big for a SOG meta.json")
        return path.read_text(encoding="utf-8"), read
    try:
        bundle = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise WorldFileError(f"{path}: not a SOG bundle ({exc})") from exc
    members = {info.filename: info for info in bundle.infolist()}

    def read(name: str) -> bytes:
        info = members.get(name)
        if info is None:
            raise WorldFileError(f"{path}: the bundle has no {name!r}")
        if info.file_size > (MAX_JSON_BYTES if name == "meta.json" else _MAX_MEMBER_BYTES):
            raise WorldFileError(f"{path}: bundle member {name!r} claims {info.file_size:,} bytes")
        try:
            return bundle.read(info)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # zlib errors are ValueErrors' kin
            raise WorldFileError(f"{path}: corrupt bundle member {name!r} ({exc})") from exc

    return read("meta.json").decode("utf-8", errors="replace"), read


def _image(path: Path, read, name: str, count: int | None) -> tuple[np.ndarray, int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(read(name))) as image:
            rgba = np.asarray(image.convert("RGBA"))
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise WorldFileError(f"{path}: SOG image {name!r} is not readable ({exc})") from exc
    height, width = rgba.shape[:2]
    if count is not None and width * height < count:
        raise WorldFileError(f"{path}: SOG image {name!r} is {width}x{height}, too small for {count} Gaussians")
    pixels = rgba.reshape(-1, 4)
    return (pixels if count is None else pixels[:count]), width, height


def _codebook(path: Path, entry: dict, name: str) -> np.ndarray:
    book = np.asarray(entry.get("codebook", []), np.float64) if isinstance(entry, dict) else np.zeros(0)
    if book.shape != (CODEBOOK,) or not np.isfinite(book).all():
        raise WorldFileError(f"{path}: SOG {name} codebook must be {CODEBOOK} finite numbers")
    return book


def _files(path: Path, meta: dict, key: str, count: int) -> list[str]:
    entry = meta.get(key)
    files = entry.get("files") if isinstance(entry, dict) else None
    if not isinstance(files, list) or len(files) < count or not all(isinstance(f, str) for f in files):
        raise WorldFileError(f"{path}: SOG meta.json entry {key!r} does not name its {count} image file(s)")
    return files


def read_sog(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load a SOG v2 bundle (``.sog``) or ``meta.json`` folder; ``frame``/``meters_per_unit`` as for PLY."""
    path = Path(path)
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    text, read = _opener(path)
    meta = parse_json(text, f"{path}: meta.json", WorldFileError)
    if not isinstance(meta, dict) or meta.get("version") != VERSION:
        version = meta.get("version") if isinstance(meta, dict) else None
        raise WorldFileError(f"{path}: SOG version {version!r} is not supported (version {VERSION} is)")
    n = meta.get("count")
    if not isinstance(n, int) or n <= 0:
        raise WorldFileError(f"{path}: SOG meta.json count must be a positive integer, got {n!r}")
    means_entry = meta["means"] if isinstance(meta.get("means"), dict) else {}
    lo, hi = (np.asarray(means_entry.get(k, []), np.float64) for k in ("mins", "maxs"))
    if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise WorldFileError(f"{path}: SOG means need 3 finite mins and maxs")
    low_name, high_name = _files(path, meta, "means", 2)[:2]
    low, _, _ = _image(path, read, low_name, n)
    high, _, _ = _image(path, read, high_name, n)
    q = (low[:, :3].astype(np.float64) + 256.0 * high[:, :3]) / 65535.0
    logged = lo + np.where(hi > lo, hi - lo, 1.0) * q
    means = np.sign(logged) * np.expm1(np.abs(logged))
    packed, _, _ = _image(path, read, _files(path, meta, "quats", 1)[0], n)
    tag = packed[:, 3].astype(np.int64) - 252
    if ((tag < 0) | (tag > 3)).any():
        raise WorldFileError(f"{path}: SOG quats alpha must be 252-255 (largest component index)")
    small = (packed[:, :3].astype(np.float64) / 255 * 2 - 1) / _SQRT2
    quats = np.zeros((n, 4))
    np.put_along_axis(quats, np.array(_QUAT_OTHERS)[tag], small, axis=1)
    quats[np.arange(n), tag] = np.sqrt(np.maximum(0.0, 1.0 - (small * small).sum(1)))
    scale_labels, _, _ = _image(path, read, _files(path, meta, "scales", 1)[0], n)
    scales = np.exp(_codebook(path, meta.get("scales"), "scales")[scale_labels[:, :3]])
    colour, _, _ = _image(path, read, _files(path, meta, "sh0", 1)[0], n)
    sh = [_codebook(path, meta.get("sh0"), "sh0")[colour[:, :3]][:, None]]
    if "shN" in meta:
        sh.append(_read_sh_rest(path, read, meta, n))
    lyra = meta.get("lyra_sim") if isinstance(meta.get("lyra_sim"), dict) else {}
    if meters_per_unit is None and isinstance(lyra.get("meters_per_unit"), (int, float)):
        meters_per_unit = float(lyra["meters_per_unit"])
    try:
        return GaussianWorld(
            means=torch.from_numpy(means).float(), quats=torch.from_numpy(quats).float(),
            scales=torch.from_numpy(scales).float(), opacities=torch.from_numpy(colour[:, 3] / 255.0).float(),
            sh=torch.from_numpy(np.concatenate(sh, axis=1)).float(),
            frame=frame or (lyra.get("frame") if lyra.get("frame") in FRAMES else "opencv"),
            meters_per_unit=meters_per_unit, info=dict(lyra.get("info") or {}),
        )
    except (WorldError, TypeError, ValueError) as exc:
        raise WorldFileError(f"{path}: {exc}") from exc


def _read_sh_rest(path: Path, read, meta: dict, n: int) -> np.ndarray:
    entry = meta["shN"] if isinstance(meta["shN"], dict) else {}
    bands, palette_count = entry.get("bands"), entry.get("count")
    if bands not in _SH_COEFFS or not isinstance(palette_count, int) or not 0 < palette_count <= 65536:
        raise WorldFileError(f"{path}: SOG shN needs bands 1-3 and a palette count of 1-65536")
    coeffs = _SH_COEFFS[bands]
    book = _codebook(path, entry, "shN")
    centroids_name, labels_name = _files(path, meta, "shN", 2)[:2]
    centroids, width, height = _image(path, read, centroids_name, None)
    if width != 64 * coeffs or height * 64 < palette_count:
        raise WorldFileError(f"{path}: SOG shN centroids image is {width}x{height}, expected width {64 * coeffs} "
                             f"and room for {palette_count} entries")
    labels_px, _, _ = _image(path, read, labels_name, n)
    labels = labels_px[:, 0].astype(np.int64) | (labels_px[:, 1].astype(np.int64) << 8)
    if (labels >= palette_count).any():
        raise WorldFileError(f"{path}: SOG shN labels point past the {palette_count}-entry palette")
    palette = book[centroids.reshape(-1, coeffs, 4)[:palette_count, :, :3]]  # (P, coeffs, 3 channels)
    return palette[labels]
