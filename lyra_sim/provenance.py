"""Where a world came from, as typed values: the generating camera, the alignment to the simulation frame and
the depth source.

A world keeps them in ``world.info`` (the form every file format round-trips: PLY comments, native metadata, USD
custom data, so old files still load); these readers turn that dict into checked, typed values, and are the one
place that reads those keys. An ``info`` read from a file is untrusted: each reader checks types and ranges and
names the field it refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lyra_sim.camera import Camera
from lyra_sim.errors import LyraSimError

MAX_IMAGE_SIDE = 16384  # a recorded generating image larger than this is not believed


class ProvenanceError(LyraSimError):
    """A world's recorded provenance (``info``) is malformed: the message names the field."""


def _matrix(value, name: str, shape: tuple[int, int]) -> np.ndarray:
    try:
        matrix = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ProvenanceError(f"{name}: expected a {shape[0]}x{shape[1]} matrix of numbers") from exc
    if matrix.shape != shape or not np.isfinite(matrix).all():
        raise ProvenanceError(f"{name}: expected a finite {shape[0]}x{shape[1]} matrix, got shape {matrix.shape}")
    return matrix


def _number(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProvenanceError(f"{name}: expected a finite number, got {value!r}"[:200])
    return float(value)


@dataclass(frozen=True)
class Alignment:
    """How ``lyra_sim.align`` put a world in the simulation frame (z up, floor at z = 0, metres)."""

    transform: np.ndarray  # (4,4) applied to the world before alignment: x -> s R x + t
    camera_to_world: np.ndarray  # (4,4) the generating camera (OpenCV optical axes) in the aligned frame
    floor_normal: np.ndarray  # (3,) the floor plane n.x + d = 0 in the world before alignment
    floor_offset: float
    meters_per_unit: float
    scale_source: str  # "given", "metric world", "camera height 1.2 m assumed", ...
    camera_height_m: float

    @classmethod
    def from_info(cls, report: dict) -> Alignment:
        """The alignment recorded in ``info["alignment"]`` (ProvenanceError naming a malformed field)."""
        if not isinstance(report, dict):
            raise ProvenanceError("info.alignment: expected a mapping")
        try:
            fields = {key: report[key] for key in ("transform", "camera_to_world", "floor_normal", "floor_offset",
                                                   "meters_per_unit", "scale_source")}
        except KeyError as exc:
            raise ProvenanceError(f"info.alignment: missing {exc.args[0]!r}") from exc
        floor_normal = np.asarray(_matrix([fields["floor_normal"]], "info.alignment.floor_normal", (1, 3))[0])
        return cls(
            transform=_matrix(fields["transform"], "info.alignment.transform", (4, 4)),
            camera_to_world=_matrix(fields["camera_to_world"], "info.alignment.camera_to_world", (4, 4)),
            floor_normal=floor_normal,
            floor_offset=_number(fields["floor_offset"], "info.alignment.floor_offset"),
            meters_per_unit=_number(fields["meters_per_unit"], "info.alignment.meters_per_unit"),
            scale_source=str(fields["scale_source"])[:200],
            camera_height_m=_number(report.get("camera_height_m", 0.0), "info.alignment.camera_height_m"),
        )


def recorded_image_size(info: dict) -> tuple[int, int] | None:
    """(width, height) of the image the world was generated from, when ``info`` records one."""
    size = info.get("image_size")
    if size is None:
        return None
    if (not isinstance(size, (list, tuple)) or len(size) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
            or not all(1 <= v <= MAX_IMAGE_SIDE for v in size)):
        raise ProvenanceError(f"info.image_size: expected [width, height], two integers in 1..{MAX_IMAGE_SIDE}, "
                              f"got {size!r}"[:200])
    return int(size[0]), int(size[1])


def recorded_intrinsics(info: dict) -> np.ndarray | None:
    """The generating camera's 3x3 K (pixel centres at +0.5), when ``info`` records one."""
    if info.get("intrinsics") is None:
        return None
    K = _matrix(info["intrinsics"], "info.intrinsics", (3, 3))
    if not (K[0, 0] > 0 and K[1, 1] > 0):
        raise ProvenanceError(f"info.intrinsics: focal lengths must be positive, got fx={K[0, 0]}, fy={K[1, 1]}")
    return K


def generating_camera(info: dict, frame: str) -> Camera | None:
    """The camera the world was generated from, posed in the world's current frame, or None when not recorded.

    A world straight from a camera ("opencv") has it at the origin; an aligned world at
    ``alignment.camera_to_world``; a "z_up" world that was never aligned has none.
    """
    K, size = recorded_intrinsics(info), recorded_image_size(info)
    if K is None or size is None:
        return None
    if "alignment" in info:
        world_to_cam = np.linalg.inv(Alignment.from_info(info["alignment"]).camera_to_world)
    elif frame == "opencv":
        world_to_cam = np.eye(4)
    else:
        return None
    return Camera(K.astype(np.float32), world_to_cam.astype(np.float32), *size)
