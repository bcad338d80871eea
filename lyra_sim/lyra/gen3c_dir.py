"""Reading GEN3C teacher output directories safely.

Layout (one scene ``name``, trajectories k = 0..5)::

    OUT/<k>/rgb/<name>.mp4          the generated video
    OUT/<k>/latent/<name>.pkl       torch.save of a float32 numpy array (1, 16, T, H/8, W/8), diffusion space
    OUT/<k>/pose/<name>.npz         data: camera-to-world (F, 4, 4), inds: frame indices (F,)
    OUT/<k>/intrinsics/<name>.npz   data: fx, fy, cx, cy per frame (F, 4), inds

The official loader unpickles latents with ``weights_only=False``, which runs any code a file carries.
Here they go through torch's weights-only unpickler with an allowlist of exactly the numpy globals
that rebuild an array; anything else (code, other classes, plain pickles) is refused and nothing runs.
"""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lyra_sim.errors import LyraSimError
from lyra_sim.io.guards import load_npz


class TeacherDataError(LyraSimError):
    """A teacher file or directory that is missing, malformed or unsafe."""


class _NdarrayName:
    """What the name ``numpy.ndarray`` resolves to inside a latent pickle: a token, not the class.

    Allowlisting ``numpy.ndarray`` itself would let a pickle CALL it (``ndarray((100000, 100000))``: an
    837-byte file allocating 10 GB of uninitialised memory). The token is only accepted as the first
    argument of :func:`_reconstruct_empty`, which builds the empty array that BUILD then fills with the
    pickled bytes (numpy checks that their length matches the shape).
    """

    def __repr__(self) -> str:
        return "numpy.ndarray (latent loader token)"


_NDARRAY = _NdarrayName()


def _reconstruct_empty(subtype, shape, dtype):
    """``numpy.core.multiarray._reconstruct`` restricted to the empty array numpy's own pickles start from."""
    from numpy._core import multiarray

    if subtype is not _NDARRAY or tuple(shape) != (0,):
        raise TypeError(f"refused array reconstruction {subtype!r}, shape {shape!r}")
    return multiarray._reconstruct(np.ndarray, (0,), dtype)


def _numpy_array_globals() -> list:
    """The globals a pickled numpy array needs, under the names numpy 1.x and 2.x write (see _NdarrayName)."""
    allowed = [(_NDARRAY, "numpy.ndarray"), np.dtype,
               (_reconstruct_empty, "numpy.core.multiarray._reconstruct"),
               (_reconstruct_empty, "numpy._core.multiarray._reconstruct"),
               # BUILD (ndarray.__setstate__) needs the real class among the allowed values; a name with a
               # newline can never be spelled by a pickle's GLOBAL opcode (it reads names line by line).
               (np.ndarray, "\nnumpy.ndarray (BUILD only)")]
    # numpy >= 1.25 pickles dtypes through their classes (numpy.dtypes.Float32DType, ...).
    allowed += [type(np.dtype(code)) for code in ("f2", "f4", "f8")]
    return allowed


