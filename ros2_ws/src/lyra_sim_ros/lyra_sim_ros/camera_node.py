"""The world_camera node: load (or generate) a lyra_sim world and publish what a camera at the received pose sees.

In:  ~/pose (geometry_msgs/PoseStamped: the optical frame's pose in the world frame),
     ~/odom (nav_msgs/Odometry: the robot base; the camera is base * base_to_camera),
     ~/time (std_msgs/Float64: seconds, advances dynamic worlds).
Out: ~/image_raw (rgb8), ~/image_raw/compressed (sensor_msgs/CompressedImage, JPEG or PNG, only while someone
     subscribes), ~/depth (32FC1, metres), ~/camera_info: reliable keep-last (REP 2003's driver QoS, so both
     default and sensor-data subscribers receive them; the ``image_reliability`` parameter selects best effort),
     stamped with the pose's time, frame ``camera_frame_id``; ~/world_points (PointCloud2) and
     ~/collision_mesh (Marker), latched.
Service: ~/reload (std_srvs/Trigger) reloads the world named by the ``world`` parameter; a failure keeps
the previous world. Rendering happens on new poses and at ``rate_hz``, on a render thread of its own: callbacks
only hand it the newest pose, so a slow render (a 4096 x 4096 frame on the CPU takes many seconds) never queues
work, never keeps the executor from taking poses, parameters and services, and never delays shutdown (the node
waits SHUTDOWN_WAIT_S for a render in progress, then leaves it). The compressed topic is encoded only up to
MAX_COMPRESSED_PIXELS per frame; larger frames skip it, saying so in the log.

Every callback survives anything: a bad pose or a failed render is logged (throttled), counted in
``counters`` and skipped. Parameters are checked (parameters.PARAMETERS) before they are set; image size,
field of view and rate apply at once; bad start-up values end the node with one line naming the parameter.
"""

from __future__ import annotations

import functools
import math
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import rclpy
import torch
from geometry_msgs.msg import PoseStamped
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.exceptions import InvalidParameterValueException
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2
from std_msgs.msg import Float64
from std_srvs.srv import Trigger
from visualization_msgs.msg import Marker

from lyra_sim import Camera, DynamicGaussianWorld, render
from lyra_sim.errors import LyraSimError
from lyra_sim_ros import conversions
from lyra_sim_ros.parameters import PARAMETERS, combined_problem, problem

CAMERA_PARAMETERS = {"width", "height", "fov_deg"}
WORLD_TOPIC_PARAMETERS = {"point_cloud_max_points", "world_frame_id", "collision_mesh"}
REPORT_INTERVAL_S = 2.0  # a kind of skipped input or failure is logged at most this often (all are counted)
#: Frames larger than this are not JPEG/PNG-encoded for ~/image_raw/compressed (seconds and ~500 MB per 16 MP frame).
MAX_COMPRESSED_PIXELS = 1920 * 1080
SHUTDOWN_WAIT_S = 1.0  # how long destroy_node waits for a render in progress


class StartupError(LyraSimError):
    """The node cannot start: a parameter refused at start-up, or no world to serve."""


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
    raise StartupError("set the 'world' or the 'image' parameter")


def survives(kind: str):
    """Decorate a callback so that no exception leaves it: log (throttled), count under ``kind``, skip."""

    def decorate(method):
        @functools.wraps(method)
        def run(self, *args):
            try:
                return method(self, *args)
            except Exception as exc:
                if not self.context.ok():  # shutting down (Ctrl-C / SIGTERM): publishers are gone
                    return None
                self.report(kind, f"{type(exc).__name__}: {exc}", error=True)
                return None

        return run

    return decorate


