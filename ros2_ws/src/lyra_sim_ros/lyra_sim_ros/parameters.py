"""The world_camera node's parameters: ONE table of defaults, descriptions and checks.

The node declares these, config/camera.yaml lists the same defaults (a test keeps them equal), and the
launch file passes only the arguments a user actually gave (`launch_parameters`). No rclpy import here, so
launch files and tests can use the table without a running ROS graph.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_IMAGE_SIDE = 8192  # pixels; beyond this the CPU renderer needs gigabytes per frame
MAX_IMAGE_PIXELS = 4096 * 4096
FOV_RANGE_DEG = (1.0, 179.0)  # horizontal field of view of a pinhole camera
MAX_RATE_HZ = 1000.0
MAX_QOS_DEPTH = 1000
MAX_POINT_CLOUD_POINTS = 10_000_000
MAX_COORDINATE_M = 1e6  # poses farther than 1000 km from the world origin are refused (float32 rendering)
UNIT_TOLERANCE = 1e-3  # |quaternion| may differ from 1 by this much; it is normalised
BACKENDS = ("auto", "cpu", "gsplat")
RELIABILITIES = ("reliable", "best_effort")
COMPRESSED_FORMATS = ("jpeg", "png")

Check = Callable[[Any], "str | None"]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _any_string(value) -> str | None:
    return None if isinstance(value, str) else f"expected a string, got {value!r}"


def _frame_id(value) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return f"expected a non-empty frame id, got {value!r}"
    if value.startswith("/"):
        return f"frame ids must not start with '/' (tf2 refuses them), got {value!r}"
    return None


def _existing_file_or_empty(value) -> str | None:
    if not isinstance(value, str):
        return f"expected a path string, got {value!r}"
    if value and not os.path.isfile(value):
        return f"no such file: {value}"
    return None


def _integer(low: int, high: int) -> Check:
    def check(value) -> str | None:
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            return f"expected an integer in [{low}, {high}], got {value!r}"
        return None

    return check


def _number(low: float, high: float, low_open: bool = False) -> Check:
    def check(value) -> str | None:
        if _is_number(value) and math.isfinite(value) and (value > low if low_open else value >= low) and value <= high:
            return None
        return f"expected a finite number in {'(' if low_open else '['}{low}, {high}], got {value!r}"

    return check


def _one_of(choices: tuple[str, ...]) -> Check:
    def check(value) -> str | None:
        return None if value in choices else f"expected one of {', '.join(choices)}, got {value!r}"

    return check


def _backend(value) -> str | None:
    if value not in BACKENDS:
        return f"expected one of {', '.join(BACKENDS)}, got {value!r}"
    if value == "gsplat":
        from lyra_sim.rendering.gsplat_backend import gsplat_available

        if not gsplat_available():
            return "backend 'gsplat' needs a CUDA GPU and the gsplat package; use 'auto' or 'cpu'"
    return None


def _colour(value) -> str | None:
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "typecode") else None
    if values is None or len(values) != 3 or not all(_is_number(v) and 0.0 <= v <= 1.0 for v in values):
        return f"expected [r, g, b] with each value in [0, 1], got {value!r}"
    return None


def pose_vector_problem(value) -> str | None:
    """Why ``[x, y, z, qw, qx, qy, qz]`` is not a usable pose (None when it is)."""
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "typecode") else None
    if values is None or len(values) != 7 or not all(_is_number(v) for v in values):
        return f"expected 7 numbers [x, y, z, qw, qx, qy, qz], got {value!r}"
    if not all(math.isfinite(v) for v in values):
        return f"expected finite numbers, got {values}"
    if max(abs(v) for v in values[:3]) > MAX_COORDINATE_M:
        return f"position farther than {MAX_COORDINATE_M:g} m from the origin: {values[:3]}"
    norm = math.sqrt(sum(v * v for v in values[3:]))
    if abs(norm - 1.0) > UNIT_TOLERANCE:
        return f"quaternion (qw, qx, qy, qz) must have unit length, got norm {norm:.6g}"
    return None


def _initial_pose(value) -> str | None:
    values = list(value) if isinstance(value, (list, tuple)) or hasattr(value, "typecode") else None
    if values is not None and len(values) == 1 and values[0] == 0:
        return None
    problem = pose_vector_problem(value)
    return None if problem is None else f"{problem} (or [0.0] to wait for the first pose)"


@dataclass(frozen=True)
class Spec:
    """One parameter: its default, a description for ``ros2 param describe``, a check, and how it is typed."""

    default: Any
    description: str
    check: Check = _any_string
    read_only: bool = False  # only read at start-up: changes are refused
    numeric: bool = False  # a double (or double list) that also accepts integers (-p fov_deg:=90)


PARAMETERS: dict[str, Spec] = {
    "world": Spec("", "World file to load (.ply, .safetensors, .usd/.usda/.usdc/.usdz); wins over 'image'. "
                  "Changes apply on ~/reload"),
    "image": Spec("", "Image to generate a world from when 'world' is empty (at start-up and on ~/reload)"),
    "depth": Spec("", "Optional depth map for 'image' (16-bit PNG in mm or .npy in metres)"),
    "intrinsics": Spec("", "Optional intrinsics JSON for 'image' (fx, fy, cx, cy)"),
    "width": Spec(320, f"Rendered image width in pixels, 1..{MAX_IMAGE_SIDE}", _integer(1, MAX_IMAGE_SIDE)),
    "height": Spec(240, f"Rendered image height in pixels, 1..{MAX_IMAGE_SIDE}", _integer(1, MAX_IMAGE_SIDE)),
    "fov_deg": Spec(90.0, "Horizontal field of view in degrees (fx = fy, principal point at the centre)",
                    _number(*FOV_RANGE_DEG), numeric=True),
    "rate_hz": Spec(10.0, "Publishing rate for the latest pose (images are also rendered on each new pose)",
                    _number(0.0, MAX_RATE_HZ, low_open=True), numeric=True),
    "camera_frame_id": Spec("camera_optical_frame", "frame_id of images and CameraInfo (optical: x right, y down)",
                            _frame_id),
    "world_frame_id": Spec("map", "frame_id of the world point cloud and collision mesh", _frame_id),
    "initial_pose": Spec([0.0], "Start pose [x, y, z, qw, qx, qy, qz] of the optical frame; [0.0] = wait for one",
                         _initial_pose, read_only=True, numeric=True),
    "base_to_camera": Spec([0.14, 0.0, 0.10, 0.5, -0.5, 0.5, -0.5],
                           "Camera mount for ~/odom: base_link -> optical frame, [x, y, z, qw, qx, qy, qz]",
                           pose_vector_problem, numeric=True),
    "background": Spec([1.0, 1.0, 1.0], "RGB background in [0, 1] where no Gaussian is seen (lyra_sim.render's "
                       "default)", _colour, numeric=True),
    "backend": Spec("auto", "Renderer: auto, cpu or gsplat (CUDA)", _backend),
    "point_cloud_max_points": Spec(50_000, "Most points published on ~/world_points (most opaque first)",
                                   _integer(0, MAX_POINT_CLOUD_POINTS)),
    "collision_mesh": Spec("", "Optional mesh file (OBJ/PLY) published on ~/collision_mesh", _existing_file_or_empty),
    "image_reliability": Spec("reliable", "QoS of images and camera_info: 'reliable' (REP 2003 driver default; "
                              "reaches reliable and best-effort subscribers) or 'best_effort' (sensor-data profile)",
                              _one_of(RELIABILITIES), read_only=True),
    "image_qos_depth": Spec(10, f"Keep-last history depth of images and camera_info, 1..{MAX_QOS_DEPTH}",
                            _integer(1, MAX_QOS_DEPTH), read_only=True),
    "compressed_format": Spec("jpeg", "Codec of ~/image_raw/compressed: jpeg or png", _one_of(COMPRESSED_FORMATS)),
    "jpeg_quality": Spec(95, "JPEG quality of ~/image_raw/compressed, 1..100", _integer(1, 100)),
    "png_level": Spec(3, "PNG compression level of ~/image_raw/compressed, 0..9", _integer(0, 9)),
}  # fmt: skip


def problem(name: str, value: Any) -> str | None:
    """Why ``value`` is not acceptable for parameter ``name`` (None when it is)."""
    spec = PARAMETERS.get(name)
    if spec is None:
        return None  # not ours (e.g. use_sim_time): rclpy checks it
    return spec.check(value)


def combined_problem(values: Mapping[str, Any]) -> str | None:
    """Checks that need several parameters at once (``values``: every parameter's value after the change)."""
    pixels = values["width"] * values["height"]
    if pixels > MAX_IMAGE_PIXELS:
        return f"width x height = {pixels:,} pixels is more than the {MAX_IMAGE_PIXELS:,} allowed"
    return None


def _launch_value(name: str, text: str) -> Any:
    import yaml

    kind = type(PARAMETERS[name].default)
    if kind is str:
        return text
    try:
        value = yaml.safe_load(text)
        if kind is list:
            return [float(v) for v in value]
        return kind(value)
    except (yaml.YAMLError, TypeError, ValueError) as exc:
        raise ValueError(f"launch argument {name}:={text!r} is not a {kind.__name__}") from exc


def launch_parameters(arguments: Mapping[str, str]) -> dict[str, Any]:
    """Typed node parameters for the launch arguments that were given (non-empty); the rest keep the table's default."""
    return {name: _launch_value(name, text) for name, text in arguments.items() if name in PARAMETERS and text}