def load_teacher_latent(path: str | os.PathLike) -> torch.Tensor:
    """One teacher latent file -> float32 tensor (16, T, h, w) in diffusion space.

    Accepts a ``torch.save`` file holding a numpy float array or a tensor, with or without the leading
    batch axis of size 1. Loads with ``weights_only=True`` and a numpy-array-only allowlist.
    """
    path = Path(path)
    if not path.is_file():
        raise TeacherDataError(f"{path}: latent file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch warns about pickle protocol 4 from numpy
            with torch.serialization.safe_globals(_numpy_array_globals()):
                payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise TeacherDataError(f"{path}: refused to load latent ({_refusal_reason(exc)}); only torch.save'd "
                               "numpy arrays or tensors are accepted, and nothing in the file was run") from exc
    if isinstance(payload, np.ndarray):
        if payload.dtype.kind != "f":
            raise TeacherDataError(f"{path}: latent dtype {payload.dtype}, expected a float array")
        latent = torch.from_numpy(np.ascontiguousarray(payload))
    elif isinstance(payload, torch.Tensor):
        latent = payload
    else:
        raise TeacherDataError(f"{path}: holds {type(payload).__name__}, expected a numpy array or tensor")
    stored = latent.numel() * latent.element_size()
    if stored > path.stat().st_size:  # stride-0 views or arrays built without data: nothing in the file backs them
        raise TeacherDataError(f"{path}: latent claims shape {tuple(latent.shape)} ({stored:,} bytes) but the file "
                               f"holds {path.stat().st_size:,} bytes; refused")
    if latent.dim() == 5 and latent.shape[0] == 1:
        latent = latent[0]
    if latent.dim() != 4:
        raise TeacherDataError(f"{path}: latent shape {tuple(latent.shape)}, expected (1, C, T, h, w)")
    if not latent.is_floating_point():
        raise TeacherDataError(f"{path}: latent dtype {latent.dtype}, expected floating point")
    latent = latent.float()
    if not torch.isfinite(latent).all():
        raise TeacherDataError(f"{path}: latent contains NaN or infinite values")
    return latent


def _refusal_reason(exc: Exception) -> str:
    """A one-line reason from torch's weights-only unpickler error (its text advises weights_only=False)."""
    text = str(exc)
    unsafe = re.search(r"GLOBAL ([\w.]+)", text)
    if unsafe:
        return f"it asks for {unsafe.group(1)}, which is not on the numpy-array allowlist"
    if "Unsupported operand" in text or "magic number" in text:
        return "not a torch.save file (a plain pickle or another format)"
    lines = [line for line in text.splitlines() if line.strip() and "weights_only" not in line]
    return lines[0].strip() if lines else type(exc).__name__


def _load_npz(path: Path, key: str, trailing: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    arrays = load_npz(path, (key, "inds"), "teacher data", TeacherDataError)  # sizes checked before allocating
    if key not in arrays:
        raise TeacherDataError(f"{path}: no array {key!r}")
    try:
        data, inds = np.asarray(arrays[key], dtype=np.float64), arrays.get("inds")
    except (TypeError, ValueError) as exc:
        raise TeacherDataError(f"{path}: {key} is not numeric ({exc})") from exc
    if data.ndim != 1 + len(trailing) or data.shape[1:] != trailing:
        raise TeacherDataError(f"{path}: {key} shape {data.shape}, expected (F, {', '.join(map(str, trailing))})")
    if not np.isfinite(data).all():
        raise TeacherDataError(f"{path}: {key} contains NaN or infinite values")
    if inds is None:
        inds = np.arange(len(data))
    if inds.shape != (len(data),):
        raise TeacherDataError(f"{path}: inds shape {inds.shape} does not match {len(data)} frames")
    return data, inds.astype(np.int64)


@dataclass(frozen=True)
class TeacherView:
    """One trajectory of a teacher scene. The latent is read on demand (``latent()``)."""

    index: int
    latent_path: Path
    cam_to_world: torch.Tensor  # (F, 4, 4) float64, OpenCV convention
    intrinsics: torch.Tensor  # (F, 4) fx, fy, cx, cy at the video resolution
    frame_indices: torch.Tensor  # (F,)
    rgb_path: Path | None

    @property
    def num_frames(self) -> int:
        return int(self.cam_to_world.shape[0])

    def latent(self) -> torch.Tensor:
        return load_teacher_latent(self.latent_path)

    def K(self) -> torch.Tensor:
        """(F, 3, 3) pinhole matrices."""
        from lyra_sim.lyra.plucker import intrinsics_matrix

        return intrinsics_matrix(self.intrinsics)


@dataclass(frozen=True)
class TeacherScene:
    root: Path
    name: str
    views: dict[int, TeacherView]

    def ordered(self, order: tuple[int, ...]) -> list[TeacherView]:
        missing = [k for k in order if k not in self.views]
        if missing:
            raise TeacherDataError(f"{self.root}: trajectories {missing} missing for scene {self.name!r} "
                                   f"(found {sorted(self.views)})")
        return [self.views[k] for k in order]


def _refuse_escaping_link(root: Path, path: Path) -> None:
    """Refuse a file whose real location (symlinks followed) lies outside the teacher directory."""
    if (path.exists() or path.is_symlink()) and not path.resolve().is_relative_to(root.resolve()):
        raise TeacherDataError(f"{path}: links to {path.resolve()}, outside the teacher directory {root}; refused")


def read_teacher_dir(path: str | os.PathLike, name: str | None = None) -> TeacherScene:
    """Index a GEN3C output directory: poses, intrinsics and latent paths of every trajectory of one scene.

    ``name`` picks the scene when the directory holds several; with one scene it may be omitted.
    """
    root = Path(path)
    if not root.is_dir():
        raise TeacherDataError(f"{root}: teacher directory not found")
    trajectory_dirs = sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    if not trajectory_dirs:
        raise TeacherDataError(f"{root}: no trajectory folders (0, 1, ..., 5) found")
    names = sorted({p.stem for d in trajectory_dirs for p in (d / "latent").glob("*.pkl")})
    if not names:
        raise TeacherDataError(f"{root}: no latent/<name>.pkl files in the trajectory folders")
    if name is None:
        if len(names) > 1:
            raise TeacherDataError(f"{root}: several scenes {names}; pass name=")
        name = names[0]
    elif name not in names:
        raise TeacherDataError(f"{root}: scene {name!r} not found (have {names})")

    views = {}
    for folder in trajectory_dirs:
        latent_path = folder / "latent" / f"{name}.pkl"
        if not latent_path.is_file():
            continue
        pose_path, intrinsics_path = folder / "pose" / f"{name}.npz", folder / "intrinsics" / f"{name}.npz"
        rgb = folder / "rgb" / f"{name}.mp4"
        for file in (latent_path, pose_path, intrinsics_path, rgb):
            _refuse_escaping_link(root, file)
        poses, pose_inds = _load_npz(pose_path, "data", (4, 4))
        intrinsics, _ = _load_npz(intrinsics_path, "data", (4,))
        if len(poses) != len(intrinsics):
            raise TeacherDataError(f"{folder}: {len(poses)} poses but {len(intrinsics)} intrinsics rows")
        index = int(folder.name)
        views[index] = TeacherView(index, latent_path, torch.from_numpy(poses), torch.from_numpy(intrinsics),
                                   torch.from_numpy(pose_inds), rgb if rgb.is_file() else None)
    return TeacherScene(root, name, views)
