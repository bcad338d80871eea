"""GaussianWorld <-> ``gsply.GSData``, the array bundle gsply reads and writes .spz and compressed PLY with.

GSData holds the values as a 3DGS PLY stores them: centres, log scales, real-first unit quaternions,
logit opacities, the DC SH term (N, 3) and the higher SH terms (N, K-1, 3) coefficient-major.
"""

from __future__ import annotations

import logging
from pathlib import Path

import gsply
import numpy as np
import torch

from lyra_sim.io.errors import WorldFileError
from lyra_sim.world import GaussianWorld, WorldError, sh_degree_from_k

log = logging.getLogger(__name__)
_OPACITY_EPS = 1e-7  # logit(1 - 1e-7) = 16.1: beyond float32's sigmoid resolution anyway
_MIN_SCALE = 1e-12


def _np32(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def warn_if_observed_flags_dropped(world: GaussianWorld, path: Path, kind: str) -> None:
    """SPZ and compressed PLY have no room for the per-Gaussian ``observed`` flag: say so when it is lost."""
    invented = int((~world.observed).sum())
    if invented:
        log.warning("%s: %s has no observed flag; %d completed (unobserved) Gaussians are written like observed "
                    "ones (keep the flag with .ply, .safetensors or USD)", path, kind, invented)


def world_to_gsdata(world: GaussianWorld) -> gsply.GSData:
    """The world's Gaussians as GSData (PLY-form values)."""
    opacities = world.opacities.detach().double().cpu().clamp(_OPACITY_EPS, 1 - _OPACITY_EPS)
    rest = world.sh[:, 1:]
    return gsply.GSData(
        means=_np32(world.means),
        scales=_np32(world.scales.detach().double().clamp_min(_MIN_SCALE).log()),
        quats=_np32(world.quats),
        opacities=_np32(torch.log(opacities) - torch.log1p(-opacities)),
        sh0=_np32(world.sh[:, 0]),
        shN=_np32(rest) if rest.shape[1] else None,
    )


def gsdata_to_world(data: gsply.GSData, path: Path, frame: str, meters_per_unit: float | None,
                    info: dict | None = None) -> GaussianWorld:
    """GSData read from ``path`` -> an activated GaussianWorld; bad values raise WorldFileError naming the file."""
    n = len(data.means)
    rest = np.zeros((n, 0, 3), np.float32) if data.shN is None else np.asarray(data.shN, np.float32).reshape(n, -1, 3)
    try:
        sh_degree_from_k(1 + rest.shape[1])
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc
    arrays = {
        "means": np.asarray(data.means, np.float64).reshape(n, 3),
        "log scales": np.asarray(data.scales, np.float64).reshape(n, 3),
        "quaternions": np.asarray(data.quats, np.float64).reshape(n, 4),
        "opacities": np.asarray(data.opacities, np.float64).reshape(n),
        "colours": np.concatenate([np.asarray(data.sh0, np.float32).reshape(n, 1, 3), rest], axis=1),
    }
    for name, values in arrays.items():
        if not np.isfinite(values).all():
            raise WorldFileError(f"{path}: non-finite {name}")
    quats = arrays["quaternions"]
    if n and (np.linalg.norm(quats, axis=1) == 0).any():
        raise WorldFileError(f"{path}: zero-length rotation quaternion")
    try:
        return GaussianWorld(
            means=torch.from_numpy(arrays["means"]).float(),
            quats=torch.from_numpy(quats).float(),
            scales=torch.from_numpy(np.exp(arrays["log scales"])).float(),
            opacities=torch.from_numpy(1.0 / (1.0 + np.exp(-arrays["opacities"]))).float(),
            sh=torch.from_numpy(arrays["colours"]).float(),
            frame=frame,
            meters_per_unit=meters_per_unit,
            info=dict(info or {}),
        )
    except WorldError as exc:
        raise WorldFileError(f"{path}: {exc}") from exc
