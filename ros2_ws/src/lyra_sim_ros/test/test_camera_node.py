"""The world_camera node in this process with real rclpy: hostile poses and parameters, QoS, compressed images.

DDS stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, and the node runs in its own rclpy context
on a private domain id, in its own namespace.
"""

import io
import math
import os

import numpy as np
import pytest
import torch

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
DOMAIN_ID = 30 + os.getpid() % 60  # 30-89: apart from tests/test_ros.py (100-199) and benchmarks (200-229)

rclpy = pytest.importorskip("rclpy", reason="the ros extra (ROS 2 Kilted wheels) is not installed")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from lyra_sim_ros.camera_node import StartupError, WorldCamera  # noqa: E402
from lyra_sim_ros.hostile import hostile_poses  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import qos_profile_sensor_data  # noqa: E402
from rclpy.signals import SignalHandlerOptions  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image  # noqa: E402
from std_msgs.msg import Float64  # noqa: E402

from lyra_sim import Camera, GaussianWorld, render, save_world  # noqa: E402

WIDTH, HEIGHT, FOV = 48, 36, 70.0
NAMESPACE = "/soak"
TOPIC = f"{NAMESPACE}/world_camera"
HOSTILE_POSES = int(os.environ.get("LYRA_SIM_ROS_SOAK_POSES", "2000"))  # benchmarks/bench_ros.py: 10,000


def make_world(n=300, seed=0) -> GaussianWorld:
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.6 + torch.tensor([0.0, 0.0, 3.0])
    world = GaussianWorld(means, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.12 + 0.02,
                          torch.rand(n, generator=g) * 0.9 + 0.05, torch.randn(n, 1, 3, generator=g) * 0.5)
    world.meters_per_unit = 1.0
    return world


@pytest.fixture(scope="module")
def ros(tmp_path_factory):
    world = make_world()
    path = save_world(world, tmp_path_factory.mktemp("node") / "world.ply")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID, signal_handler_options=SignalHandlerOptions.NO)
    overrides = [Parameter("world", value=str(path)), Parameter("width", value=WIDTH),
                 Parameter("height", value=HEIGHT), Parameter("fov_deg", value=FOV), Parameter("backend", value="cpu"),
                 Parameter("rate_hz", value=0.2)]
    node = WorldCamera(context=context, namespace=NAMESPACE, parameter_overrides=overrides)
    client = rclpy.create_node("soak_client", context=context)
    received = {"default": [], "sensor": [], "info": [], "compressed": []}
    client.create_subscription(Image, f"{TOPIC}/image_raw", received["default"].append, 10)  # default QoS
    client.create_subscription(Image, f"{TOPIC}/image_raw", received["sensor"].append, qos_profile_sensor_data)
    client.create_subscription(CameraInfo, f"{TOPIC}/camera_info", received["info"].append, 10)
    client.create_subscription(CompressedImage, f"{TOPIC}/image_raw/compressed", received["compressed"].append, 10)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    executor.add_node(client)
    from lyra_sim.io import load_world

    state = {"node": node, "client": client, "executor": executor, "received": received, "context": context,
             "path": path, "world": load_world(path)}
    yield state
    executor.shutdown()
    node.destroy_node()
    client.destroy_node()
    rclpy.shutdown(context=context)


