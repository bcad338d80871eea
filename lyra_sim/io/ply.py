"""3D Gaussian Splatting PLY files: the INRIA (graphdeco) layout and Lyra's ``gaussians_orig`` layout.

Reading and writing go through plyfile. Before plyfile touches the body, the header is checked
against the file size, so a header that claims more data than the file holds fails at once
instead of allocating what it claims.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import plyfile
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.world import GaussianWorld, WorldError, sh_degree_from_k

LAYOUTS = ("inria", "lyra")
_TYPE_SIZES = {
    "char": 1, "int8": 1, "uchar": 1, "uint8": 1,
    "short": 2, "int16": 2, "ushort": 2, "uint16": 2,
    "int": 4, "int32": 4, "uint": 4, "uint32": 4,
    "float": 4, "float32": 4, "double": 8, "float64": 8,
}  # fmt: skip
_MAX_HEADER_BYTES = 1 << 20
_REQUIRED = ["x", "y", "z", "opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_COMMENT_KEY = "lyra_sim"
_OPACITY_EPS = 1e-10
_MIN_SCALE = 1e-12
OBSERVED_PROPERTY = "observed"  # 1 = seen by a camera, 0 = invented by completion (absent: all seen)


def _check_header_against_size(path: Path) -> None:
    """Raise WorldFileError if the header is malformed or promises more bytes than the file has."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(_MAX_HEADER_BYTES)
    if not head.startswith(b"ply"):
        raise WorldFileError(f"{path}: not a PLY file (missing 'ply' magic)")
    end = head.find(b"end_header")
    if end < 0:
        raise WorldFileError(f"{path}: PLY header has no 'end_header' within {_MAX_HEADER_BYTES} bytes")
    newline = head.find(b"\n", end)
    if newline < 0:
        raise WorldFileError(f"{path}: file ends right after the PLY header")
    header_len = newline + 1
    body = size - header_len
    fmt = None
    elements: list[list] = []  # [name, count, fixed_row_bytes, n_props, has_list]
    for raw in head[:end].decode("ascii", errors="replace").splitlines():
        words = raw.split()
        if not words:
            continue
        if words[0] == "format" and len(words) >= 2:
            fmt = words[1]
        elif words[0] == "element":
            if len(words) != 3 or not re.fullmatch(r"\d+", words[2]):
                raise WorldFileError(f"{path}: bad PLY element line {raw!r}")
            elements.append([words[1], int(words[2]), 0, 0, False])
        elif words[0] == "property" and elements:
            el = elements[-1]
            el[3] += 1
            if len(words) >= 2 and words[1] == "list":
                if len(words) != 5 or words[2] not in _TYPE_SIZES or words[3] not in _TYPE_SIZES:
                    raise WorldFileError(f"{path}: bad PLY list property line {raw!r}")
                el[2] += _TYPE_SIZES[words[2]]
                el[4] = True
            elif len(words) == 3 and words[1] in _TYPE_SIZES:
                el[2] += _TYPE_SIZES[words[1]]
            else:
                raise WorldFileError(f"{path}: bad PLY property line {raw!r}")
    if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
        raise WorldFileError(f"{path}: unknown PLY format {fmt!r}")
    if fmt == "ascii":
        # Every value takes at least one character and one separator.
        minimum = sum(count * max(2 * n_props - 1, 0) for _, count, _, n_props, _ in elements)
        exact = False
    else:
        minimum = sum(count * row for _, count, row, _, _ in elements)
        exact = not any(has_list for *_, has_list in elements)
    declared = ", ".join(f"{count} {name}" for name, count, *_ in elements)
    if minimum > body or (exact and minimum != body):
        raise WorldFileError(
            f"{path}: PLY header declares {declared} ({minimum} body bytes) but the file body has "
            f"{body} bytes (truncated file or a header that lies about counts)"
        )


