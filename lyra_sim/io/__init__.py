"""Reading and writing world files: 3DGS PLY (INRIA and Lyra layouts) and native safetensors."""

from __future__ import annotations

import os
from pathlib import Path

from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.native import read_native, write_native
from lyra_sim.io.ply import read_ply, write_ply
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

USD_SUFFIXES = (".usd", ".usda", ".usdc", ".usdz")
SAVE_SUFFIXES = (".ply", ".safetensors")  # USD is written by usd_exporters.export_world
WORLD_SUFFIXES = (*SAVE_SUFFIXES, *USD_SUFFIXES)


def load_world(
    path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None
) -> GaussianWorld | DynamicGaussianWorld:
    """Load a world from ``.ply`` (3DGS, INRIA or Lyra layout), ``.safetensors`` (native) or USD.

    ``frame`` and ``meters_per_unit`` override what a PLY file records (PLY files from other
    tools record neither; they default to "opencv" and unknown scale). USD stages (ParticleField
    Gaussian splats) are read by ``usd_exporters.import_world``, imported only when needed.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        return read_ply(path, frame=frame, meters_per_unit=meters_per_unit)
    if suffix == ".safetensors":
        world = read_native(path)
        if frame is not None or meters_per_unit is not None:
            raise WorldFileError(f"{path}: native world files record their own frame and scale")
        return world
    if suffix in USD_SUFFIXES:
        if frame is not None or meters_per_unit is not None:
            raise WorldFileError(f"{path}: USD stages record their own up axis and scale")
        from usd_exporters import import_world

        return import_world(path)
    raise WorldFileError(f"{path}: unknown world file type {suffix!r} (expected one of {WORLD_SUFFIXES})")


def save_world(world: GaussianWorld | DynamicGaussianWorld, path: str | os.PathLike, layout: str = "inria") -> Path:
    """Write a world atomically; PLY takes ``layout`` "inria" (default) or "lyra" (gaussians_orig)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ply":
        if isinstance(world, DynamicGaussianWorld):
            raise WorldFileError(f"{path}: a PLY holds one static world; save dynamic worlds as .safetensors")
        return write_ply(world, path, layout=layout)
    if suffix == ".safetensors":
        return write_native(world, path)
    raise WorldFileError(f"{path}: cannot save a world as {suffix!r} (expected one of {SAVE_SUFFIXES}; "
                         "USD: usd_exporters.export_world)")


__all__ = ["WORLD_SUFFIXES", "WorldFileError", "load_world", "save_world"]
