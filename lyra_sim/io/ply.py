"""3D Gaussian Splatting PLY files: the INRIA (graphdeco) layout and Lyra's ``gaussians_orig`` layout.

Reading and writing go through plyfile. Before plyfile touches the body, the header is checked
against the file size, so a header that claims more data than the file holds fails at once
instead of allocating what it claims.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import plyfile
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.header_metadata import info_from_comments, recorded_frame_scale, world_comments
from lyra_sim.world import GaussianWorld, WorldError, sh_degree_from_k

LAYOUTS = ("inria", "lyra")
_TYPE_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4,
    "float": 4, "float32": 4, "double": 8, "float64": 8,
}
_MAX_HEADER_BYTES = 1 << 20
#: Rows of an element lyra_sim does not read (faces, edges, ...) that carry list properties. plyfile parses
#: list rows one by one in Python (~5 us each), so an unused list element is capped instead of parsed for seconds.
MAX_UNUSED_LIST_ROWS = 10_000
_REQUIRED = ["x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_OPACITY_EPS = 1e-10
_MIN_SCALE = 1e-12
OBSERVED_PROPERTY = "observed"  # 1 = seen by a camera, 0 = invented by completion (absent: all seen)


@dataclass
class _Element:
    name: str
    count: int
    row_bytes: int = 0  # fixed bytes per row (list properties: their length field only)
    properties: list[str] = field(default_factory=list)
    has_list: bool = False


def _parse_header(path: Path) -> tuple[str, int, list[_Element]]:
    """(format, header length in bytes, elements) of a PLY header, read line by line up to ``end_header``.

    The header ends at the first line that *is* ``end_header`` (not one that merely contains it, such
    as ``comment end_header``), exactly where plyfile ends it.
    """
    with path.open("rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        raise WorldFileError(f"{path}: not a PLY file (missing 'ply' magic)")
    fmt, offset, elements = None, 0, []
    while True:
        newline = head.find(b"\n", offset)
        if newline < 0:
            raise WorldFileError(f"{path}: PLY header has no 'end_header' line within {_MAX_HEADER_BYTES} bytes")
        raw = head[offset:newline].decode("ascii", errors="replace").rstrip("\r")
        offset = newline + 1
        words = raw.split()
        if raw.strip() == "end_header":
            break
        if not words or words[0] in ("ply", "comment", "obj_info"):
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not re.fullmatch(r"\d+", words[2]):
                raise WorldFileError(f"{path}: bad PLY element line {raw!r}")
            elements.append(_Element(words[1], int(words[2])))
        elif words[0] == "property" and elements:
            el = elements[-1]
            if len(words) >= 2 and words[1] == "list":
                if len(words) != 5 or words[2] not in _TYPE_SIZES or words[3] not in _TYPE_SIZES:
                    raise WorldFileError(f"{path}: bad PLY list property line {raw!r}")
                el.row_bytes += _TYPE_SIZES[words[2]]
                el.has_list = True
            elif len(words) == 3 and words[1] in _TYPE_SIZES:
                el.row_bytes += _TYPE_SIZES[words[1]]
            else:
                raise WorldFileError(f"{path}: bad PLY property line {raw!r}")
            el.properties.append(words[-1])
        else:
            raise WorldFileError(f"{path}: bad PLY header line {raw!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise WorldFileError(f"{path}: unknown PLY format {fmt!r}")
    return fmt, offset, elements


def _count_ascii_rows(path: Path, start: int) -> int:
    """Non-blank lines after the header of an ASCII PLY (one element row per line)."""
    rows, pending = 0, b""
    with path.open("rb") as f:
        f.seek(start)
        while chunk := f.read(1 << 20):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            rows += sum(1 for line in lines if line.strip())
    return rows + (1 if pending.strip() else 0)


def _check_header(path: Path) -> None:
    """Refuse, before plyfile allocates anything, a PLY whose header does not match its body or our needs.

    Checks: every element's declared size against the bytes present (exactly, for binary files without
    lists), the row count of ASCII bodies (more rows than declared would be silently dropped), the vertex
    properties a Gaussian splat needs, and unused list elements too long to parse quickly.
    """
    fmt, header_len, elements = _parse_header(path)
    body = path.stat().st_size - header_len
    for el in elements:
        if el.has_list and el.count > MAX_UNUSED_LIST_ROWS:
            raise WorldFileError(f"{path}: element {el.name!r} has {el.count} rows of list properties that "
                                 f"lyra_sim does not use (limit {MAX_UNUSED_LIST_ROWS}); remove it from the file")
    declared = ", ".join(f"{el.count} {el.name}" for el in elements)
    if fmt == "ascii":
        # Every value takes at least one character and one separator.
        minimum = sum(el.count * max(2 * len(el.properties) - 1, 0) for el in elements)
        exact = False
    else:
        minimum = sum(el.count * el.row_bytes for el in elements)
        exact = not any(el.has_list for el in elements)
    if minimum > body or (exact and minimum != body):
        raise WorldFileError(
            f"{path}: PLY header declares {declared} ({minimum} body bytes) but the file body has "
            f"{body} bytes (truncated file or a header that lies about counts)"
        )
    if fmt == "ascii":
        rows, expected = _count_ascii_rows(path, header_len), sum(el.count for el in elements)
        if rows != expected:
            raise WorldFileError(f"{path}: PLY header declares {declared} ({expected} rows) but the ASCII body "
                                 f"has {rows} rows (a header that lies about counts)")
    vertex = next((el for el in elements if el.name == "vertex"), None)
    if vertex is None:
        raise WorldFileError(f"{path}: PLY has no 'vertex' element")
    missing = [p for p in [*_REQUIRED, "f_dc_0", "f_dc_1", "f_dc_2"] if p not in vertex.properties]
    if missing:
        raise WorldFileError(f"{path}: not a Gaussian splat PLY, missing properties {missing}")
    if vertex.has_list:
        raise WorldFileError(f"{path}: the vertex element has list properties (not a Gaussian splat PLY)")


def read_ply(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load a 3DGS PLY (INRIA or Lyra layout, SH degree 0-3) into an activated GaussianWorld."""
    path = Path(path)
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    _check_header(path)
    try:
        ply = plyfile.PlyData.read(str(path))
    except (plyfile.PlyParseError, ValueError, EOFError, OSError, IndexError, TypeError, KeyError) as exc:
        raise WorldFileError(f"{path}: corrupt PLY ({exc})") from exc
    vertex = ply["vertex"].data
    names = set(vertex.dtype.names or ())
    rest_names = [n for n in names if n.startswith("f_rest_")]
    if any(not re.fullmatch(r"f_rest_\d{1,4}", n) for n in rest_names):
        raise WorldFileError(f"{path}: f_rest_* properties must be numbered f_rest_0, f_rest_1, ...")
    rest_names.sort(key=lambda n: int(n[7:]))
    if rest_names != [f"f_rest_{i}" for i in range(len(rest_names))] or len(rest_names) % 3:
        raise WorldFileError(f"{path}: f_rest_* properties are not numbered 0..3*(K-1)-1")
    k = 1 + len(rest_names) // 3
    try:
        sh_degree_from_k(k)
    except WorldError as exc:
        raise WorldFileError(f"{path}: {len(rest_names)} f_rest values per Gaussian: {exc}") from exc

    def column(name: str, infinities: tuple[float, ...] = ()) -> np.ndarray:
        """A property as float64; NaN, and infinities other than ``infinities``, are refused by name."""
        values = np.asarray(vertex[name], dtype=np.float64)
        bad = ~(np.isfinite(values) | np.isin(values, infinities))
        if bad.any():
            raise WorldFileError(f"{path}: property {name!r} has non-finite values (first at vertex "
                                 f"{int(np.flatnonzero(bad)[0])})")
        return values

    def columns(prefix: str, count: int, infinities: tuple[float, ...] = ()) -> np.ndarray:
        return np.stack([column(f"{prefix}{i}", infinities) for i in range(count)], axis=-1)

    n = len(vertex)
    means = np.stack([column("x"), column("y"), column("z")], axis=-1)
    quats = columns("rot_", 4)
    # Normalise in float64 after dividing by the largest component: a float32 norm of (1e38, ...) overflows
    # to inf and would turn the rotation into (0, 0, 0, 0).
    biggest = np.abs(quats).max(axis=-1, keepdims=True)
    if n and (biggest == 0).any():
        raise WorldFileError(f"{path}: zero-length rotation quaternion (first at vertex {int(np.argmin(biggest))})")
    quats = quats / biggest
    quats /= np.linalg.norm(quats, axis=-1, keepdims=True)
    sh = np.empty((n, k, 3))
    sh[:, 0, :] = columns("f_dc_", 3)
    if k > 1:
        # Channel-major: all R coefficients, then all G, then all B.
        sh[:, 1:, :] = columns("f_rest_", 3 * (k - 1)).reshape(n, 3, k - 1).transpose(0, 2, 1)
    observed = np.asarray(vertex[OBSERVED_PROPERTY]) != 0 if OBSERVED_PROPERTY in names else None
    recorded_frame, recorded_scale = recorded_frame_scale(ply.comments, str(path))
    meters_per_unit = recorded_scale if meters_per_unit is None else meters_per_unit
    try:
        return GaussianWorld(
            means=torch.from_numpy(means).float(),
            quats=torch.from_numpy(quats).float(),
            # A log scale of -inf is a zero scale; an opacity logit of +-inf is fully opaque / transparent
            # (what splat-transform writes when it decodes a compressed PLY or SPZ with such Gaussians).
            scales=torch.from_numpy(np.exp(columns("scale_", 3, (-np.inf,)))).float(),
            opacities=torch.from_numpy(_sigmoid(column("opacity", (-np.inf, np.inf)))).float(),
            sh=torch.from_numpy(sh).float(),
            frame=frame or recorded_frame or "opencv",
            meters_per_unit=meters_per_unit,
            info=info_from_comments(ply.comments, str(path)),
            observed=None if observed is None else torch.from_numpy(observed),
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-x)) without overflow warnings: exactly 1 at +inf and 0 at -inf."""
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-logits))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _OPACITY_EPS, 1.0 - _OPACITY_EPS)
    return np.log(p) - np.log1p(-p)


def world_to_ply_array(world: GaussianWorld, layout: str = "inria") -> np.ndarray:
    """The structured vertex array of a world in the given PLY layout (pre-activation values)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    n, k = len(world), world.sh.shape[1]
    if layout == "lyra" and k != 1:
        raise ValueError(f"layout 'lyra' stores plain RGB (SH degree 0); this world has degree {world.sh_degree}")
    means = world.means.detach().double().cpu().numpy()
    sh = world.sh.detach().double().cpu().numpy()
    cols: dict[str, np.ndarray] = {"x": means[:, 0], "y": means[:, 1], "z": means[:, 2]}
    if layout == "inria":
        cols.update({"nx": np.zeros(n), "ny": np.zeros(n), "nz": np.zeros(n)})
    for c in range(3):
        cols[f"f_dc_{c}"] = sh[:, 0, c]
    rest = sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))
    for i in range(rest.shape[1]):
        cols[f"f_rest_{i}"] = rest[:, i]
    cols["opacity"] = _logit(world.opacities.detach().double().cpu().numpy())
    log_scales = np.log(np.maximum(world.scales.detach().double().cpu().numpy(), _MIN_SCALE))
    quats = world.quats.detach().double().cpu().numpy()
    for i in range(3):
        cols[f"scale_{i}"] = log_scales[:, i]
    for i in range(4):
        cols[f"rot_{i}"] = quats[:, i]
    observed = world.observed.detach().cpu().numpy()
    if not observed.all():  # completed worlds only: an extra uchar property that 3DGS viewers ignore
        cols[OBSERVED_PROPERTY] = observed.astype(np.uint8)
    out = np.empty(n, dtype=[(name, "u1" if name == OBSERVED_PROPERTY else "<f4") for name in cols])
    for name, values in cols.items():
        out[name] = values
    return out


def write_ply(world: GaussianWorld, path: str | os.PathLike, layout: str = "inria") -> Path:
    """Write a binary little-endian 3DGS PLY atomically; returns the path written."""
    vertices = world_to_ply_array(world, layout)
    ply = plyfile.PlyData([plyfile.PlyElement.describe(vertices, "vertex")], text=False,
                          comments=world_comments(world))
    with atomic_path(path) as tmp:
        ply.write(str(tmp))
    return Path(path)
