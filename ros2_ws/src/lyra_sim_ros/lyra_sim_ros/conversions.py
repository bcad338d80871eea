"""Numpy <-> ROS message conversions used by the node (no rclpy node state here)."""

from __future__ import annotations

import numpy as np
import torch
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from lyra_sim.ros import messages as ros_messages
from lyra_sim.rotations import quat_to_rotmat
from lyra_sim_ros.parameters import pose_vector_problem


def pose_vector(pose: Pose) -> list[float]:
    """[x, y, z, qw, qx, qy, qz] of a Pose."""
    p, q = pose.position, pose.orientation
    return [p.x, p.y, p.z, q.w, q.x, q.y, q.z]


def pose_to_matrix(pose: Pose) -> tuple[np.ndarray | None, str | None]:
    """(4x4 transform, None) of a usable Pose, else (None, why not): NaN/inf, a position beyond
    parameters.MAX_COORDINATE_M, or a quaternion that is not unit length."""
    values = pose_vector(pose)
    problem = pose_vector_problem(values)
    return (None, problem) if problem else (pose_vector_to_matrix(values), None)


def pose_vector_to_matrix(values) -> np.ndarray:
    """[x, y, z, qw, qx, qy, qz] -> 4x4 (the quaternion is normalised)."""
    values = torch.as_tensor(np.asarray(values, dtype=np.float64))
    matrix = np.eye(4)
    matrix[:3, :3] = quat_to_rotmat(values[3:] / values[3:].norm()).numpy()
    matrix[:3, 3] = values[:3].numpy()
    return matrix


def header(stamp: Time, frame_id: str) -> Header:
    return Header(stamp=stamp, frame_id=frame_id)


def rgb_image(rgb: np.ndarray, head: Header) -> Image:
    """(H, W, 3) uint8 -> sensor_msgs/Image rgb8."""
    return Image(header=head, **ros_messages.image_fields(rgb))


def depth_image(depth: np.ndarray, head: Header) -> Image:
    """(H, W) metres -> sensor_msgs/Image 32FC1 (REP 118), little-endian."""
    return Image(header=head, **ros_messages.image_fields(np.asarray(depth, dtype=np.float32)))


def compressed_image(rgb: np.ndarray, head: Header, codec: str, jpeg_quality: int, png_level: int) -> CompressedImage:
    """(H, W, 3) uint8 -> sensor_msgs/CompressedImage as image_transport's compressed plugin writes it."""
    fields = ros_messages.compressed_image_fields(rgb, codec, jpeg_quality=jpeg_quality, png_level=png_level)
    return CompressedImage(header=head, **fields)


def camera_info(K: np.ndarray, width: int, height: int, head: Header) -> CameraInfo:
    """Pinhole, no distortion: K, identity R, P = [K | 0]."""
    return CameraInfo(header=head, **ros_messages.camera_info_fields(K, width, height))


def point_cloud(xyz: np.ndarray, rgb: np.ndarray, head: Header) -> PointCloud2:
    """xyz (N, 3) float32 + rgb (N, 3) in [0, 1] packed as PCL's float 'rgb' field (0x00RRGGBB)."""
    n = len(xyz)
    colours = np.clip(np.round(np.asarray(rgb) * 255), 0, 255).astype(np.uint32)
    packed = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    record = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    record["x"], record["y"], record["z"], record["rgb"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], packed
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate(("x", "y", "z", "rgb"))]
    return PointCloud2(header=head, height=1, width=n, fields=fields, is_bigendian=False, point_step=16,
                       row_step=16 * n, data=record.tobytes(), is_dense=True)


def triangle_marker(vertices: np.ndarray, faces: np.ndarray, head: Header, namespace: str = "collision") -> Marker:
    """A TRIANGLE_LIST marker (grey, half transparent) of a mesh."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces).reshape(-1)]
    marker = Marker(header=head, ns=namespace, id=0, type=Marker.TRIANGLE_LIST, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = 1.0
    marker.color = ColorRGBA(r=0.6, g=0.6, b=0.65, a=0.5)
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in corners]
    return marker
