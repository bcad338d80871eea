"""antimatter15's ``.splat`` (the WebGL viewer's format): a headerless array of 32-byte records.

Each record: centre (3 x float32), linear scale (3 x float32), RGBA (4 x uint8: the DC colour
0.5 + SH_C0 * f_dc and sigmoid(opacity), times 255), rotation (4 x uint8: the unit quaternion
w, x, y, z as 128 + 128 * q). Colours are view-independent (SH degree 0). Axes are those of the PLY
it was converted from (RDF, lyra_sim's "opencv"); the format records no frame or scale. Writing keeps
only the DC colour (higher SH terms, the frame, the scale and the observed flag are dropped, with a warning)
and sorts the Gaussians by decreasing size x opacity, as antimatter15's converter does, so viewers that
stream the file draw the most visible ones first.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.guards import input_file
from lyra_sim.sh import rgb_to_sh0
from lyra_sim.world import GaussianWorld, WorldError

log = logging.getLogger(__name__)

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])
#: Largest .splat read by default (8M Gaussians; the world in memory takes about 2x the file): raise ``max_bytes``.
MAX_SPLAT_BYTES = 256 << 20
_CHUNK_RECORDS = 1 << 18  # read and checked 8 MB at a time: no second full-size copy of the file


def read_splat(
    path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None,
    max_bytes: int | None = None,
) -> GaussianWorld:
    """Load a ``.splat`` file; ``frame`` (default "opencv") and ``meters_per_unit`` say what its axes are.

    Files over ``max_bytes`` (default :data:`MAX_SPLAT_BYTES`, read at call time) are refused before anything
    is read; the rest is read and checked in chunks.
    """
    max_bytes = MAX_SPLAT_BYTES if max_bytes is None else max_bytes
    path = input_file(path, str(path), WorldFileError)
    size = path.stat().st_size
    if size % RECORD.itemsize:
        raise WorldFileError(f"{path}: {size} bytes is not a whole number of {RECORD.itemsize}-byte .splat records")
    if size == 0:
        raise WorldFileError(f"{path}: empty .splat file (no Gaussians)")
    if size > max_bytes:
        raise WorldFileError(f"{path}: {size:,} bytes ({size // RECORD.itemsize:,} Gaussians) is over the .splat "
                             f"limit of {max_bytes:,} bytes; raise lyra_sim.io.splat.MAX_SPLAT_BYTES (or read_splat's "
                             "max_bytes) to read it anyway")
    n = size // RECORD.itemsize
    means, scales = np.empty((n, 3), np.float32), np.empty((n, 3), np.float32)
    quats, rgba = np.empty((n, 4), np.float32), np.empty((n, 4), np.float32)
    with path.open("rb") as f:
        for start in range(0, n, _CHUNK_RECORDS):
            records = np.fromfile(f, dtype=RECORD, count=min(_CHUNK_RECORDS, n - start))
            if len(records) != min(_CHUNK_RECORDS, n - start):
                raise WorldFileError(f"{path}: the file shrank while it was read")
            rows = slice(start, start + len(records))
            for name, out in (("position", means), ("scale", scales)):
                bad = ~np.isfinite(records[name]).all(axis=1)
                if bad.any():
                    raise WorldFileError(f"{path}: non-finite {name} (first at Gaussian {start + int(np.argmax(bad))})")
                out[rows] = records[name]
            quats[rows] = (records["rotation"].astype(np.float32) - 128.0) / 128.0
            zero = ~quats[rows].any(axis=1)
            if zero.any():
                first = start + int(np.argmax(zero))
                raise WorldFileError(f"{path}: zero rotation quaternion (first at Gaussian {first})")
            rgba[rows] = records["rgba"].astype(np.float32) / 255.0
    try:
        return GaussianWorld(
            means=torch.from_numpy(means),
            quats=torch.from_numpy(quats),
            scales=torch.from_numpy(scales),
            opacities=torch.from_numpy(rgba[:, 3].copy()),
            sh=rgb_to_sh0(torch.from_numpy(rgba[:, :3])),
            frame=frame or "opencv",
            meters_per_unit=meters_per_unit,
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc


def world_to_splat_records(world: GaussianWorld) -> np.ndarray:
    """The world's Gaussians as ``.splat`` records, most visible (largest scale product x opacity) first."""
    means = world.means.detach().cpu().float().numpy()
    scales = world.scales.detach().cpu().float().numpy()
    opacities = world.opacities.detach().cpu().float().numpy()
    order = np.argsort(-(scales.astype(np.float64).prod(axis=1) * opacities), kind="stable")
    rgba = np.concatenate([world.rgb.detach().cpu().float().numpy(), opacities[:, None]], axis=1)
    quats = world.quats.detach().cpu().double().numpy()
    records = np.empty(len(world), RECORD)
    records["position"] = means[order]
    records["scale"] = scales[order]
    records["rgba"] = np.clip(np.round(rgba[order] * 255), 0, 255).astype(np.uint8)
    records["rotation"] = np.clip(np.round(quats[order] * 128 + 128), 0, 255).astype(np.uint8)
    return records


def write_splat(world: GaussianWorld, path: str | os.PathLike) -> Path:
    """Write a ``.splat`` file atomically (DC colour only); returns the path written."""
    dropped = [what for what, lost in (
        (f"SH degree {world.sh_degree} (only the DC colour is kept)", world.sh_degree > 0),
        (f"{int((~world.observed).sum())} completed Gaussians' observed flag", not bool(world.observed.all())),
        (f"frame {world.frame!r} and scale", world.frame != "opencv" or world.meters_per_unit is not None),
    ) if lost]
    if dropped:
        log.warning("%s: .splat records no %s", path, "; no ".join(dropped))
    records = world_to_splat_records(world)
    with atomic_path(path) as tmp:
        records.tofile(tmp)
    return Path(path)
