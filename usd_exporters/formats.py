"""Registers USD with ``lyra_sim.io`` (entry point ``lyra_sim.world_formats``).

The functions below import ``pxr`` only when a USD file is actually read or written, so loading
the entry point is cheap and the core never imports this adapter by name.
"""

from __future__ import annotations

import os
from pathlib import Path

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.formats import FormatRegistry, WorldFormat

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")


def _read_usd(path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None):
    if frame is not None or meters_per_unit is not None:
        raise WorldFileError(f"{path}: USD stages record their own up axis and scale")
    from usd_exporters.stage_io import import_world

    return import_world(path)


def _write_usd(world, path: str | os.PathLike, **options) -> Path:
    from usd_exporters.stage_io import export_world

    return export_world(world, path, **options)


def register(registry: FormatRegistry) -> None:
    """Add USD stages (ParticleField3DGaussianSplat) to ``registry``."""
    registry.add(WorldFormat("usd", USD_SUFFIXES, reader=_read_usd, writer=_write_usd))
