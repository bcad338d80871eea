"""Numpy <-> ROS message conversions used by the node (no rclpy node state here)."""

from __future__ import annotations

import math

import numpy as np
import torch
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import ColorRGBA, Header
from visualization_msgs.msg import Marker

from lyra_sim.rotations import quat_to_rotmat

UNIT_TOLERANCE = 1e-3


def pose_to_matrix(pose: Pose) -> np.ndarray | None:
    """4x4 transform of a Pose; None when it holds NaN/inf or a quaternion that is not unit length."""
    p, q = pose.position, pose.orientation
    values = np.array([p.x, p.y, p.z, q.w, q.x, q.y, q.z], dtype=np.float64)
    if not np.isfinite(values).all():
        return None
    w, x, y, z = values[3:]
    if abs(math.sqrt(w * w + x * x + y * y + z * z) - 1.0) > UNIT_TOLERANCE:
        return None
    return pose_vector_to_matrix(values)


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
    height, width = rgb.shape[:2]
    return Image(header=head, height=height, width=width, encoding="rgb8", is_bigendian=0, step=3 * width,
                 data=np.ascontiguousarray(rgb, dtype=np.uint8).tobytes())  # fmt: skip


def depth_image(depth: np.ndarray, head: Header) -> Image:
    """(H, W) metres -> sensor_msgs/Image 32FC1 (REP 118), little-endian."""
    height, width = depth.shape[:2]
    data = np.ascontiguousarray(depth, dtype="<f4").tobytes()
    return Image(header=head, height=height, width=width, encoding="32FC1", is_bigendian=0, step=4 * width,
                 data=data)  # fmt: skip


def camera_info(K: np.ndarray, width: int, height: int, head: Header) -> CameraInfo:
    """Pinhole, no distortion: K, identity R, P = [K | 0]."""
    P = np.zeros((3, 4))
    P[:, :3] = K
    return CameraInfo(header=head, height=height, width=width, distortion_model="plumb_bob", d=[0.0] * 5,
                      k=[float(v) for v in np.asarray(K).reshape(-1)], r=[1.0, 0, 0, 0, 1.0, 0, 0, 0, 1.0],
                      p=[float(v) for v in P.reshape(-1)])  # fmt: skip


def point_cloud(xyz: np.ndarray, rgb: np.ndarray, head: Header) -> PointCloud2:
    """xyz (N, 3) float32 + rgb (N, 3) in [0, 1] packed as PCL's float 'rgb' field (0x00RRGGBB)."""
    n = len(xyz)
    colours = np.clip(np.round(np.asarray(rgb) * 255), 0, 255).astype(np.uint32)
    packed = (colours[:, 0] << 16) | (colours[:, 1] << 8) | colours[:, 2]
    record = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
    record["x"], record["y"], record["z"], record["rgb"] = xyz[:, 0], xyz[:, 1], xyz[:, 2], packed
    fields = [PointField(name=name, offset=4 * i, datatype=PointField.FLOAT32, count=1)
              for i, name in enumerate(("x", "y", "z", "rgb"))]  # fmt: skip
    return PointCloud2(header=head, height=1, width=n, fields=fields, is_bigendian=False, point_step=16,
                       row_step=16 * n, data=record.tobytes(), is_dense=True)  # fmt: skip


def triangle_marker(vertices: np.ndarray, faces: np.ndarray, head: Header, namespace: str = "collision") -> Marker:
    """A TRIANGLE_LIST marker (grey, half transparent) of a mesh."""
    corners = np.asarray(vertices, dtype=np.float64)[np.asarray(faces).reshape(-1)]
    marker = Marker(header=head, ns=namespace, id=0, type=Marker.TRIANGLE_LIST, action=Marker.ADD)
    marker.pose.orientation.w = 1.0
    marker.scale.x = marker.scale.y = marker.scale.z = 1.0
    marker.color = ColorRGBA(r=0.6, g=0.6, b=0.65, a=0.5)
    marker.points = [Point(x=float(x), y=float(y), z=float(z)) for x, y, z in corners]
    return marker
