"""ROS 2 message fields as plain dicts: the one place that knows how lyra_sim fills its ROS messages.

No ROS install is needed: `lyra_sim.ros.bag` writes these dicts into MCAP bags with mcap-ros2-support, and the
`lyra_sim_ros` node builds rclpy messages from the same dicts (``Image(header=h, **image_fields(...))``).
``MESSAGE_DEFINITIONS`` holds the field-only .msg texts (without comments or constants) that a bag carries
as its schemas.
"""

from __future__ import annotations

import io
import math

import numpy as np

from lyra_sim.errors import LyraSimError

# REP 103 optical frame (x right, y down, z forward) in a body frame (x forward, y left, z up), (w, x, y, z).
OPTICAL_IN_BODY_QUATERNION = (0.5, -0.5, 0.5, -0.5)
COMPRESSED_FORMATS = ("jpeg", "png")


class RosMessageError(LyraSimError):
    """Values that cannot go into a ROS message (wrong shape, non-finite, unknown codec)."""


def to_nanoseconds(seconds: float) -> int:
    """``seconds`` since the epoch as integer nanoseconds, exact to the float's own precision (``seconds * 1e9``
    in float64 would be off by up to 128 ns today)."""
    if not math.isfinite(seconds) or seconds < 0:
        raise RosMessageError(f"stamp: expected a finite time >= 0 s, got {seconds}")
    whole = math.floor(seconds)
    return whole * 1_000_000_000 + round((seconds - whole) * 1e9)


