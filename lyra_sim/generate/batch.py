"""Generating many worlds at once (images, RGB-D frames, sequence folders), in this process or on Ray."""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

from lyra_sim.errors import warn_from_caller
from lyra_sim.inputs.images import InputError
from lyra_sim.io.atomic import atomic_path
from lyra_sim.scale import parallel_map

DYNAMIC_SUFFIX = ".safetensors"  # the native format holds keyframes; PLY holds one static world


def output_name(source: str | os.PathLike) -> str:
    """Output stem of an input: the file's stem, or the folder's name for a sequence folder."""
    path = Path(source)
    return path.name if path.is_dir() else path.stem


def world_file_bytes(source: str, suffix: str, image_options: dict,
                     sequence_options: dict) -> tuple[str, bytes, str | None]:
    """Generate the world of one input and return (suffix written, file bytes, depth source of an image's world);
    dynamic worlds use .safetensors. The flat prior's warning is left to ``generate_many``, which may run this
    on a Ray worker whose warnings nobody sees."""
    from lyra_sim.generate.api import generate_world
    from lyra_sim.inputs.sequence import is_sequence_dir
    from lyra_sim.io import save_world
    from lyra_sim.single_view.depth_sources import FlatPriorWarning
    from lyra_sim.world import DynamicGaussianWorld

    if is_sequence_dir(source):
        world = generate_world(source, progress=False, **sequence_options)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FlatPriorWarning)
            world = generate_world(source, **image_options)
    if isinstance(world, DynamicGaussianWorld):
        suffix = DYNAMIC_SUFFIX
    with tempfile.TemporaryDirectory() as tmp:
        path = save_world(world, Path(tmp) / f"world{suffix}")
        return suffix, path.read_bytes(), world.info.get("depth_source")


def _fetch_depth_model_once(inputs: list[str | os.PathLike], image_options: dict) -> None:
    """Find the images' depth model here, downloading it once if needed, rather than in every worker at once."""
    from lyra_sim.inputs.sequence import is_sequence_dir
    from lyra_sim.single_view.depth_models import resolve_depth_model
    from lyra_sim.single_view.depth_sources import DEPTH_MODEL_ENV

    name = image_options.get("depth_model") or os.environ.get(DEPTH_MODEL_ENV)
    if name and image_options.get("depth") is None and not all(is_sequence_dir(s) for s in inputs):
        resolve_depth_model(name)


def generate_many(
    inputs: list[str | os.PathLike],
    out_dir: str | os.PathLike,
    suffix: str = ".ply",
    workers: int = 1,
    ray_address: str | None = None,
    progress: bool = True,
    image_options: dict | None = None,
    sequence_options: dict | None = None,
) -> list[Path]:
    """One world file per input in ``out_dir`` (``<stem><suffix>``), skipping those already written.

    Inputs are images (depth from the prior or a depth model) or RGB-D sequence folders; ``image_options``
    or ``sequence_options`` go to ``generate_world`` accordingly. With ``workers`` > 1 or a ``ray_address`` the worlds
    are made on Ray; every file is written here, atomically, so an interrupted batch resumes. Each image whose
    world is a flat prior (no depth, no depth model) gets its own ``FlatPriorWarning`` naming it.
    """
    from lyra_sim.single_view.depth_sources import PRIOR_ADVICE, FlatPriorWarning

    names = [output_name(s) for s in inputs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"inputs: several inputs would write the same output name: {', '.join(dupes)}")
    for source in inputs:
        if not Path(source).exists():
            raise InputError(f"{source}: no such file or folder")
    _fetch_depth_model_once(inputs, image_options or {})
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    written, todo = [], []
    for source, name in zip(inputs, names, strict=True):
        done = [root / f"{name}{s}" for s in (suffix, DYNAMIC_SUFFIX) if (root / f"{name}{s}").exists()]
        if done:
            written.append(done[0])
        else:
            todo.append((str(source), suffix, dict(image_options or {}), dict(sequence_options or {})))
    for index, (used, data, depth_source) in parallel_map(world_file_bytes, todo, workers, ray_address, "worlds",
                                                          progress):
        target = root / f"{output_name(todo[index][0])}{used}"
        with atomic_path(target) as tmp:
            tmp.write_bytes(data)
        written.append(target)
        if depth_source == "prior":
            warn_from_caller(f"{todo[index][0]}: {PRIOR_ADVICE}", FlatPriorWarning)
    return written
