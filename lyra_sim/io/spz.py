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
from lyra_sim.world import FRAMES, OPENCV_TO_Z_UP, GaussianWorld

#: The axis flip between SPZ's RUB and RDF ("opencv"): a half turn about x, its own inverse.
RUB_TO_RDF = ((1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (0.0, 0.0, -1.0))
#: Niantic's quaternion flip for RUB <-> RDF, real-first (w, x, y, z): R -> F R F.
FLIP_Q = (1.0, 1.0, -1.0, -1.0)
MAGIC = 0x5053474E  # "NGSP"
_GZIP_RATIO_LIMIT = 1100  # deflate cannot expand beyond ~1032:1; more is a lie or a bomb
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15}


def _check_gzip_header(path: Path, data: bytes) -> None:
    """Refuse a gzip SPZ whose header is bad or promises more Gaussians than the file could expand to."""
    try:
        head = zlib.decompressobj(wbits=31).decompress(data, 16)
    except zlib.error as exc:
        raise WorldFileError(f"{path}: corrupt SPZ (gzip: {exc})") from exc
    if len(head) < 16:
        raise WorldFileError(f"{path}: SPZ file too short for its 16-byte header")
    magic, version, count, degree = struct.unpack_from("<IIIB", head)
    if magic != MAGIC:
        raise WorldFileError(f"{path}: not an SPZ file (bad magic {magic:#x})")
    if version not in (1, 2, 3) or degree not in _SH_DIM:
        raise WorldFileError(f"{path}: unsupported SPZ version {version} / SH degree {degree}")
    per_gaussian = 9 + 1 + 3 + 3 + (4 if version >= 3 else 3) + 3 * _SH_DIM[degree]
    if 16 + count * per_gaussian > _GZIP_RATIO_LIMIT * len(data) + (1 << 16):
        raise WorldFileError(f"{path}: SPZ header declares {count:,} Gaussians, more than a {len(data):,}-byte "
                             "file can hold (truncated or hostile file)")


def read_spz(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load an SPZ file into ``frame`` ("opencv", the default, or "z_up" with SPZ's up axis as +z)."""
    path = Path(path)
    frame = frame or "opencv"
    if frame not in FRAMES:
        raise WorldFileError(f"{path}: frame must be one of {FRAMES}, got {frame!r}")
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        _check_gzip_header(path, data)
    elif len(data) < 4 or struct.unpack_from("<I", data)[0] != MAGIC:
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
