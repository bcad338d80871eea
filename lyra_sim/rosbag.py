"""Render a camera path into a ROS 2 MCAP bag (mcap + mcap-ros2-support; no ROS install needed).

Topics: ``<prefix>/image_raw`` (sensor_msgs/msg/Image rgb8), ``<prefix>/depth`` (Image 32FC1, metres),
``<prefix>/camera_info`` (sensor_msgs/msg/CameraInfo) and ``<prefix>/pose`` (geometry_msgs/msg/PoseStamped,
the optical frame's pose in the world frame), all stamped with the frame's time.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lyra_sim.camera import Camera
from lyra_sim.io.atomic import atomic_path
from lyra_sim.rendering import render
from lyra_sim.rotations import rotmat_to_quat

# Field-only ROS 2 message definitions in the concatenated form MCAP schemas use (ros2msg encoding).
_TIME = "int32 sec\nuint32 nanosec"
_HEADER = "builtin_interfaces/Time stamp\nstring frame_id"
_DEPENDENCIES = {
    "std_msgs/Header": _HEADER,
    "builtin_interfaces/Time": _TIME,
    "sensor_msgs/RegionOfInterest": "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify",
    "geometry_msgs/Pose": "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation",
    "geometry_msgs/Point": "float64 x\nfloat64 y\nfloat64 z",
    "geometry_msgs/Quaternion": "float64 x\nfloat64 y\nfloat64 z\nfloat64 w",
}
_MESSAGES = {
    "sensor_msgs/msg/Image": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\n"
                              "uint8 is_bigendian\nuint32 step\nuint8[] data",
                              ["std_msgs/Header", "builtin_interfaces/Time"]),
    "sensor_msgs/msg/CameraInfo": ("std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\n"
                                   "float64[] d\nfloat64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\n"
                                   "uint32 binning_y\nsensor_msgs/RegionOfInterest roi",
                                   ["std_msgs/Header", "builtin_interfaces/Time", "sensor_msgs/RegionOfInterest"]),
    "geometry_msgs/msg/PoseStamped": ("std_msgs/Header header\ngeometry_msgs/Pose pose",
                                      ["std_msgs/Header", "builtin_interfaces/Time", "geometry_msgs/Pose",
                                       "geometry_msgs/Point", "geometry_msgs/Quaternion"]),
}  # fmt: skip


def message_definition(datatype: str) -> str:
    body, dependencies = _MESSAGES[datatype]
    parts = [body] + [f"{'=' * 80}\nMSG: {name}\n{_DEPENDENCIES[name]}" for name in dependencies]
    return "\n".join(parts)


def _stamp(seconds: float) -> dict:
    nanoseconds = round(seconds * 1e9)
    return {"sec": nanoseconds // 1_000_000_000, "nanosec": nanoseconds % 1_000_000_000}


def record_bag(world, cameras: Camera, path: str | os.PathLike, rate_hz: float = 10.0, start_time: float = 0.0,
               frame_id: str = "camera_optical_frame", world_frame_id: str = "map", topic_prefix: str = "/camera",
               background=(0.0, 0.0, 0.0), backend: str = "auto", progress: bool = True) -> Path:
    """Render each camera of ``cameras`` (frame i at ``start_time + i / rate_hz`` s) into an MCAP bag."""
    from mcap_ros2.writer import Writer  # lazy: optional dependency

    path = Path(path)
    if path.suffix.lower() != ".mcap":
        raise ValueError(f"{path}: expected an .mcap path")
    if rate_hz <= 0:
        raise ValueError(f"rate_hz: expected a positive rate, got {rate_hz}")
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        writer = Writer(stream)
        schemas = {name: writer.register_msgdef(name, message_definition(name)) for name in _MESSAGES}
        for i in tqdm(range(len(cameras)), desc="recording", unit="frame", disable=not progress):
            camera = cameras[i]
            seconds = start_time + i / rate_hz
            with torch.no_grad():
                result = render(world, camera, backend=backend, background=background)
            head = {"stamp": _stamp(seconds), "frame_id": frame_id}
            log_time = round(seconds * 1e9)
            width, height = camera.width, camera.height
            rgb = result.to_uint8().numpy()
            depth = np.ascontiguousarray(result.depth.reshape(height, width).numpy(), dtype="<f4")
            K = camera.K.reshape(3, 3).double().numpy()
            P = np.zeros((3, 4))
            P[:, :3] = K
            cam_to_world = torch.linalg.inv(camera.world_to_cam.reshape(4, 4).double())
            w, x, y, z = rotmat_to_quat(cam_to_world[:3, :3]).tolist()
            position = cam_to_world[:3, 3].tolist()
            messages = {
                "image_raw": ("sensor_msgs/msg/Image", {"header": head, "height": height, "width": width,
                              "encoding": "rgb8", "is_bigendian": 0, "step": 3 * width, "data": rgb.tobytes()}),
                "depth": ("sensor_msgs/msg/Image", {"header": head, "height": height, "width": width,
                          "encoding": "32FC1", "is_bigendian": 0, "step": 4 * width, "data": depth.tobytes()}),
                "camera_info": ("sensor_msgs/msg/CameraInfo", {
                    "header": head, "height": height, "width": width, "distortion_model": "plumb_bob",
                    "d": [0.0] * 5, "k": K.reshape(-1).tolist(), "r": [1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                    "p": P.reshape(-1).tolist(), "binning_x": 0, "binning_y": 0,
                    "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False}}),
                "pose": ("geometry_msgs/msg/PoseStamped", {
                    "header": {"stamp": head["stamp"], "frame_id": world_frame_id},
                    "pose": {"position": dict(zip("xyz", position, strict=True)),
                             "orientation": {"x": x, "y": y, "z": z, "w": w}}}),
            }  # fmt: skip
            for name, (datatype, message) in messages.items():
                writer.write_message(f"{topic_prefix}/{name}", schemas[datatype], message, log_time=log_time,
                                     publish_time=log_time)  # fmt: skip
        writer.finish()
    return path
