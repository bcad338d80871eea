"""Reading and writing world files through one suffix registry (see ``lyra_sim.io.formats``).

Built in: 3DGS PLY (INRIA and Lyra layouts), native safetensors, SuperSplat compressed PLY (same
``.ply`` suffix, told apart by its header; written for ``*.compressed.ply`` or ``format="compressed_ply"``),
Niantic SPZ (``.spz``), antimatter15 ``.splat``, PlayCanvas SOG (``.sog`` bundles and ``meta.json``
folders) and glTF/GLB with ``KHR_gaussian_splatting`` (``.gltf``, ``.glb``); ``scene.json`` from
``lyra-sim simready`` reads as the aligned world it names. Adapters add theirs through the
``lyra_sim.world_formats`` entry point (usd_exporters adds .usd/.usda/.usdc/.usdz).
"""

from __future__ import annotations

import os
from pathlib import Path

from lyra_sim.io.compressed_ply import is_compressed_ply, read_compressed_ply, write_compressed_ply
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.formats import REGISTRY, WorldFormat
from lyra_sim.io.gltf import read_gltf, write_gltf
from lyra_sim.io.guards import input_file
from lyra_sim.io.native import read_native, write_native
from lyra_sim.io.ply import read_ply, write_ply
from lyra_sim.io.scene_file import is_scene_file, read_scene_world
from lyra_sim.io.sog import is_sog_meta, read_sog, write_sog
from lyra_sim.io.splat import read_splat, write_splat
from lyra_sim.io.spz import read_spz, write_spz
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld


def _read_native(path: Path, frame: str | None = None, meters_per_unit: float | None = None):
    if frame is not None or meters_per_unit is not None:
        raise WorldFileError(f"{path}: native world files record their own frame and scale")
    return read_native(path)


def _static_only(write, kind: str):
    def writer(world, path: Path, **options) -> Path:
        if isinstance(world, DynamicGaussianWorld):
            raise WorldFileError(f"{path}: a {kind} holds one static world; save dynamic worlds as .safetensors")
        return write(world, path, **options)

    return writer


COMPRESSED_PLY_SUFFIX = ".compressed.ply"  # SuperSplat's and PlayCanvas's naming convention

REGISTRY.add(WorldFormat("ply", (".ply",), reader=read_ply, writer=_static_only(write_ply, "PLY")))
REGISTRY.add(WorldFormat("native", (".safetensors",), reader=_read_native, writer=write_native))
REGISTRY.add(WorldFormat("compressed_ply", (".ply",), reader=read_compressed_ply,
                         writer=_static_only(write_compressed_ply, "compressed PLY"), sniff=is_compressed_ply))
REGISTRY.add(WorldFormat("spz", (".spz",), reader=read_spz, writer=_static_only(write_spz, "SPZ file")))
REGISTRY.add(WorldFormat("gltf", (".glb", ".gltf"), reader=read_gltf, writer=_static_only(write_gltf, "glTF file")))
REGISTRY.add(WorldFormat("sog", (".sog",), reader=read_sog, writer=_static_only(write_sog, "SOG bundle")))
REGISTRY.add(WorldFormat("sog_meta", (".json",), reader=read_sog, sniff=is_sog_meta))  # meta.json + images
REGISTRY.add(WorldFormat("splat", (".splat",), reader=read_splat, writer=_static_only(write_splat, ".splat file")))


# lyra-sim simready's scene.json (names an aligned world and its collider)
REGISTRY.add(WorldFormat("scene", (".json",), reader=read_scene_world, sniff=is_scene_file))


def load_world(
    path: str | os.PathLike, frame: str | None = None, meters_per_unit: float | None = None
) -> GaussianWorld | DynamicGaussianWorld:
    """Load a world from any registered format (``.ply``, ``.safetensors``, USD, ...), chosen by suffix.

    ``frame`` and ``meters_per_unit`` override what a PLY file records (PLY files from other
    tools record neither; they default to "opencv" and unknown scale); formats that record their
    own frame and scale refuse them.
    """
    path = Path(path)
    if path.suffix.lower() in REGISTRY.suffixes(readable=True):  # before sniffing: a FIFO would block it
        input_file(path, str(path), WorldFileError)  # no /proc files, FIFOs, devices, folders or symlink loops
    fmt = REGISTRY.reader_for(path)
    options = {k: v for k, v in (("frame", frame), ("meters_per_unit", meters_per_unit)) if v is not None}
    return fmt.reader(path, **options)


def save_world(
    world: GaussianWorld | DynamicGaussianWorld, path: str | os.PathLike, format: str | None = None, **options
) -> Path:
    """Write a world atomically in the format its suffix names; ``options`` go to that format's writer.

    ``format`` picks one of several formats sharing a suffix: ``"compressed_ply"`` writes SuperSplat's
    compressed PLY, which is also chosen for names ending in ``.compressed.ply``. PLY takes ``layout``
    "inria" (default) or "lyra" (gaussians_orig); SPZ takes ``version`` 3 (gzip, default) or 4 (zstd);
    USD takes ``export_world``'s options.
    """
    path = Path(path)
    if format is None and path.name.lower().endswith(COMPRESSED_PLY_SUFFIX):
        format = "compressed_ply"
    return REGISTRY.writer_for(path, format).writer(world, path, **options)


def world_suffixes() -> tuple[str, ...]:
    """Every suffix ``load_world`` can read, plug-ins included."""
    return REGISTRY.suffixes(readable=True)


__all__ = ["REGISTRY", "WorldFileError", "WorldFormat", "load_world", "save_world", "world_suffixes"]