class WorldCamera(Node):
    def __init__(self, **kwargs):
        # Before Node's own set-up: a node refused at start-up is still destroyed by its context.
        self._lock = threading.Lock()  # camera, pose and world as one consistent snapshot for the render thread
        self._wake, self._stop = threading.Event(), threading.Event()
        self._render_thread = threading.Thread(target=self._render_loop, name="world_camera_render", daemon=True)
        super().__init__("world_camera", **kwargs)
        self.counters: Counter[str] = Counter()
        self._last_report: dict[str, float] = {}
        self._refusal = ""
        self.add_on_set_parameters_callback(self._check_parameters)
        for name, spec in PARAMETERS.items():
            descriptor = ParameterDescriptor(description=spec.description, read_only=spec.read_only,
                                             dynamic_typing=spec.numeric)
            try:
                self.declare_parameter(name, spec.default, descriptor)
            except InvalidParameterValueException as exc:
                raise StartupError(self._refusal or str(exc)) from None
        self.add_post_set_parameters_callback(self._apply_parameters)
        self.world = None
        self.time = 0.0
        self.camera_to_world: np.ndarray | None = None
        self.stamp = None
        self.last_render = 0.0
        self.renders_done = 0
        self.reload_world(initial=True)
        self._configure_camera()

        latched = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE,
                             durability=DurabilityPolicy.TRANSIENT_LOCAL)
        newest = QoSProfile(depth=1, history=HistoryPolicy.KEEP_LAST, reliability=ReliabilityPolicy.RELIABLE)
        images = self.image_qos()
        self.image_pub = self.create_publisher(Image, "~/image_raw", images)
        self.compressed_pub = self.create_publisher(CompressedImage, "~/image_raw/compressed", images)
        self.depth_pub = self.create_publisher(Image, "~/depth", images)
        self.info_pub = self.create_publisher(CameraInfo, "~/camera_info", images)
        self.points_pub = self.create_publisher(PointCloud2, "~/world_points", latched)
        self.mesh_pub = self.create_publisher(Marker, "~/collision_mesh", latched)
        self.create_subscription(PoseStamped, "~/pose", self.on_pose, newest)
        self.create_subscription(Odometry, "~/odom", self.on_odom, newest)
        self.create_subscription(Float64, "~/time", self.on_time, newest)
        self.create_service(Trigger, "~/reload", self.on_reload)
        self.timer = self.create_timer(1.0 / self._param("rate_hz"), self.on_timer)

        initial = list(self._param("initial_pose"))
        if len(initial) == 7:
            self.camera_to_world = conversions.pose_vector_to_matrix(initial)
        self.publish_world()
        self._render_thread.start()
        self.get_logger().info(f"serving {len(self._current_world()):,} Gaussians; waiting for poses on "
                               f"{self.resolve_topic_name('~/pose')}")

    def report(self, kind: str, text: str, error: bool = False) -> None:
        """Count a skipped input or failure under ``kind`` and log it at most every REPORT_INTERVAL_S per kind.

        (Own throttle: rclpy's throttle_duration_sec inspects the caller's frame, about 10 ms a call, which a
        flood of bad poses would turn into the node's bottleneck.)
        """
        self.counters[kind] += 1
        now = time.monotonic()
        if now - self._last_report.get(kind, -math.inf) >= REPORT_INTERVAL_S:
            self._last_report[kind] = now
            message = f"{kind}: {text} (skipped; {self.counters[kind]} so far)"
            if error:  # two call sites: rclpy refuses one call site logging at two severities
                self.get_logger().error(message)
            else:
                self.get_logger().warning(message)

    # --- parameters ---------------------------------------------------------------------------------------
    def _param(self, name: str):
        return self.get_parameter(name).value

    def image_qos(self) -> QoSProfile:
        """Images and camera_info: keep-last ``image_qos_depth``, volatile, reliable unless asked otherwise."""
        reliability = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
        return QoSProfile(depth=self._param("image_qos_depth"), history=HistoryPolicy.KEEP_LAST,
                          reliability=reliability[self._param("image_reliability")],
                          durability=DurabilityPolicy.VOLATILE)

    def _check_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuse any value the table's checks refuse, with the reason (rclpy keeps the old values)."""
        values = {name: self._param(name) for name in ("width", "height") if self.has_parameter(name)}
        for parameter in parameters:
            reason = problem(parameter.name, parameter.value)
            if reason:
                self._refusal = f"{parameter.name}: {reason}"
                return SetParametersResult(successful=False, reason=self._refusal)
            if parameter.name in ("width", "height"):  # also while they are declared, one after the other
                values[parameter.name] = parameter.value
        if len(values) == 2 and (reason := combined_problem(values)):
            self._refusal = reason
            return SetParametersResult(successful=False, reason=reason)
        return SetParametersResult(successful=True)

    @survives("parameter_apply_failures")
    def _apply_parameters(self, parameters: list[Parameter]) -> None:
        names = {parameter.name for parameter in parameters}
        if names & CAMERA_PARAMETERS:
            self._configure_camera()
            self.get_logger().info(f"camera now {self.width}x{self.height}, fov {float(self._param('fov_deg'))} deg")
        if "rate_hz" in names:
            self.timer.timer_period_ns = int(1e9 / self._param("rate_hz"))
        if names & WORLD_TOPIC_PARAMETERS:
            self.publish_world()

    # --- world --------------------------------------------------------------------------------------------
    def _configure_camera(self) -> None:
        width, height = int(self._param("width")), int(self._param("height"))
        K = Camera.intrinsics_from_fov(width, height, float(self._param("fov_deg")))
        with self._lock:
            self.width, self.height, self.K = width, height, K
        if width * height > MAX_COMPRESSED_PIXELS:
            self.get_logger().warning(f"{width}x{height} frames are larger than {MAX_COMPRESSED_PIXELS:,} pixels: "
                                      "~/image_raw/compressed is not published at this size")

    def reload_world(self, initial: bool = False) -> str:
        world = load_world_from(self._param("world"), self._param("image"), self._param("depth"),
                                self._param("intrinsics"))
        with self._lock:
            self.world = world
        if not initial:
            self.publish_world()
        return f"loaded {len(self._current_world()):,} Gaussians"

    def _current_world(self):
        if isinstance(self.world, DynamicGaussianWorld):
            return self.world.at(self.time)
        return self.world

    @survives("world_publish_failures")
    def publish_world(self) -> None:
        world = self._current_world().most_opaque(int(self._param("point_cloud_max_points")))
        head = conversions.header(self.get_clock().now().to_msg(), self._param("world_frame_id"))
        self.points_pub.publish(conversions.point_cloud(world.means.numpy(), world.rgb.numpy(), head))
        mesh_path = self._param("collision_mesh")
        if mesh_path:
            import open3d as o3d

            mesh = o3d.io.read_triangle_mesh(mesh_path)
            if len(mesh.triangles):
                self.mesh_pub.publish(conversions.triangle_marker(np.asarray(mesh.vertices),
                                                                  np.asarray(mesh.triangles), head))
            else:
                self.get_logger().warning(f"collision_mesh: no triangles in {mesh_path}")

    # --- callbacks ----------------------------------------------------------------------------------------
    def _accept(self, matrix: np.ndarray | None, reason: str | None, stamp) -> None:
        if matrix is None:
            self.report("rejected_poses", reason)
            return
        with self._lock:
            self.camera_to_world, self.stamp = matrix, stamp
        self.render_and_publish()

    @survives("pose_callback_failures")
    def on_pose(self, message: PoseStamped) -> None:
        matrix, reason = conversions.pose_to_matrix(message.pose)
        self._accept(matrix, reason, message.header.stamp)

    @survives("odom_callback_failures")
    def on_odom(self, message: Odometry) -> None:
        base, reason = conversions.pose_to_matrix(message.pose.pose)
        if base is not None:
            base = base @ conversions.pose_vector_to_matrix(self._param("base_to_camera"))
        self._accept(base, reason, message.header.stamp)

    @survives("time_callback_failures")
    def on_time(self, message: Float64) -> None:
        if not np.isfinite(message.data):
            self.report("rejected_times", f"{message.data} is not finite")
            return
        self.time = float(message.data)

    @survives("timer_failures")
    def on_timer(self) -> None:
        period = 1.0 / self._param("rate_hz")
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
        """Ask the render thread for a frame at the newest pose (returns at once; requests made while it renders
        collapse into one)."""
        self.last_render = time.monotonic()  # also after a failure: the timer does not retry at full speed
        self._wake.set()

    def _render_loop(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(timeout=0.1) and not self._stop.is_set():
                self._wake.clear()
                self._render_once()

    @survives("render_failures")
    def _render_once(self) -> None:
        with self._lock:
            world, camera_to_world, stamp = self._current_world(), self.camera_to_world, self.stamp
            K, width, height = self.K, self.width, self.height
        if camera_to_world is None:
            return
        world_to_cam = torch.from_numpy(np.linalg.inv(camera_to_world)).float()
        camera = Camera(K, world_to_cam, width, height)
        with torch.no_grad():
            result = render(world, camera, backend=self._param("backend"),
                            background=tuple(float(v) for v in self._param("background")))
        if self._stop.is_set():
            return
        stamp = stamp if stamp is not None else self.get_clock().now().to_msg()
        head = conversions.header(stamp, self._param("camera_frame_id"))
        rgb = result.to_uint8().numpy()
        self.image_pub.publish(conversions.rgb_image(rgb, head))
        if self.compressed_pub.get_subscription_count():  # encoding costs time: only for listeners
            if width * height <= MAX_COMPRESSED_PIXELS:
                self.compressed_pub.publish(conversions.compressed_image(
                    rgb, head, self._param("compressed_format"), self._param("jpeg_quality"),
                    self._param("png_level")))
            else:
                self.report("compressed_frames_skipped", f"{width}x{height} is over {MAX_COMPRESSED_PIXELS:,} pixels")
        self.depth_pub.publish(conversions.depth_image(result.depth.reshape(height, width).numpy(), head))
        self.info_pub.publish(conversions.camera_info(K.numpy(), width, height, head))
        self.renders_done += 1

    def destroy_node(self) -> None:
        """Stop the render thread (waiting at most SHUTDOWN_WAIT_S for a render in progress), then the node."""
        self._stop.set()
        self._wake.set()
        if self._render_thread.is_alive():
            self._render_thread.join(timeout=SHUTDOWN_WAIT_S)
            if self._render_thread.is_alive():
                self.get_logger().warning("a render is still running; shutting down without waiting for it")
        super().destroy_node()


def run(args: list[str] | None = None) -> int:
    """Run the node until Ctrl-C or SIGTERM (both end it cleanly: 0); a bad start-up value: one line, 2."""
    rclpy.init(args=args)  # installs SIGINT/SIGTERM handlers that shut the context down
    node = None
    code = 0
    try:
        node = WorldCamera()
        rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        if rclpy.ok():  # otherwise a side effect of Ctrl-C / SIGTERM during start-up: end quietly
            if not isinstance(exc, (LyraSimError, OSError, ValueError)):
                raise
            print(f"world_camera: {exc}", file=sys.stderr)
            code = 2
    finally:
        if node is not None:
            if node.counters:
                node.get_logger().info(f"skipped: {dict(node.counters)}")
            node.destroy_node()
        rclpy.try_shutdown()
    return code