def optical_pose(eye, yaw_deg=0.0) -> np.ndarray:
    angle = math.radians(yaw_deg)
    matrix = np.eye(4)
    matrix[:3, :3] = [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    matrix[:3, 3] = eye
    return matrix


def pose_message(matrix, sec) -> PoseStamped:
    from lyra_sim.rotations import rotmat_to_quat

    message = PoseStamped()
    message.header.stamp.sec = sec
    w, x, y, z = rotmat_to_quat(torch.from_numpy(matrix[:3, :3])).tolist()
    p = message.pose
    p.position.x, p.position.y, p.position.z = (float(v) for v in matrix[:3, 3])
    p.orientation.w, p.orientation.x, p.orientation.y, p.orientation.z = w, x, y, z
    return message


def spin_until(state, condition, timeout=30.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state["executor"].spin_once(timeout_sec=0.02)
        if condition():
            return True
    return False


def stamped(state, kind, sec):
    return next((m for m in reversed(state["received"][kind]) if m.header.stamp.sec == sec), None)


def serve(state, matrix, sec, kinds=("default", "sensor", "info")):
    """Give the node a pose (as its subscription callback would) and wait for every kind stamped with it."""
    state["node"].on_pose(pose_message(matrix, sec))
    assert spin_until(state, lambda: all(stamped(state, k, sec) for k in kinds)), f"no {kinds} stamped {sec}"
    return stamped(state, kinds[0], sec)


def expected_rgb(state, matrix, width=WIDTH, height=HEIGHT, fov=FOV) -> np.ndarray:
    camera = Camera.from_fov(width, height, fov, world_to_cam=torch.from_numpy(np.linalg.inv(matrix)).float())
    with torch.no_grad():
        return render(state["world"], camera, backend="cpu").to_uint8().numpy()


def pixels(image) -> np.ndarray:
    return np.frombuffer(bytes(image.data), np.uint8).reshape(image.height, image.width, 3)


def test_default_qos_and_sensor_data_subscribers_both_receive_images(ros):
    matrix = optical_pose([0.1, -0.05, 0.0], yaw_deg=5.0)
    image = serve(ros, matrix, sec=11)
    np.testing.assert_array_equal(pixels(image), expected_rgb(ros, matrix))
    np.testing.assert_array_equal(pixels(stamped(ros, "sensor", 11)), pixels(image))
    qos = ros["node"].image_pub.qos_profile
    assert qos.reliability.name == "RELIABLE" and qos.history.name == "KEEP_LAST" and qos.depth == 10


@pytest.mark.parametrize("codec", ["png", "jpeg"])
def test_compressed_image_decodes_to_the_rendered_image(ros, codec):
    from PIL import Image as PILImage

    assert ros["node"].set_parameters([Parameter("compressed_format", value=codec)])[0].successful
    matrix = optical_pose([0.0, 0.1, 0.1], yaw_deg=-4.0)
    sec = 20 + len(codec)
    serve(ros, matrix, sec, kinds=("compressed", "default"))
    message = stamped(ros, "compressed", sec)
    assert message.format == f"rgb8; {codec} compressed bgr8"
    decoded = np.asarray(PILImage.open(io.BytesIO(bytes(message.data))).convert("RGB"))
    raw = pixels(stamped(ros, "default", sec))
    if codec == "png":
        np.testing.assert_array_equal(decoded, raw)
    else:  # lossy: close on average, no pixel wildly off
        difference = np.abs(decoded.astype(int) - raw.astype(int))
        assert difference.mean() < 3.0 and np.percentile(difference, 99) < 40, (difference.mean(), difference.max())


def test_hostile_poses_are_counted_and_skipped_and_good_poses_still_serve(ros):
    node = ros["node"]
    before = dict(node.counters)
    images_before = len(ros["received"]["default"])
    for message in hostile_poses(HOSTILE_POSES):
        (node.on_pose if isinstance(message, PoseStamped) else node.on_odom)(message)
    for value in (math.nan, math.inf, -math.inf):
        node.on_time(Float64(data=value))
    spin_until(ros, lambda: False, timeout=0.3)
    assert node.counters["rejected_poses"] - before.get("rejected_poses", 0) == HOSTILE_POSES
    assert node.counters["rejected_times"] - before.get("rejected_times", 0) == 3
    assert not {k for k in node.counters if k.endswith("failures")}, node.counters  # nothing slipped past the checks
    assert len(ros["received"]["default"]) == images_before  # none was rendered
    # A pose far out (but inside the 1000 km bound) renders an empty image instead of dying.
    far = optical_pose([9.9e5, -9.9e5, 9.9e5])
    np.testing.assert_array_equal(pixels(serve(ros, far, sec=31)), 255)  # nothing but the white background
    good = optical_pose([0.05, 0.0, -0.1], yaw_deg=3.0)
    np.testing.assert_array_equal(pixels(serve(ros, good, sec=32)), expected_rgb(ros, good))


def test_hostile_poses_through_dds_leave_the_node_serving(ros):
    publisher = ros["client"].create_publisher(PoseStamped, f"{TOPIC}/pose", 10)
    odometry = ros["client"].create_publisher(Odometry, f"{TOPIC}/odom", 10)
    assert spin_until(ros, lambda: publisher.get_subscription_count() and odometry.get_subscription_count())
    rejected = ros["node"].counters["rejected_poses"]
    for message in hostile_poses(300, seed=1):
        (publisher if isinstance(message, PoseStamped) else odometry).publish(message)
        ros["executor"].spin_once(timeout_sec=0)
    spin_until(ros, lambda: False, timeout=0.5)
    assert ros["node"].counters["rejected_poses"] > rejected  # they arrived (depth-1 queues drop some)
    assert not {k for k in ros["node"].counters if k.endswith("failures")}
    good = optical_pose([0.0, 0.05, 0.0])
    publisher.publish(pose_message(good, 41))
    assert spin_until(ros, lambda: stamped(ros, "default", 41) is not None)
    np.testing.assert_array_equal(pixels(stamped(ros, "default", 41)), expected_rgb(ros, good))


def test_a_failing_render_is_counted_and_the_node_keeps_serving(ros, monkeypatch):
    import lyra_sim_ros.camera_node as camera_node

    def broken(*args, **kwargs):
        raise RuntimeError("simulated renderer failure")

    monkeypatch.setattr(camera_node, "render", broken)
    ros["node"].on_pose(pose_message(optical_pose([0.0, 0.0, 0.0]), 50))
    assert spin_until(ros, lambda: ros["node"].counters["render_failures"] == 1, timeout=10)
    monkeypatch.undo()
    del ros["node"].counters["render_failures"]
    serve(ros, optical_pose([0.0, 0.0, 0.0]), sec=51)


def test_a_slow_render_blocks_neither_callbacks_nor_shutdown(tmp_path, monkeypatch):
    """A render that takes seconds (a 4096 x 4096 CPU frame) runs on the render thread: poses are taken at once,
    requests made meanwhile collapse into one render of the newest pose, and destroy_node does not wait it out."""
    import threading
    import time

    import lyra_sim_ros.camera_node as camera_node

    started, release = threading.Event(), threading.Event()
    real = camera_node.render

    def slow(*args, **kwargs):
        started.set()
        release.wait(timeout=3)  # the old, synchronous node would block each callback this long
        return real(*args, **kwargs)

    path = save_world(make_world(), tmp_path / "world.ply")
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=DOMAIN_ID, signal_handler_options=SignalHandlerOptions.NO)
    node = WorldCamera(context=context, namespace="/slow", parameter_overrides=[
        Parameter("world", value=str(path)), Parameter("width", value=WIDTH), Parameter("height", value=HEIGHT),
        Parameter("backend", value="cpu"), Parameter("rate_hz", value=0.2)])
    try:
        monkeypatch.setattr(camera_node, "render", slow)
        node.on_pose(pose_message(optical_pose([0.0, 0.0, 0.0]), 1))
        assert started.wait(timeout=10)
        start = time.monotonic()
        for sec in range(2, 50):  # while the first render hangs, every pose is taken at once
            node.on_pose(pose_message(optical_pose([0.01 * sec, 0.0, 0.0]), sec))
        assert time.monotonic() - start < 1.0
        assert node.stamp.sec == 49
        release.set()
        deadline = time.monotonic() + 20
        while node.renders_done < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert node.renders_done == 2  # the one in progress, then one for the newest pose: no queue of 48
        release.clear()
        started.clear()
        node.on_pose(pose_message(optical_pose([0.0, 0.0, 0.0]), 60))
        assert started.wait(timeout=10)
        start = time.monotonic()
        node.destroy_node()  # the render hangs: shutdown goes on without it
        assert time.monotonic() - start < camera_node.SHUTDOWN_WAIT_S + 1.0
    finally:
        release.set()
        rclpy.shutdown(context=context)


HOSTILE_PARAMETERS = [
    ("background", [math.nan, 0.0, 0.0]), ("background", [0.0, 0.0]), ("background", [0.0, 2.0, 0.0]),
    ("backend", "bogus"), ("base_to_camera", [0.0] * 7), ("base_to_camera", [1e39, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
    ("base_to_camera", [0.0, 0.0, 0.0, math.nan, 0.0, 0.0, 0.0]), ("width", 0), ("width", 100000), ("height", 0),
    ("height", 100000), ("width", "wide"), ("fov_deg", 0.0), ("fov_deg", 180.0), ("fov_deg", math.nan),
    ("rate_hz", 0.0), ("rate_hz", -5.0), ("rate_hz", math.inf), ("camera_frame_id", ""), ("world_frame_id", "/map"),
    ("point_cloud_max_points", -1), ("collision_mesh", "/nonexistent/mesh.obj"), ("compressed_format", "gif"),
    ("jpeg_quality", 0), ("png_level", 10), ("initial_pose", [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
    ("image_reliability", "best_effort"), ("image_qos_depth", 5),
]


def test_every_hostile_parameter_is_refused_with_a_reason_and_changes_nothing(ros):
    node = ros["node"]
    for name, value in HOSTILE_PARAMETERS:
        before = node.get_parameter(name).value
        result = node.set_parameters([Parameter(name, value=value)])[0]
        assert not result.successful and result.reason, (name, value)
        after = node.get_parameter(name).value
        assert after == before or (list(after) == list(before)), (name, value)
    big = node.set_parameters_atomically([Parameter("width", value=8192), Parameter("height", value=8192)])
    assert not big.successful and "pixels" in big.reason
    assert (node.width, node.height) == (WIDTH, HEIGHT)
    good = optical_pose([0.0, 0.0, 0.05])
    np.testing.assert_array_equal(pixels(serve(ros, good, sec=60)), expected_rgb(ros, good))


def test_size_fov_and_rate_changes_apply(ros):
    node = ros["node"]
    result = node.set_parameters_atomically([Parameter("width", value=40), Parameter("height", value=30),
                                             Parameter("fov_deg", value=55)])  # an integer where a double is due
    assert result.successful, result.reason
    assert node.set_parameters([Parameter("rate_hz", value=4.0)])[0].successful
    assert node.timer.timer_period_ns == 250_000_000
    try:
        matrix = optical_pose([0.0, -0.05, 0.0])
        image = serve(ros, matrix, sec=70)
        assert (image.width, image.height) == (40, 30)
        np.testing.assert_array_equal(pixels(image), expected_rgb(ros, matrix, 40, 30, 55.0))
        info = stamped(ros, "info", 70)
        fx = 20 / math.tan(math.radians(55.0) / 2)
        assert list(info.k) == pytest.approx([fx, 0, 20, 0, fx, 15, 0, 0, 1])
    finally:
        node.set_parameters([Parameter("width", value=WIDTH), Parameter("height", value=HEIGHT),
                             Parameter("fov_deg", value=FOV), Parameter("rate_hz", value=0.2)])


@pytest.mark.parametrize("override, message", [
    (("width", 0), "width: expected an integer in [1, 8192], got 0"),
    (("background", [0.0, 0.5]), "background: expected [r, g, b]"),
    (("backend", "bogus"), "backend: expected one of auto, cpu, gsplat"),
    (("base_to_camera", [0.0] * 7), "base_to_camera: quaternion (qw, qx, qy, qz) must have unit length"),
    (("width", 8192, "height", 8192), "width x height = 67,108,864 pixels is more than the 16,777,216 allowed"),
])
def test_bad_start_up_values_fail_at_start_up_naming_the_parameter(ros, override, message):
    overrides = [Parameter(name, value=value) for name, value in zip(override[::2], override[1::2], strict=True)]
    with pytest.raises(StartupError) as caught:
        WorldCamera(context=ros["context"], namespace="/refused", parameter_overrides=overrides)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_point_cloud_limit_applies_at_once_and_keeps_the_most_opaque(ros):
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import PointCloud2

    clouds = []
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    subscription = ros["client"].create_subscription(PointCloud2, f"{TOPIC}/world_points", clouds.append, latched)
    try:
        assert ros["node"].set_parameters([Parameter("point_cloud_max_points", value=50)])[0].successful
        assert spin_until(ros, lambda: clouds and clouds[-1].width == 50)
        record = np.frombuffer(bytes(clouds[-1].data), dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("rgb", "<u4")])
        world = ros["world"]
        top = np.argsort(-world.opacities.numpy(), kind="stable")[:50]
        xyz = np.stack([record["x"], record["y"], record["z"]], axis=1)
        np.testing.assert_array_equal(xyz, world.means.numpy()[top])
        dc = np.clip(world.sh[:, 0].numpy()[top] * 0.28209479177387814 + 0.5, 0, 1)  # SH DC -> RGB, by hand
        packed = np.round(dc * 255).astype(np.uint32)
        np.testing.assert_array_equal(record["rgb"], (packed[:, 0] << 16) | (packed[:, 1] << 8) | packed[:, 2])
    finally:
        ros["client"].destroy_subscription(subscription)
        ros["node"].set_parameters([Parameter("point_cloud_max_points", value=50_000)])
