"""OpenUSD adapter: Gaussian worlds as ``UsdVol.ParticleField3DGaussianSplat`` stages for Omniverse / Isaac Sim.

Imports only lyra_sim's core types. ``export_world`` writes .usda/.usdc/.usdz (Z-up, metres, colliders,
physics scene, time-sampled dynamic worlds); ``import_world`` reads such stages, and splat stages from
other tools, back; ``validate_stage`` runs OpenUSD's registered validators. ``usd_exporters.formats``
registers USD with ``lyra_sim.io`` (entry point); the names below are imported lazily so that
registration does not import ``pxr``.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "UsdWorldError": "usd_exporters.splats",
    "export_world": "usd_exporters.stage_io",
    "import_world": "usd_exporters.stage_io",
    "validate_stage": "usd_exporters.validation",
}


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'usd_exporters' has no attribute {name!r}")


__all__ = sorted(_EXPORTS)