def _read_comment_metadata(ply: plyfile.PlyData) -> dict:
    meta = {}
    for comment in ply.comments:
        words = comment.split()
        if words and words[0] == _COMMENT_KEY:
            for item in words[1:]:
                key, _, value = item.partition("=")
                meta[key] = value
    return meta


def read_ply(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None) -> GaussianWorld:
    """Load a 3DGS PLY (INRIA or Lyra layout, SH degree 0-3) into an activated GaussianWorld."""
    path = Path(path)
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    _check_header_against_size(path)
    try:
        ply = plyfile.PlyData.read(str(path))
    except (plyfile.PlyParseError, ValueError, EOFError, OSError) as exc:
        raise WorldFileError(f"{path}: corrupt PLY ({exc})") from exc
    if "vertex" not in ply:
        raise WorldFileError(f"{path}: PLY has no 'vertex' element")
    vertex = ply["vertex"].data
    names = set(vertex.dtype.names or ())
    missing = [p for p in [*_REQUIRED, "f_dc_0", "f_dc_1", "f_dc_2"] if p not in names]
    if missing:
        raise WorldFileError(f"{path}: not a Gaussian splat PLY, missing properties {missing}")
    rest_names = sorted((n for n in names if n.startswith("f_rest_")), key=lambda n: int(n[7:]))
    if rest_names != [f"f_rest_{i}" for i in range(len(rest_names))] or len(rest_names) % 3:
        raise WorldFileError(f"{path}: f_rest_* properties are not numbered 0..3*(K-1)-1")
    k = 1 + len(rest_names) // 3
    try:
        sh_degree_from_k(k)
    except WorldError as exc:
        raise WorldFileError(f"{path}: {len(rest_names)} f_rest values per Gaussian: {exc}") from exc

    def column(name: str) -> np.ndarray:
        values = np.asarray(vertex[name], dtype=np.float64)
        if not np.isfinite(values).all():
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise WorldFileError(f"{path}: property {name!r} has non-finite values (first at vertex {bad})")
        return values

    def columns(prefix: str, count: int) -> np.ndarray:
        return np.stack([column(f"{prefix}{i}") for i in range(count)], axis=-1)

    n = len(vertex)
    means = np.stack([column("x"), column("y"), column("z")], axis=-1)
    quats = columns("rot_", 4)
    if n and (np.linalg.norm(quats, axis=-1) == 0).any():
        raise WorldFileError(f"{path}: zero-length rotation quaternion")
    sh = np.empty((n, k, 3))
    sh[:, 0, :] = columns("f_dc_", 3)
    if k > 1:
        # Channel-major: all R coefficients, then all G, then all B.
        sh[:, 1:, :] = columns("f_rest_", 3 * (k - 1)).reshape(n, 3, k - 1).transpose(0, 2, 1)
    observed = np.asarray(vertex[OBSERVED_PROPERTY]) != 0 if OBSERVED_PROPERTY in names else None
    meta = _read_comment_metadata(ply)
    if meters_per_unit is None and meta.get("meters_per_unit", "none") != "none":
        meters_per_unit = float(meta["meters_per_unit"])
    try:
        return GaussianWorld(
            means=torch.from_numpy(means).float(),
            quats=torch.from_numpy(quats).float(),
            scales=torch.from_numpy(np.exp(columns("scale_", 3))).float(),
            opacities=torch.from_numpy(1.0 / (1.0 + np.exp(-column("opacity")))).float(),
            sh=torch.from_numpy(sh).float(),
            frame=frame or meta.get("frame", "opencv"),
            meters_per_unit=meters_per_unit,
            observed=None if observed is None else torch.from_numpy(observed),
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc


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
    mpu = "none" if world.meters_per_unit is None else repr(float(world.meters_per_unit))
    comments = [f"{_COMMENT_KEY} frame={world.frame} meters_per_unit={mpu}"]
    ply = plyfile.PlyData([plyfile.PlyElement.describe(vertices, "vertex")], text=False, comments=comments)
    with atomic_path(path) as tmp:
        ply.write(str(tmp))
    return Path(path)
