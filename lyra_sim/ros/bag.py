"""Render a camera path into a ROS 2 MCAP bag (mcap + mcap-ros2-support; no ROS install needed).

Topics: ``<prefix>/image_raw`` (sensor_msgs/msg/Image rgb8), ``<prefix>/depth`` (Image 32FC1, metres),
``<prefix>/camera_info`` (sensor_msgs/msg/CameraInfo), ``<prefix>/pose`` (geometry_msgs/msg/PoseStamped, the
optical frame's pose in the world frame), ``/tf`` (tf2_msgs/msg/TFMessage: world -> camera body frame per
frame) and ``/tf_static`` (body -> optical frame, once, latched), all stamped with the frame's time: real
time (now, or a given start) plus ``i / rate_hz``. Message fields come from `lyra_sim.ros.messages`, as the
ROS node's do.
"""

from __future__ import annotations

import datetime
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from lyra_sim.camera import Camera
from lyra_sim.errors import LyraSimError
from lyra_sim.io.atomic import atomic_path
from lyra_sim.rendering import DEFAULT_BACKGROUND, render
from lyra_sim.ros.messages import (
    camera_info_fields,
    image_fields,
    message_definition,
    optical_in_body,
    pose_fields,
    stamp_fields,
    to_nanoseconds,
    transform_stamped_fields,
)
from lyra_sim.ros.options import BagOptions

DATATYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CameraInfo", "geometry_msgs/msg/PoseStamped",
             "tf2_msgs/msg/TFMessage")
_INFINITE = "\n    sec: 9223372036\n    nsec: 854775807"
#: ROS time (builtin_interfaces/Time) holds seconds in an int32: stamps must lie before 2038-01-19T03:14:08Z.
MAX_STAMP_S = 2**31 - 1


def offered_qos(durability: str) -> str:
    """rosbag2's ``offered_qos_profiles`` channel metadata: reliable, keep-last 1, 'volatile' or 'transient_local'.

    Integer enums (rmw's values), the form every rosbag2 release reads.
    """
    code = {"transient_local": 1, "volatile": 2}[durability]
    return (f"- history: 1\n  depth: 1\n  reliability: 1\n  durability: {code}\n  deadline:{_INFINITE}\n"
            f"  lifespan:{_INFINITE}\n  liveliness: 1\n  liveliness_lease_duration:{_INFINITE}\n"
            "  avoid_ros_namespace_conventions: false")


class BagError(LyraSimError):
    """A bag that cannot be written as asked (path, rate, start time)."""


