"""world_camera: load (or generate) a lyra_sim world and publish what a camera at the received pose sees.

In:  ~/pose (geometry_msgs/PoseStamped: the optical frame's pose in the world frame),
     ~/odom (nav_msgs/Odometry: the robot base; the camera is base * base_to_camera),
     ~/time (std_msgs/Float64: seconds, advances dynamic worlds).
Out: ~/image_raw (rgb8), ~/depth (32FC1, metres), ~/camera_info (sensor-data QoS, stamped with the pose's
     time, frame camera_frame_id); ~/world_points (PointCloud2) and ~/collision_mesh (Marker), latched.
Service: ~/reload (std_srvs/Trigger) reloads the world named by the ``world`` parameter; a failure keeps
the previous world. Rendering happens on new poses and at ``rate_hz``; only the newest pose is kept, so a
slow render never queues work.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from lyra_sim import Camera, DynamicGaussianWorld, render
from lyra_sim.world import SH_C0
from lyra_sim_ros import conversions

# name: (default, description)
PARAMETERS = {
    "world": ("", "World file to load (.ply, .safetensors, .usd/.usda/.usdc/.usdz); wins over 'image'"),
    "image": ("", "Image to generate a world from at start-up when 'world' is empty"),
    "depth": ("", "Optional depth map for 'image' (16-bit PNG in mm or .npy in metres)"),
    "intrinsics": ("", "Optional intrinsics JSON for 'image' (fx, fy, cx, cy)"),
    "width": (320, "Rendered image width in pixels"),
    "height": (240, "Rendered image height in pixels"),
    "fov_deg": (90.0, "Horizontal field of view in degrees (fx = fy, principal point at the centre)"),
    "rate_hz": (10.0, "Publishing rate for the latest pose (images are also rendered on each new pose)"),
    "camera_frame_id": ("camera_optical_frame", "frame_id of images and CameraInfo (optical: x right, y down)"),
    "world_frame_id": ("map", "frame_id of the world point cloud and collision mesh"),
    "initial_pose": ([0.0], "Optional start pose [x, y, z, qw, qx, qy, qz] of the optical frame; [0.0] = wait"),
    "base_to_camera": ([0.14, 0.0, 0.10, 0.5, -0.5, 0.5, -0.5],
                       "Camera mount for ~/odom: base_link -> optical frame, [x, y, z, qw, qx, qy, qz]"),
    "background": ([0.0, 0.0, 0.0], "RGB background in [0, 1] where no Gaussian is seen"),
    "backend": ("auto", "Renderer: auto, cpu or gsplat"),
    "point_cloud_max_points": (50_000, "Most points published on ~/world_points (most opaque first)"),
    "collision_mesh": ("", "Optional mesh file (OBJ/PLY) published on ~/collision_mesh"),
}


def load_world_from(world: str, image: str, depth: str, intrinsics: str):
    """A world from a file (.ply, .safetensors, USD) or generated from an image."""
    if world:
        path = Path(world)
        if not path.is_file():
            raise FileNotFoundError(f"world: no such file {path}")
        from lyra_sim import load_world

        return load_world(path)
    if image:
        from lyra_sim import generate_world

        return generate_world(image, depth=depth or None, intrinsics=intrinsics or None)
    raise ValueError("set the 'world' or the 'image' parameter")


class WorldCamera(Node):
    def __init__(self, **kwargs):
        super().__init__("world_camera", **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.world = None
        self.time = 0.0
        self.camera_to_world: np.ndarray | None = None
        self.stamp = None
        self.last_render = 0.0
        self.rejected_poses = 0
        self.reload_world(initial=True)
        self._configure_camera()

        sensor = qos_profile_sensor_data
        latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)  # fmt: skip
        newest = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        self.image_pub = self.create_publisher(Image, "~/image_raw", sensor)
        self.depth_pub = self.create_publisher(Image, "~/depth", sensor)
        self.info_pub = self.create_publisher(CameraInfo, "~/camera_info", sensor)
        self.points_pub = self.create_publisher(PointCloud2, "~/world_points", latched)
        self.mesh_pub = self.create_publisher(Marker, "~/collision_mesh", latched)
        self.create_subscription(PoseStamped, "~/pose", self.on_pose, newest)
        self.create_subscription(Odometry, "~/odom", self.on_odom, newest)
        self.create_subscription(Float64, "~/time", self.on_time, newest)
        self.create_service(Trigger, "~/reload", self.on_reload)
        self.timer = self.create_timer(1.0 / max(self.get_parameter("rate_hz").value, 1e-3), self.on_timer)

        initial = list(self.get_parameter("initial_pose").value)
        if len(initial) == 7:
            self.camera_to_world = conversions.pose_vector_to_matrix(initial)
        self.publish_world()
        self.get_logger().info(f"serving {len(self._current_world()):,} Gaussians; waiting for poses on "
                               f"{self.resolve_topic_name('~/pose')}")  # fmt: skip

    # --- world --------------------------------------------------------------------------------------------
    def _param(self, name: str):
        return self.get_parameter(name).value

    def _configure_camera(self) -> None:
        self.width, self.height = int(self._param("width")), int(self._param("height"))
        self.K = Camera.intrinsics_from_fov(self.width, self.height, float(self._param("fov_deg")))

    def reload_world(self, initial: bool = False) -> str:
        world = load_world_from(self._param("world"), self._param("image"), self._param("depth"),
                                self._param("intrinsics"))  # fmt: skip
        self.world = world
        if not initial:
            self.publish_world()
        return f"loaded {len(self._current_world()):,} Gaussians"

    def _current_world(self):
        if isinstance(self.world, DynamicGaussianWorld):
            return self.world.at(self.time)
        return self.world

    def publish_world(self) -> None:
        world = self._current_world()
        head = conversions.header(self.get_clock().now().to_msg(), self._param("world_frame_id"))
        limit = int(self._param("point_cloud_max_points"))
        order = torch.argsort(world.opacities, descending=True, stable=True)[:limit]
        rgb = (world.sh[order, 0] * SH_C0 + 0.5).clamp(0, 1)
        self.points_pub.publish(conversions.point_cloud(world.means[order].numpy(), rgb.numpy(), head))
        mesh_path = self._param("collision_mesh")
        if mesh_path:
            import open3d as o3d

            mesh = o3d.io.read_triangle_mesh(mesh_path)
            if len(mesh.triangles):
                self.mesh_pub.publish(conversions.triangle_marker(np.asarray(mesh.vertices),
                                                                  np.asarray(mesh.triangles), head))  # fmt: skip
            else:
                self.get_logger().warning(f"collision_mesh: no triangles in {mesh_path}")

    # --- callbacks ----------------------------------------------------------------------------------------
    def _accept(self, matrix: np.ndarray | None, stamp) -> None:
        if matrix is None:
            self.rejected_poses += 1
            self.get_logger().warning("pose with NaN/inf or a non-unit quaternion: skipped "
                                      f"({self.rejected_poses} so far)", throttle_duration_sec=2.0)  # fmt: skip
            return
        self.camera_to_world, self.stamp = matrix, stamp
        self.render_and_publish()

    def on_pose(self, message: PoseStamped) -> None:
        self._accept(conversions.pose_to_matrix(message.pose), message.header.stamp)

    def on_odom(self, message: Odometry) -> None:
        base = conversions.pose_to_matrix(message.pose.pose)
        mount = conversions.pose_vector_to_matrix(self._param("base_to_camera"))
        self._accept(None if base is None else base @ mount, message.header.stamp)

    def on_time(self, message: Float64) -> None:
        if np.isfinite(message.data):
            self.time = float(message.data)

    def on_timer(self) -> None:
        period = 1.0 / max(self._param("rate_hz"), 1e-3)
        if self.camera_to_world is not None and time.monotonic() - self.last_render >= 0.9 * period:
            self.render_and_publish()

    def on_reload(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        try:
            response.message = self.reload_world()
            response.success = True
        except Exception as exc:  # any failure: keep serving the previous world
            response.success = False
            response.message = f"reload failed, still serving the previous world: {exc}"
            self.get_logger().error(response.message)
        return response

    # --- rendering ----------------------------------------------------------------------------------------
    def render_and_publish(self) -> None:
        world_to_cam = torch.from_numpy(np.linalg.inv(self.camera_to_world)).float()
        camera = Camera(self.K, world_to_cam, self.width, self.height)
        with torch.no_grad():
            result = render(self._current_world(), camera, backend=self._param("backend"),
                            background=tuple(self._param("background")))  # fmt: skip
        self.last_render = time.monotonic()
        stamp = self.stamp if self.stamp is not None else self.get_clock().now().to_msg()
        head = conversions.header(stamp, self._param("camera_frame_id"))
        depth = result.depth.reshape(self.height, self.width).numpy()
        self.image_pub.publish(conversions.rgb_image(result.to_uint8().numpy(), head))
        self.depth_pub.publish(conversions.depth_image(depth, head))
        self.info_pub.publish(conversions.camera_info(self.K.numpy(), self.width, self.height, head))


def main(args: list[str] | None = None) -> None:
    rclpy.init(args=args)
    try:
        node = WorldCamera()
    except Exception as exc:
        print(f"world_camera: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        sys.exit(2)
    try:
        rclpy.spin(node)
    except (KeyboardInterrupt, rclpy.executors.ExternalShutdownException):
        pass
    finally:
        node.destroy_node()
        rclpy.try_shutdown()


if __name__ == "__main__":
    main()