def stamp_fields(nanoseconds: int) -> dict:
    """builtin_interfaces/Time of integer ``nanoseconds`` since the epoch."""
    return {"sec": nanoseconds // 1_000_000_000, "nanosec": nanoseconds % 1_000_000_000}


def image_fields(pixels: np.ndarray) -> dict:
    """sensor_msgs/Image fields (all but header) of (H, W, 3) uint8 -> rgb8 or (H, W) float -> 32FC1 (REP 118)."""
    pixels = np.asarray(pixels)
    if pixels.ndim == 3 and pixels.shape[2] == 3 and pixels.dtype == np.uint8:
        encoding, data = "rgb8", np.ascontiguousarray(pixels)
    elif pixels.ndim == 2 and pixels.dtype.kind == "f":
        encoding, data = "32FC1", np.ascontiguousarray(pixels, dtype="<f4")
    else:
        raise RosMessageError(f"image: expected (H, W, 3) uint8 or (H, W) float, got {pixels.shape} {pixels.dtype}")
    height, width = pixels.shape[:2]
    return {"height": height, "width": width, "encoding": encoding, "is_bigendian": 0,
            "step": width * data.itemsize * (3 if encoding == "rgb8" else 1), "data": data.tobytes()}


def compressed_image_fields(rgb: np.ndarray, codec: str = "jpeg", jpeg_quality: int = 95, png_level: int = 3) -> dict:
    """sensor_msgs/CompressedImage fields (all but header) of an (H, W, 3) uint8 image.

    ``format`` is written as image_transport's compressed plugin writes it for an rgb8 source
    ("rgb8; jpeg compressed bgr8"): the file holds ordinary colour, which decoders return as BGR.
    """
    from PIL import Image as PILImage

    if codec not in COMPRESSED_FORMATS:
        raise RosMessageError(f"compressed image: codec must be one of {COMPRESSED_FORMATS}, got {codec!r}")
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise RosMessageError(f"compressed image: expected (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    buffer = io.BytesIO()
    if codec == "jpeg":
        PILImage.fromarray(rgb).save(buffer, format="JPEG", quality=int(jpeg_quality))
    else:
        PILImage.fromarray(rgb).save(buffer, format="PNG", compress_level=int(png_level))
    return {"format": f"rgb8; {codec} compressed bgr8", "data": buffer.getvalue()}


def camera_info_fields(K: np.ndarray, width: int, height: int) -> dict:
    """sensor_msgs/CameraInfo fields (all but header) of a pinhole camera without distortion: R = I, P = [K | 0]."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    P = np.zeros((3, 4))
    P[:, :3] = K
    return {"height": int(height), "width": int(width), "distortion_model": "plumb_bob", "d": [0.0] * 5,
            "k": K.reshape(-1).tolist(), "r": np.eye(3).reshape(-1).tolist(), "p": P.reshape(-1).tolist(),
            "binning_x": 0, "binning_y": 0}


def _translation_and_rotation(matrix: np.ndarray) -> tuple[dict, dict]:
    import torch

    from lyra_sim.rotations import rotmat_to_quat

    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (4, 4) or not np.isfinite(matrix).all():
        raise RosMessageError(f"transform: expected a finite 4x4 matrix, got shape {matrix.shape}")
    w, x, y, z = rotmat_to_quat(torch.from_numpy(matrix[:3, :3])).tolist()
    return dict(zip("xyz", matrix[:3, 3].tolist(), strict=True)), {"x": x, "y": y, "z": z, "w": w}


def pose_fields(matrix: np.ndarray) -> dict:
    """geometry_msgs/Pose fields of a 4x4 transform."""
    position, orientation = _translation_and_rotation(matrix)
    return {"position": position, "orientation": orientation}


def transform_stamped_fields(matrix: np.ndarray, stamp: dict, parent: str, child: str) -> dict:
    """geometry_msgs/TransformStamped: ``child``'s pose in ``parent`` (tf's parent -> child)."""
    translation, rotation = _translation_and_rotation(matrix)
    return {"header": {"stamp": stamp, "frame_id": parent}, "child_frame_id": child,
            "transform": {"translation": translation, "rotation": rotation}}


def optical_in_body() -> np.ndarray:
    """4x4 pose of the REP 103 optical frame in its camera body frame (``camera_link`` -> ``..._optical_frame``)."""
    import torch

    from lyra_sim.rotations import quat_to_rotmat

    matrix = np.eye(4)
    matrix[:3, :3] = quat_to_rotmat(torch.tensor(OPTICAL_IN_BODY_QUATERNION, dtype=torch.float64)).numpy()
    return matrix


# Field-only ROS 2 message definitions in the concatenated form MCAP schemas use (ros2msg encoding).
_FIELDS = {
    "builtin_interfaces/Time": "int32 sec\nuint32 nanosec",
    "std_msgs/Header": "builtin_interfaces/Time stamp\nstring frame_id",
    "sensor_msgs/RegionOfInterest": "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Vector3": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Quaternion": "float64 x\nfloat64 y\nfloat64 z\nfloat64 w",
    "geometry_msgs/Pose": "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation",
    "geometry_msgs/Transform": "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation",
    "geometry_msgs/TransformStamped": "std_msgs/Header header\nstring child_frame_id\n"
                                      "geometry_msgs/Transform transform",
    "sensor_msgs/Image": "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
                         "uint32 step\nuint8[] data",
    "sensor_msgs/CompressedImage": "std_msgs/Header header\nstring format\nuint8[] data",
    "sensor_msgs/CameraInfo": "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                              "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                              "uint32 binning_y\nsensor_msgs/RegionOfInterest roi",
    "geometry_msgs/PoseStamped": "std_msgs/Header header\ngeometry_msgs/Pose pose",
    "tf2_msgs/TFMessage": "geometry_msgs/TransformStamped[] transforms",
}


def _dependencies(name: str, found: list[str]) -> list[str]:
    for line in _FIELDS[name].splitlines():
        kind = line.split()[0].removesuffix("[]").split("[")[0]
        if "/" in kind and kind not in found:
            found.append(kind)
            _dependencies(kind, found)
    return found


def message_definition(datatype: str) -> str:
    """The MCAP ros2msg schema text of ``datatype`` ("sensor_msgs/msg/Image"): its fields, then each dependency."""
    name = datatype.replace("/msg/", "/")
    if name not in _FIELDS:
        raise RosMessageError(f"no message definition for {datatype}")
    parts = [_FIELDS[name]] + [f"{'=' * 80}\nMSG: {dep}\n{_FIELDS[dep]}" for dep in _dependencies(name, [])]
    return "\n".join(parts)
