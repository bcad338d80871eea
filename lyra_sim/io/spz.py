"""Niantic's SPZ (``.spz``): gzip- (v1-3) or zstd- (v4) compressed, quantised Gaussians, about 10x smaller
than a PLY. Encoding and decoding are done by ``gsply`` (v1-4 read, v3/v4 write): Niantic's own C++
library has no Python wheel, and the PyPI package named ``spz`` is an unrelated Rust source release.

SPZ stores its coordinates in RUB axes (x right, y up, z back; OpenGL / three.js), PLY and lyra_sim's
camera-made worlds use RDF ("opencv": x right, y down, z forward). Reading and writing convert between
them as Niantic's library does for a PLY source: centres and SH coefficients are flipped on y and z (a
half turn F about x), and each rotation R becomes F R F, i.e. the quaternion's y and z components change
sign and w, x stay (Niantic's ``flipQ``). F R alone would give the same ellipsoid but another quaternion
than every other SPZ tool. "z_up" worlds are first turned into RDF axes (their up axis becomes RUB's +y).
SPZ records no scale: worlds read from it have an unknown ``meters_per_unit`` unless the caller gives one.
"""

from __future__ import annotations

import gzip
import os
import struct
import zlib
from pathlib import Path

import gsply
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.gsply_arrays import gsdata_to_world, warn_if_observed_flags_dropped, world_to_gsdata
from lyra_sim.io.guards import inflate
from lyra_sim.world import FRAMES, OPENCV_TO_Z_UP, GaussianWorld

#: The axis flip between SPZ's RUB and RDF ("opencv"): a half turn about x, its own inverse.
RUB_TO_RDF = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
#: Niantic's quaternion flip for RUB <-> RDF, real-first (w, x, y, z): R -> F R F.
FLIP_Q = (1.0, 1.0, -1.0, -1.0)
MAGIC = 0x5053474E  # "NGSP"
_RATIO_LIMIT = 1100  # deflate cannot expand beyond ~1032:1; quantised splats never compress that well in zstd either
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15}


def _per_gaussian(version: int, degree: int) -> int:
    return 9 + 1 + 3 + 3 + (4 if version >= 3 else 3) + 3 * _SH_DIM[degree]


def _check_declared(path: Path, count: int, payload: int, file_bytes: int) -> None:
    """Refuse a header that declares more than a file of ``file_bytes`` can honestly expand to."""
    if count == 0:
        raise WorldFileError(f"{path}: SPZ header declares 0 Gaussians (empty world)")
    if 16 + payload > _RATIO_LIMIT * file_bytes + (1 << 16):
        raise WorldFileError(f"{path}: SPZ header declares {count:,} Gaussians, more than a {file_bytes:,}-byte "
                             "file can hold (truncated or hostile file)")


def _check_gzip(path: Path, data: bytes) -> None:
    """Check a gzip SPZ (v1-3) by inflating it, streamed, to at most what its header declares (no trailing data)."""
    head = inflate(data[:4096], "gzip", 16, f"{path}: SPZ gzip header", WorldFileError, partial=True)
    if len(head) < 16:
        raise WorldFileError(f"{path}: SPZ file too short for its 16-byte header")
    magic, version, count, degree = struct.unpack_from("<IIIB", head)
    if magic != MAGIC:
        raise WorldFileError(f"{path}: not an SPZ file (bad magic {magic:#x})")
    if version not in (1, 2, 3) or degree not in _SH_DIM:
        raise WorldFileError(f"{path}: unsupported SPZ version {version} / SH degree {degree}")
    payload = count * _per_gaussian(version, degree)
    _check_declared(path, count, payload, len(data))
    if len(inflate(data, "gzip", 16 + payload, f"{path}: SPZ", WorldFileError)) != 16 + payload:
        raise WorldFileError(f"{path}: SPZ payload is shorter than the {count:,} Gaussians its header declares")