def parse_start_time(text: str) -> float:
    """Seconds since the epoch from "1700000000.5" or an ISO 8601 time ("2026-11-21T12:00:00", UTC unless it
    carries an offset)."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise BagError(f"start time: expected seconds since 1970 or an ISO 8601 time, got {text!r}") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.timezone.utc)
        seconds = moment.timestamp()
    if not np.isfinite(seconds) or seconds < 0:
        raise BagError(f"start time: expected a time after 1970, got {text[:40]!r}")
    if seconds >= MAX_STAMP_S:
        raise BagError(f"start time: {text[:40]!r} is past what ROS time holds (int32 seconds: before "
                       "2038-01-19T03:14:07Z)")
    return seconds


def check_stamps(start_time: float, frames: int, rate_hz: float) -> None:
    """Refuse a rate and start whose frame stamps ROS time (int32 seconds) and MCAP (uint64 ns) cannot hold."""
    if not (np.isfinite(rate_hz) and rate_hz > 0):
        raise BagError(f"rate: expected a positive number of frames per second, got {rate_hz}")
    if not np.isfinite(start_time) or start_time < 0:
        raise BagError(f"start time: expected seconds since 1970 (>= 0), got {start_time}")
    with np.errstate(over="ignore"):
        last = start_time + max(0, frames - 1) / rate_hz
    if not last < MAX_STAMP_S:
        raise BagError(f"rate {rate_hz:g} Hz: the last of {frames} frames would be stamped {last:.4g} s after 1970, "
                       "past what ROS time holds (int32 seconds, 2038-01-19); raise the rate or start earlier")


def _open_writer(stream):
    from mcap_ros2.writer import Writer  # lazy: optional dependency

    class QosWriter(Writer):
        """mcap-ros2-support's Writer registers channels without metadata; rosbag2 replays a topic latched only
        when its channel offers transient-local QoS, so channels are registered here with that metadata."""

        def register_topic(self, topic: str, schema, durability: str = "volatile") -> None:
            self._channel_ids[topic] = self._writer.register_channel(
                topic=topic, message_encoding="cdr", schema_id=schema.id,
                metadata={"offered_qos_profiles": offered_qos(durability)})

    return QosWriter(stream)


def record_bag(world, cameras: Camera, path: str | os.PathLike, rate_hz: float = BagOptions.rate_hz,
               start_time: float | None = None, frame_id: str = BagOptions.frame_id,
               world_frame_id: str = BagOptions.world_frame_id, topic_prefix: str = BagOptions.topic_prefix,
               body_frame_id: str | None = BagOptions.body_frame_id, background=DEFAULT_BACKGROUND,
               backend: str = "auto", progress: bool = True) -> Path:
    """Render each camera of ``cameras`` (frame i at ``start_time + i / rate_hz`` s) into an MCAP bag.

    ``start_time``: seconds since the epoch of the first frame (default: now). ``body_frame_id``: the camera's
    body frame (x forward, z up); /tf moves it and /tf_static fixes the optical frame ``frame_id`` to it.
    With ``body_frame_id=None`` /tf moves ``frame_id`` itself and there is no /tf_static.
    """
    path = Path(path)
    if path.suffix.lower() != ".mcap":
        raise BagError(f"{path}: expected an .mcap path")
    start_time = time.time() if start_time is None else float(start_time)
    check_stamps(start_time, len(cameras), float(rate_hz))  # before anything is rendered
    if body_frame_id in (frame_id, world_frame_id):
        raise BagError(f"body frame id {body_frame_id!r} must differ from the optical and world frame ids")
    start_ns = to_nanoseconds(start_time)
    optical_to_body = optical_in_body()
    body_to_optical = np.linalg.inv(optical_to_body)
    with atomic_path(path) as tmp, open(tmp, "wb") as stream:
        writer = _open_writer(stream)
        schemas = {name: writer.register_msgdef(name, message_definition(name)) for name in DATATYPES}
        writer.register_topic("/tf", schemas["tf2_msgs/msg/TFMessage"])
        if body_frame_id:
            writer.register_topic("/tf_static", schemas["tf2_msgs/msg/TFMessage"], durability="transient_local")
            static = transform_stamped_fields(optical_to_body, stamp_fields(start_ns), body_frame_id, frame_id)
            writer.write_message("/tf_static", schemas["tf2_msgs/msg/TFMessage"], {"transforms": [static]},
                                 log_time=start_ns, publish_time=start_ns)
        for i in tqdm(range(len(cameras)), desc="recording", unit="frame", disable=not progress):
            camera = cameras[i]
            log_time = start_ns + round(i * 1e9 / rate_hz)
            with torch.no_grad():
                result = render(world, camera, backend=backend, background=background)
            stamp = stamp_fields(log_time)
            head = {"stamp": stamp, "frame_id": frame_id}
            width, height = camera.width, camera.height
            cam_to_world = torch.linalg.inv(camera.world_to_cam.reshape(4, 4).double()).numpy()
            moving = (cam_to_world @ body_to_optical, body_frame_id) if body_frame_id else (cam_to_world, frame_id)
            depth = result.depth.reshape(height, width).numpy()
            messages = {
                f"{topic_prefix}/image_raw": ("sensor_msgs/msg/Image",
                                              {"header": head, **image_fields(result.to_uint8().numpy())}),
                f"{topic_prefix}/depth": ("sensor_msgs/msg/Image",
                                          {"header": head, **image_fields(depth)}),
                f"{topic_prefix}/camera_info": ("sensor_msgs/msg/CameraInfo",
                                                {"header": head, **camera_info_fields(camera.K.double().numpy(),
                                                                                      width, height)}),
                f"{topic_prefix}/pose": ("geometry_msgs/msg/PoseStamped",
                                         {"header": {"stamp": stamp, "frame_id": world_frame_id},
                                          "pose": pose_fields(cam_to_world)}),
                "/tf": ("tf2_msgs/msg/TFMessage",
                        {"transforms": [transform_stamped_fields(moving[0], stamp, world_frame_id, moving[1])]}),
            }
            for topic, (datatype, message) in messages.items():
                writer.write_message(topic, schemas[datatype], message, log_time=log_time, publish_time=log_time)
        writer.finish()
    return path
