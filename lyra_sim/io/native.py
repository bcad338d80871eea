"""lyra_sim's native world file: safetensors (no pickle), for static and dynamic worlds.

Tensors are stored as activated values under ``k{i}.{field}`` for keyframe i (a static world
has one keyframe); the header metadata records kind, frame, scale and keyframe times.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from lyra_sim.io.atomic import atomic_path
from lyra_sim.io.errors import WorldFileError
from lyra_sim.io.guards import input_file, parse_json
from lyra_sim.io.header_metadata import check_info
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld, WorldError

FORMAT_NAME = "lyra_sim.world"
FORMAT_VERSION = "1"
_FIELDS = ("means", "quats", "scales", "opacities", "sh")


def write_native(world: GaussianWorld | DynamicGaussianWorld, path: str | os.PathLike) -> Path:
    """Write a static or dynamic world to a ``.safetensors`` file atomically."""
    if isinstance(world, DynamicGaussianWorld):
        kind, times, keyframes = "dynamic", world.times, world.worlds
    else:
        kind, times, keyframes = "static", [0.0], [world]
    tensors = {
        f"k{i}.{field}": getattr(w, field).detach().cpu().contiguous()
        for i, w in enumerate(keyframes)
        for field in _FIELDS
    }
    tensors.update({f"k{i}.observed": w.observed.detach().cpu().contiguous() for i, w in enumerate(keyframes)})
    metadata = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kind": kind,
        "frame": keyframes[0].frame,
        "meters_per_unit": json.dumps(keyframes[0].meters_per_unit),
        "times": json.dumps(times),
        "info": json.dumps([w.info for w in keyframes]),
    }
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_native(path: str | os.PathLike) -> GaussianWorld | DynamicGaussianWorld:
    """Read a world written by :func:`write_native`."""
    path = input_file(path, str(path), WorldFileError)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, NotImplementedError, TypeError) as exc:  # F8 dtypes: NotImplemented
        raise WorldFileError(f"{path}: corrupt or unsupported safetensors file ({exc})") from exc
    if metadata.get("format") != FORMAT_NAME:
        raise WorldFileError(f"{path}: not a lyra_sim world file (metadata format={metadata.get('format')!r})")
    try:
        times = parse_json(metadata["times"], f"{path}: metadata 'times'", WorldFileError)
        mpu = parse_json(metadata["meters_per_unit"], f"{path}: metadata 'meters_per_unit'", WorldFileError)
        frame = metadata["frame"]
        infos = parse_json(metadata.get("info", "null"), f"{path}: metadata 'info'", WorldFileError)
        infos = infos or [{} for _ in times]
        if not isinstance(times, list) or not isinstance(infos, list) or len(infos) != len(times) \
                or not all(isinstance(info, dict) for info in infos):
            raise WorldFileError(f"{path}: metadata 'times' and 'info' must be lists of equal length (numbers, "
                                 "objects)")
        if not all(isinstance(t, (int, float)) and not isinstance(t, bool) and math.isfinite(t) for t in times):
            raise WorldFileError(f"{path}: metadata 'times' must be finite numbers (seconds)")
        infos = [check_info(info, f"{path} (keyframe {i})") for i, info in enumerate(infos)]
        keyframes = []
        for i in range(len(times)):
            arrays = {field: tensors[f"k{i}.{field}"] for field in _FIELDS}
            observed = tensors.get(f"k{i}.observed")  # absent in files written before the flag: all observed
            keyframes.append(GaussianWorld(**arrays, frame=frame, meters_per_unit=mpu, info=infos[i],
                                           observed=observed))
        if metadata.get("kind") == "static":
            if len(keyframes) != 1:
                raise WorldFileError(f"{path}: static world with {len(keyframes)} keyframes")
            return keyframes[0]
        return DynamicGaussianWorld(times, keyframes)
    except WorldFileError:
        raise
    except KeyError as exc:
        raise WorldFileError(f"{path}: world file lacks entry {exc}") from exc
    except (WorldError, TypeError, ValueError, OverflowError) as exc:
        raise WorldFileError(f"{path}: {exc}") from exc
