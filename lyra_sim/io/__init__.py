"""Reading and writing world files through one suffix registry (see ``lyra_sim.io.formats``).

Built in: 3DGS PLY (INRIA and Lyra layouts) and native safetensors. Adapters add theirs through the
``lyra_sim.world_formats`` entry point (usd_exporters adds .usd/.usda/.usdc/.usdz).
"""

from __future__ import annotations

import os
from pathlib import Path

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.formats import REGISTRY, WorldFormat
from lyra_sim.io.native import read_native, write_native
from lyra_sim.io.ply import read_ply, write_ply
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld


def _read_native(path: Path, frame: str | None = None, meters_per_unit: float | None = None):
    if frame is not None or meters_per_unit is not None:
        raise WorldFileError(f"{path}: native world files record their own frame and scale")
    return read_native(path)


def _write_ply(world, path: Path, layout: str = "inria") -> Path:
    if isinstance(world, DynamicGaussianWorld):
        raise WorldFileError(f"{path}: a PLY holds one static world; save dynamic worlds as .safetensors")
    return write_ply(world, path, layout=layout)


REGISTRY.add(WorldFormat("ply", (".ply",), reader=read_ply, writer=_write_ply))
REGISTRY.add(WorldFormat("native", (".safetensors",), reader=_read_native, writer=write_native))


def load_world(
    path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None
) -> GaussianWorld | DynamicGaussianWorld:
    """Load a world from any registered format (``.ply``, ``.safetensors``, USD, ...), chosen by suffix.

    ``frame`` and ``meters_per_unit`` override what a PLY file records (PLY files from other
    tools record neither; they default to "opencv" and unknown scale); formats that record their
    own frame and scale refuse them.
    """
    path = Path(path)
    fmt = REGISTRY.reader_for(path)
    options = {k: v for k, v in (("frame", frame), ("meters_per_unit", meters_per_unit)) if v is not None}
    return fmt.reader(path, **options)


def save_world(world: GaussianWorld | DynamicGaussianWorld, path: str | os.PathLike, **options) -> Path:
    """Write a world atomically in the format its suffix names; ``options`` go to that format's writer.

    PLY takes ``layout`` "inria" (default) or "lyra" (gaussians_orig); USD takes ``export_world``'s options.
    """
    path = Path(path)
    return REGISTRY.writer_for(path).writer(world, path, **options)


def world_suffixes() -> tuple[str, ...]:
    """Every suffix ``load_world`` can read, plug-ins included."""
    return REGISTRY.suffixes(readable=True)


__all__ = ["REGISTRY", "WorldFileError", "WorldFormat", "load_world", "save_world", "world_suffixes"]
