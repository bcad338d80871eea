"""antimatter15's ``.splat`` (the WebGL viewer's format), read only: a headerless array of 32-byte records.

Each record: centre (3 x float32), linear scale (3 x float32), RGBA (4 x uint8: the DC colour
0.5 + SH_C0 * f_dc and sigmoid(opacity), times 255), rotation (4 x uint8: the unit quaternion
w, x, y, z as 128 + 128 * q). Colours are view-independent (SH degree 0). Axes are those of the PLY
it was converted from (RDF, lyra_sim's "opencv"); the format records no frame or scale.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lyra_sim.io.errors import WorldFileError
from lyra_sim.sh import rgb_to_sh0
from lyra_sim.world import GaussianWorld, WorldError

RECORD = np.dtype([("position", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rotation", "u1", 4)])


def read_splat(
    path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None
) -> GaussianWorld:
    """Load a ``.splat`` file; ``frame`` (default "opencv") and ``meters_per_unit`` say what its axes are."""
    path = Path(path)
    if not path.is_file():
        raise WorldFileError(f"{path}: no such file")
    size = path.stat().st_size
    if size % RECORD.itemsize:
        raise WorldFileError(f"{path}: {size} bytes is not a whole number of {RECORD.itemsize}-byte .splat records")
    records = np.fromfile(path, dtype=RECORD)
    for name in ("position", "scale"):
        bad = ~np.isfinite(records[name]).all(axis=1)
        if bad.any():
            raise WorldFileError(f"{path}: non-finite {name} (first at Gaussian {int(np.flatnonzero(bad)[0])})")
    quats = (records["rotation"].astype(np.float32) - 128.0) / 128.0
    zero = ~quats.any(axis=1)
    if zero.any():
        raise WorldFileError(f"{path}: zero rotation quaternion (first at Gaussian {int(np.flatnonzero(zero)[0])})")
    rgba = records["rgba"].astype(np.float32) / 255.0
    try:
        return GaussianWorld(
            means=torch.from_numpy(records["position"].copy()),
            quats=torch.from_numpy(quats),
            scales=torch.from_numpy(records["scale"].copy()),
            opacities=torch.from_numpy(rgba[:, 3].copy()),
            sh=rgb_to_sh0(torch.from_numpy(rgba[:, :3])),
            frame=frame or "opencv",
            meters_per_unit=meters_per_unit,
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc
