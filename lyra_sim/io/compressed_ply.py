"""SuperSplat / PlayCanvas compressed PLY (``*.compressed.ply``): Gaussians quantised in chunks of 256.

Each chunk stores float min/max bounds of position, log scale and colour; each Gaussian packs position
(11-10-11 bits), rotation (smallest three, 2-10-10-10), log scale (11-10-11) and RGBA (8 bits each) into
four uint32, and the higher SH terms into one uchar each. About 16 bytes per Gaussian at SH degree 0
against 62 in a plain PLY. Encoding and decoding are done by ``gsply`` (PlayCanvas-compatible). gsply keeps
the order it is given, but the format's precision comes from chunks of neighbouring Gaussians, so the writer
sorts them along a Morton (Z-order) curve first, as PlayCanvas's splat-transform does: their order changes.
The axes are those of a plain 3DGS PLY (OpenCV-like x right, y down, z forward for camera-made worlds), and
lyra_sim's frame, scale and info comments go into the header as in a plain PLY.

Two chunk layouts exist and both are read: 18 floats (position, scale and colour bounds; what gsply and
SuperSplat write) and the older 12 (no colour bounds: colours are stored directly as 8-bit values of
0.5 + SH_C0 * f_dc, as splat-transform and the PlayCanvas engine read them).

It shares the ``.ply`` suffix: :func:`is_compressed_ply` tells the two apart by the header.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import gsply
import numpy as np
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.gsply_arrays import gsdata_to_world, warn_if_observed_flags_dropped, world_to_gsdata
from lyra_sim.io.header_metadata import info_from_comments, recorded_frame_scale, world_comments
from lyra_sim.io.morton import morton_order
from lyra_sim.world import GaussianWorld

_SIZES = {"char": 1, "uchar": 1, "int8": 1, "uint8": 1, "short": 2, "ushort": 2, "int16": 2, "uint16": 2,
          "int": 4, "uint": 4, "int32": 4, "uint32": 4, "float": 4, "float32": 4, "double": 8, "float64": 8}
_HEADER_LIMIT = 1 << 20
_END = b"end_header\n"


def _header(head: bytes) -> tuple[int, list[str]] | None:
    """(header length in bytes, header lines) of a PLY, or None when ``head`` holds no complete header."""
    if not head.startswith(b"ply\n"):
        return None
    end = head.find(_END)
    if end < 0:
        return None
    return end + len(_END), head[:end].decode("ascii", errors="replace").splitlines()


def is_compressed_ply(path: Path) -> bool:
    """True when ``path`` is a PLY whose header has the compressed layout (a chunk element, packed vertices)."""
    with open(path, "rb") as f:
        parsed = _header(f.read(_HEADER_LIMIT))
    if parsed is None:
        return False
    lines = [line.split() for line in parsed[1]]
    return any(words[:2] == ["element", "chunk"] for words in lines) and any(
        words == ["property", "uint", "packed_position"] for words in lines
    )


_CHUNK = [f"{bound}_{axis}" for bound in ("min", "max") for axis in "xyz"]
_CHUNK += [f"{bound}_scale_{axis}" for bound in ("min", "max") for axis in "xyz"]
_CHUNK += [f"{bound}_{c}" for bound in ("min", "max") for c in "rgb"]
LAYOUT = {  # the layout gsply (and current SuperSplat / PlayCanvas) read and write, element by element
    "chunk": [("float", name) for name in _CHUNK],
    "vertex": [("uint", name) for name in ("packed_position", "packed_rotation", "packed_scale", "packed_color")],
}
CHUNK_WITHOUT_COLOUR = LAYOUT["chunk"][:12]  # the older layout: no min/max r, g, b
_SH_REST_COUNTS = (9, 24, 45)  # f_rest per Gaussian at SH degree 1, 2, 3


def _check_layout(path: Path, data: bytes, header_len: int, lines: list[str]) -> list[str]:
    """Comments of the header, after checking its elements, properties and sizes against the layout."""
    comments, elements = [], []  # elements: (name, count, [(type, property name), ...])
    for line in lines[1:]:
        words = line.split()
        if not words:
            continue
        if words[0] == "comment":
            comments.append(line.partition(" ")[2])
        elif words[0] == "format" and words[1:2] != ["binary_little_endian"]:
            raise WorldFileError(f"{path}: compressed PLY must be binary_little_endian, got {line!r}")
        elif words[0] == "element":
            if len(words) != 3 or not words[2].isdigit():
                raise WorldFileError(f"{path}: bad PLY element line {line!r}")
            elements.append((words[1], int(words[2]), []))
        elif words[0] == "property":
            if not elements or len(words) != 3 or words[1] not in _SIZES:
                raise WorldFileError(f"{path}: unexpected PLY property line {line!r} in a compressed PLY")
            elements[-1][2].append((words[1], words[2]))
    names = [name for name, _, _ in elements]
    if names not in (["chunk", "vertex"], ["chunk", "vertex", "sh"]):
        raise WorldFileError(f"{path}: compressed PLY elements {names}, expected chunk, vertex[, sh]")
    for name, _, properties in elements[:2]:
        if properties != LAYOUT[name] and not (name == "chunk" and properties == CHUNK_WITHOUT_COLOUR):
            raise WorldFileError(f"{path}: compressed PLY element {name!r} has properties "
                                 f"{[p for _, p in properties]}, expected {[p for _, p in LAYOUT[name]]}")
    if len(elements) == 3:
        rest = elements[2][2]
        if len(rest) not in _SH_REST_COUNTS or rest != [("uchar", f"f_rest_{i}") for i in range(len(rest))]:
            raise WorldFileError(f"{path}: compressed PLY 'sh' element is not uchar f_rest_0..N with N+1 in "
                                 f"{_SH_REST_COUNTS}")
        if elements[2][1] != elements[1][1]:
            raise WorldFileError(f"{path}: {elements[2][1]} SH rows for {elements[1][1]} Gaussians")
    declared = sum(count * sum(_SIZES[t] for t, _ in properties) for _, count, properties in elements)
    body = len(data) - header_len
    if declared != body:
        counts = ", ".join(f"{count} {name}" for name, count, _ in elements)
        raise WorldFileError(f"{path}: header declares {counts} ({declared} bytes) but the body has {body} bytes")
    chunks, vertices = elements[0][1], elements[1][1]
    if vertices == 0:
        raise WorldFileError(f"{path}: compressed PLY with 0 Gaussians (empty world)")
    if chunks != -(-vertices // 256):
        raise WorldFileError(f"{path}: {chunks} chunks for {vertices} Gaussians (expected one per 256)")
    return comments, chunks, len(elements[0][2])


def _with_colour_bounds(data: bytes, header_len: int, chunks: int) -> bytes:
    """A 12-property-chunk file rewritten in the 18-property layout gsply reads: colour bounds [0, 1] per chunk."""
    header = data[:header_len].decode("ascii")
    colour_lines = "".join(f"property float {name}\n" for _, name in LAYOUT["chunk"][12:])
    anchor = "property float max_scale_z\n"
    header = header.replace(anchor, anchor + colour_lines, 1)
    old_bounds = np.frombuffer(data, np.float32, chunks * 12, header_len).reshape(chunks, 12)
    colour = np.tile(np.array([0, 0, 0, 1, 1, 1], np.float32), (chunks, 1))
    bounds = np.concatenate([old_bounds, colour], axis=1).astype("<f4")
    return header.encode("ascii") + bounds.tobytes() + data[header_len + chunks * 48:]


def read_compressed_ply(path: str | os.PathLike, frame: str | None = None,
                        meters_per_unit: float | None = None) -> GaussianWorld:
    """Load a compressed PLY; ``frame``/``meters_per_unit`` override what its header records (as for PLY)."""
    path = Path(path)
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    data = path.read_bytes()
    parsed = _header(data[:_HEADER_LIMIT])
    if parsed is None:
        raise WorldFileError(f"{path}: not a PLY file (no 'ply' magic and 'end_header' line)")
    comments, chunks, chunk_properties = _check_layout(path, data, *parsed)
    recorded_frame, recorded_scale = recorded_frame_scale(comments, str(path))
    info = info_from_comments(comments, str(path))
    if chunk_properties == len(CHUNK_WITHOUT_COLOUR):
        data = _with_colour_bounds(data, parsed[0], chunks)
    try:
        gs = gsply.decompress_from_bytes(data)
    except (ValueError, KeyError, IndexError, TypeError, struct.error, zlib.error) as exc:
        raise WorldFileError(f"{path}: corrupt compressed PLY ({exc})") from exc
    meters_per_unit = recorded_scale if meters_per_unit is None else meters_per_unit
    return gsdata_to_world(gs, path, frame or recorded_frame or "opencv", meters_per_unit, info)


def write_compressed_ply(world: GaussianWorld, path: str | os.PathLike) -> Path:
    """Write a compressed PLY atomically (SH degree 0-3); returns the path written."""
    if world.sh_degree > 3:
        raise WorldFileError(f"{path}: compressed PLY holds SH degree 0-3, the world has {world.sh_degree}")
    warn_if_observed_flags_dropped(world, Path(path), "compressed PLY")
    if len(world):
        world = world.subset(torch.from_numpy(morton_order(world.means.detach().cpu().double().numpy())))
    data = gsply.compress_to_bytes(world_to_gsdata(world))
    magic = b"ply\nformat binary_little_endian 1.0\n"
    if not data.startswith(magic):  # gsply's header layout changed: refuse rather than write a broken file
        raise WorldFileError(f"{path}: unexpected compressed PLY header from gsply {gsply.__version__}")
    comments = "".join(f"comment {line}\n" for line in world_comments(world)).encode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_bytes(magic + comments + data[len(magic):])
    return Path(path)