def _check_zstd(path: Path, data: bytes) -> None:
    """Check an NGSP v4 (zstd) SPZ: header, table of streams, each stream inflated to exactly its declared size."""
    if len(data) < 32:
        raise WorldFileError(f"{path}: SPZ v4 file too short for its 32-byte header")
    _, version, count, degree, _, _, streams, toc = struct.unpack_from("<IIIBBBBI", data)
    if version != 4 or degree not in _SH_DIM:
        raise WorldFileError(f"{path}: unsupported SPZ version {version} / SH degree {degree}")
    sizes = [size for size in (9 * count, count, 3 * count, 3 * count, 4 * count, 3 * _SH_DIM[degree] * count) if size]
    _check_declared(path, count, sum(sizes), len(data))
    if streams != len(sizes) or toc < 32 or toc + 16 * streams > len(data):
        raise WorldFileError(f"{path}: SPZ v4 stream table does not match {count:,} Gaussians of SH degree {degree}")
    offset = toc + 16 * streams
    for i, expected in enumerate(sizes):
        packed, unpacked = struct.unpack_from("<QQ", data, toc + 16 * i)
        if unpacked != expected or offset + packed > len(data):
            raise WorldFileError(f"{path}: SPZ v4 stream {i} sizes ({packed:,} packed, {unpacked:,} unpacked) do "
                                 f"not fit the header or the file")
        out = inflate(data[offset:offset + packed], "zstd", expected, f"{path}: SPZ v4 stream {i}", WorldFileError)
        if len(out) != expected:
            raise WorldFileError(f"{path}: SPZ v4 stream {i} holds {len(out):,} bytes, the header declares "
                                 f"{expected:,}")
        offset += packed
    if offset != len(data):
        raise WorldFileError(f"{path}: {len(data) - offset:,} bytes after the last SPZ v4 stream")


def read_spz(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load an SPZ file into ``frame`` ("opencv", the default, or "z_up" with SPZ's up axis as +z)."""
    path = Path(path)
    frame = frame or "opencv"
    if frame not in FRAMES:
        raise WorldFileError(f"{path}: frame must be one of {FRAMES}, got {frame!r}")
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    data = path.read_bytes()
    # gsply trusts the header's counts (a 12 KB v4 file can ask for 4 GB; trailing gzip data is inflated whole), so
    # the streams are checked here first, bounded by the header; gsply then decodes what was checked.
    if data[:2] == b"\x1f\x8b":
        _check_gzip(path, data)
    elif len(data) >= 4 and struct.unpack_from("<I", data)[0] == MAGIC:
        _check_zstd(path, data)
    else:
        raise WorldFileError(f"{path}: not an SPZ file (neither gzip nor an NGSP header)")
    try:
        gs = gsply.read_spz(path)
    except (ValueError, KeyError, IndexError, TypeError, EOFError, OSError, struct.error, zlib.error,
            gzip.BadGzipFile) as exc:
        raise WorldFileError(f"{path}: corrupt SPZ ({exc})") from exc
    rub = gsdata_to_world(gs, path, "opencv", meters_per_unit)  # "opencv" is only a label until flipped
    rdf = _flip(rub)
    if frame == "opencv":
        return rdf
    return rdf.transformed(rotation=OPENCV_TO_Z_UP, frame=frame, meters_per_unit=meters_per_unit)


def _flip(world: GaussianWorld) -> GaussianWorld:
    """RUB <-> RDF as Niantic converts: centres and SH by the half turn F, rotations R -> F R F."""
    flipped = world.transformed(rotation=torch.tensor(RUB_TO_RDF), meters_per_unit=world.meters_per_unit)
    flipped.quats = world.quats * torch.tensor(FLIP_Q, dtype=world.quats.dtype)
    return flipped


def write_spz(world: GaussianWorld, path: str | os.PathLike, version: int = 3) -> Path:
    """Write an SPZ file atomically: gzip container ``version`` 3 (default, read by every SPZ reader) or
    the zstd container 4. Positions keep 12 fractional bits (0.24 mm at 1 unit = 1 m)."""
    if world.sh_degree > 3:
        raise WorldFileError(f"{path}: SPZ holds SH degree 0-3, the world has {world.sh_degree}")
    if version not in (3, 4):
        raise WorldFileError(f"{path}: SPZ version must be 3 (gzip) or 4 (zstd), got {version}")
    warn_if_observed_flags_dropped(world, Path(path), "SPZ")
    if world.frame == "z_up":
        world = world.transformed(rotation=torch.tensor(OPENCV_TO_Z_UP).T, frame="opencv",
                                  meters_per_unit=world.meters_per_unit)
    rub = _flip(world)
    with atomic_path(path) as tmp:
        gsply.write_spz(tmp, world_to_gsdata(rub), version=version)
    return Path(path)
