"""The world_camera node with real rclpy (in a subprocess), its launch file, and MCAP bags.

DDS stays on this machine: ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a test-specific ROS_DOMAIN_ID are
set here, before rclpy is imported, and passed to the node's process.
"""

import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(100 + os.getpid() % 100)  # 100-199: distinct per test run

rclpy = pytest.importorskip("rclpy", reason="the ros extra (ROS 2 Kilted wheels) is not installed")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from sensor_msgs.msg import CameraInfo, Image, PointCloud2  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from lyra_sim import Camera, render  # noqa: E402
from lyra_sim.io import save_world  # noqa: E402

PACKAGE = Path(__file__).resolve().parent.parent / "ros2_ws" / "src" / "lyra_sim_ros"
WIDTH, HEIGHT, FOV = 64, 48, 70.0


def small_world(seed=0):
    from conftest import random_world

    world = random_world(400, sh_degree=1, seed=seed, depth=3.0, spread=0.8)
    world.meters_per_unit = 1.0
    return world


def optical_pose(eye, yaw_deg=0.0):
    """Camera-to-world of an OpenCV camera at ``eye`` looking along +z, turned ``yaw_deg`` about -y."""
    angle = math.radians(yaw_deg)
    matrix = np.eye(4)
    matrix[:3, :3] = [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
    matrix[:3, 3] = eye
    return matrix


def pose_message(matrix, stamp_sec, frame="map"):
    from lyra_sim.rotations import rotmat_to_quat

    message = PoseStamped()
    message.header.frame_id = frame
    message.header.stamp.sec = int(stamp_sec)
    w, x, y, z = rotmat_to_quat(torch.from_numpy(matrix[:3, :3])).tolist()
    message.pose.position.x, message.pose.position.y, message.pose.position.z = (float(v) for v in matrix[:3, 3])
    message.pose.orientation.w, message.pose.orientation.x = w, x
    message.pose.orientation.y, message.pose.orientation.z = y, z
    return message


@pytest.fixture(scope="module")
def ros_setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ros")
    world_path = save_world(small_world(), folder / "world.ply")
    other_path = save_world(small_world(seed=1), folder / "other.ply")
    command = [sys.executable, "-m", "lyra_sim_ros.world_camera", "--ros-args",
               "-p", f"world:={world_path}", "-p", f"width:={WIDTH}", "-p", f"height:={HEIGHT}",
               "-p", f"fov_deg:={FOV}", "-p", "rate_hz:=5.0", "-p", "camera_frame_id:=test_cam_optical",
               "-p", "world_frame_id:=test_map", "-p", "backend:=cpu"]
    env = {**os.environ, "PYTHONPATH": f"{PACKAGE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("world_camera_test")
    received = {"image": [], "depth": [], "info": [], "points": []}
    node.create_subscription(Image, "/world_camera/image_raw", received["image"].append, 10)  # default QoS
    node.create_subscription(Image, "/world_camera/depth", received["depth"].append, qos_profile_sensor_data)
    node.create_subscription(CameraInfo, "/world_camera/camera_info", received["info"].append,
                             qos_profile_sensor_data)
    latched = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
    node.create_subscription(PointCloud2, "/world_camera/world_points", received["points"].append, latched)
    publisher = node.create_publisher(PoseStamped, "/world_camera/pose", 10)
    state = {"node": node, "publisher": publisher, "received": received, "process": process,
             "world_path": world_path, "other_path": other_path}
    yield state
    node.destroy_node()
    rclpy.shutdown()
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()


def spin_until(state, condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rclpy.spin_once(state["node"], timeout_sec=0.05)
        if condition():
            return True
        if state["process"].poll() is not None:
            raise AssertionError(f"node exited: {state['process'].stdout.read()}")
    return False


def image_for_stamp(state, sec, kind="image"):
    for message in reversed(state["received"][kind]):
        if message.header.stamp.sec == sec:
            return message
    return None


def publish_until_image(state, matrix, sec, timeout=60.0):
    """Publish a pose (again, until matched: discovery takes a moment) and return the image stamped with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state["publisher"].publish(pose_message(matrix, sec))
        if spin_until(state, lambda: image_for_stamp(state, sec) is not None, timeout=1.0):
            spin_until(state, lambda: image_for_stamp(state, sec, "depth") and image_for_stamp(state, sec, "info"),
                       timeout=5.0)
            return image_for_stamp(state, sec)
    raise AssertionError(f"no image stamped {sec} within {timeout} s")


def expected_render(world, matrix):
    camera = Camera.from_fov(WIDTH, HEIGHT, FOV, world_to_cam=torch.from_numpy(np.linalg.inv(matrix)).float())
    with torch.no_grad():
        return render(world, camera, backend="cpu")  # the node's and the bag's default background too


def test_node_renders_what_lyra_sim_renders(ros_setup):
    matrix = optical_pose([0.2, -0.1, 0.0], yaw_deg=8.0)
    image = publish_until_image(ros_setup, matrix, sec=101)
    assert image.encoding == "rgb8" and (image.width, image.height) == (WIDTH, HEIGHT)
    assert image.header.frame_id == "test_cam_optical"
    got = np.frombuffer(bytes(image.data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    from lyra_sim.io import load_world

    expected = expected_render(load_world(ros_setup["world_path"]), matrix)
    np.testing.assert_array_equal(got, expected.to_uint8().numpy())
    depth = image_for_stamp(ros_setup, 101, "depth")
    assert depth.encoding == "32FC1" and depth.step == 4 * WIDTH
    got_depth = np.frombuffer(bytes(depth.data), "<f4").reshape(HEIGHT, WIDTH)
    np.testing.assert_allclose(got_depth, expected.depth.reshape(HEIGHT, WIDTH).numpy(), rtol=1e-6, atol=1e-6)
    info = image_for_stamp(ros_setup, 101, "info")
    fx = 0.5 * WIDTH / math.tan(math.radians(FOV) / 2)
    assert list(info.k) == pytest.approx([fx, 0, WIDTH / 2, 0, fx, HEIGHT / 2, 0, 0, 1])
    assert list(info.p) == pytest.approx([fx, 0, WIDTH / 2, 0, 0, fx, HEIGHT / 2, 0, 0, 0, 1, 0])
    assert info.header.frame_id == "test_cam_optical" and (info.width, info.height) == (WIDTH, HEIGHT)


def test_world_point_cloud_is_latched(ros_setup):
    assert spin_until(ros_setup, lambda: ros_setup["received"]["points"], timeout=30)
    cloud = ros_setup["received"]["points"][-1]
    assert cloud.width == 400 and cloud.header.frame_id == "test_map" and cloud.point_step == 16
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]


def test_burst_of_bad_poses_leaves_node_alive(ros_setup):
    good = optical_pose([0.0, 0.0, 0.0])
    publish_until_image(ros_setup, good, sec=200)
    for i in range(1000):
        bad = pose_message(good, 300)
        if i % 2:
            bad.pose.position.x = float("nan")
        else:
            bad.pose.orientation.w = 2.0  # not a unit quaternion
        ros_setup["publisher"].publish(bad)
    rclpy.spin_once(ros_setup["node"], timeout_sec=0.1)
    assert ros_setup["process"].poll() is None
    assert image_for_stamp(ros_setup, 300) is None  # none of them was rendered
    publish_until_image(ros_setup, optical_pose([0.1, 0.0, 0.0]), sec=301)  # and it still serves good ones


def test_odometry_pose_goes_through_the_camera_mount(ros_setup):
    from lyra_sim_ros.conversions import pose_vector_to_matrix
    from lyra_sim_ros.parameters import PARAMETERS
    from nav_msgs.msg import Odometry

    from lyra_sim.io import load_world

    publisher = ros_setup["node"].create_publisher(Odometry, "/world_camera/odom", 10)
    base = np.eye(4)
    base[:3, :3] = [[0, 0, 1], [0, -1, 0], [1, 0, 0]]  # a base whose x axis points along the world's +z
    base[:3, 3] = [0.1, 0.0, -0.3]
    odom = Odometry()
    odom.header.stamp.sec = 500
    pose = pose_message(base, 500).pose
    odom.pose.pose = pose
    deadline = time.monotonic() + 60
    while image_for_stamp(ros_setup, 500) is None and time.monotonic() < deadline:
        publisher.publish(odom)
        spin_until(ros_setup, lambda: image_for_stamp(ros_setup, 500) is not None, timeout=1.0)
    image = image_for_stamp(ros_setup, 500)
    assert image is not None
    camera = base @ pose_vector_to_matrix(PARAMETERS["base_to_camera"].default)
    expected = expected_render(load_world(ros_setup["world_path"]), camera).to_uint8().numpy()
    np.testing.assert_array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(HEIGHT, WIDTH, 3), expected)


def _call(state, service_type, name, request, timeout=30.0):
    client = state["node"].create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=timeout), f"{name} not available"
    future = client.call_async(request)
    spin_until(state, future.done, timeout=timeout)
    state["node"].destroy_client(client)
    return future.result()


def _set_world(state, path):
    value = ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=str(path))
    request = SetParameters.Request(parameters=[Parameter(name="world", value=value)])
    result = _call(state, SetParameters, "/world_camera/set_parameters", request)
    assert result.results[0].successful


def test_reload_switches_world_and_bad_reload_keeps_the_old_one(ros_setup):
    from lyra_sim.io import load_world

    matrix = optical_pose([0.0, 0.1, 0.2])
    _set_world(ros_setup, ros_setup["other_path"])
    response = _call(ros_setup, Trigger, "/world_camera/reload", Trigger.Request())
    assert response.success, response.message
    image = publish_until_image(ros_setup, matrix, sec=400)
    expected = expected_render(load_world(ros_setup["other_path"]), matrix).to_uint8().numpy()
    np.testing.assert_array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(HEIGHT, WIDTH, 3), expected)

    _set_world(ros_setup, "/nonexistent/world.ply")
    response = _call(ros_setup, Trigger, "/world_camera/reload", Trigger.Request())
    assert not response.success and "previous world" in response.message
    image = publish_until_image(ros_setup, matrix, sec=401)
    np.testing.assert_array_equal(np.frombuffer(bytes(image.data), np.uint8).reshape(HEIGHT, WIDTH, 3), expected)
    assert ros_setup["process"].poll() is None


def _matrix(translation, rotation) -> np.ndarray:
    from lyra_sim.rotations import quat_to_rotmat

    matrix = np.eye(4)
    q = torch.tensor([rotation.w, rotation.x, rotation.y, rotation.z], dtype=torch.float64)
    matrix[:3, :3] = quat_to_rotmat(q).numpy()
    matrix[:3, 3] = [translation.x, translation.y, translation.z]
    return matrix


def test_mcap_bag_round_trip(tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.reader import read_ros2_messages

    from lyra_sim.cli import main

    world = small_world()
    world_path = save_world(world, tmp_path / "w.ply")
    bag = tmp_path / "path.mcap"
    start = 1_700_000_000.25
    code = main(["record-bag", str(world_path), "fly", str(bag), "--frames", "4", "--width", str(WIDTH),
                 "--height", str(HEIGHT), "--fov", str(FOV), "--rate", "5", "--start", str(start)])
    assert code == 0
    messages = list(read_ros2_messages(bag))
    topics = [m.channel.topic for m in messages]
    expected_counts = {f"/camera/{n}": 4 for n in ("image_raw", "depth", "camera_info", "pose")}
    assert {t: topics.count(t) for t in set(topics)} == {**expected_counts, "/tf": 4, "/tf_static": 1}
    poses = [m.ros_msg for m in messages if m.channel.topic == "/camera/pose"]
    images = [m.ros_msg for m in messages if m.channel.topic == "/camera/image_raw"]
    assert [(p.header.stamp.sec, p.header.stamp.nanosec) for p in poses] == [
        (1_700_000_000, 250_000_000), (1_700_000_000, 450_000_000), (1_700_000_000, 650_000_000),
        (1_700_000_000, 850_000_000)]
    assert [m.log_time_ns for m in messages if m.channel.topic == "/camera/pose"] == [
        p.header.stamp.sec * 10**9 + p.header.stamp.nanosec for p in poses]
    # /tf moves camera_link in map; /tf_static fixes the optical frame to it (REP 103: optical z = body x,
    # optical x = body -y, optical y = body -z); together they give the pose topic's optical-frame pose.
    (static,) = next(m.ros_msg for m in messages if m.channel.topic == "/tf_static").transforms
    assert (static.header.frame_id, static.child_frame_id) == ("camera_link", "camera_optical_frame")
    optical_in_body = _matrix(static.transform.translation, static.transform.rotation)
    np.testing.assert_allclose(optical_in_body[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)
    tfs = [m.ros_msg.transforms for m in messages if m.channel.topic == "/tf"]
    for (tf,), pose in zip(tfs, poses, strict=True):
        assert (tf.header.frame_id, tf.child_frame_id) == ("map", "camera_link")
        assert (tf.header.stamp.sec, tf.header.stamp.nanosec) == (pose.header.stamp.sec, pose.header.stamp.nanosec)
        chained = _matrix(tf.transform.translation, tf.transform.rotation) @ optical_in_body
        np.testing.assert_allclose(chained, _matrix(pose.pose.position, pose.pose.orientation), atol=1e-6)
    with open(bag, "rb") as stream:
        channels = {c.topic: c for c in make_reader(stream).get_summary().channels.values()}
    assert "durability: 1" in channels["/tf_static"].metadata["offered_qos_profiles"]  # transient local: latched
    # Re-render frame 2 from the pose in the bag: identical image.
    matrix = _matrix(poses[2].pose.position, poses[2].pose.orientation)
    got = np.frombuffer(bytes(images[2].data), np.uint8).reshape(HEIGHT, WIDTH, 3)
    expected = expected_render(world, matrix).to_uint8().numpy()
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1  # float32 pose round trip
    info = next(m.ros_msg for m in messages if m.channel.topic == "/camera/camera_info")
    fx = 0.5 * WIDTH / math.tan(math.radians(FOV) / 2)
    assert list(info.k) == pytest.approx([fx, 0, WIDTH / 2, 0, fx, HEIGHT / 2, 0, 0, 1])
    assert main(["record-bag", str(world_path), "fly", str(tmp_path / "x.bag")]) == 2
    assert not (tmp_path / "x.bag").exists()


def test_bag_stamps_start_now_and_without_a_body_frame_tf_moves_the_optical_frame(tmp_path):
    from mcap_ros2.reader import read_ros2_messages

    from lyra_sim.ros.bag import record_bag

    cameras = Camera.stack([Camera.from_fov(16, 12, 60.0), Camera.from_fov(16, 12, 60.0)])
    before = time.time()
    bag = record_bag(small_world(), cameras, tmp_path / "now.mcap", body_frame_id=None, progress=False)
    after = time.time()
    messages = list(read_ros2_messages(bag))
    assert "/tf_static" not in {m.channel.topic for m in messages}
    (first,) = next(m.ros_msg for m in messages if m.channel.topic == "/tf").transforms
    assert first.child_frame_id == "camera_optical_frame"
    assert before - 1e-3 <= first.header.stamp.sec + first.header.stamp.nanosec * 1e-9 <= after + 1e-3


def test_sigterm_and_ctrl_c_end_the_node_cleanly_and_a_bad_parameter_is_one_line(tmp_path):
    """Signals arrive while the node renders at 50 Hz (where a publisher used to raise RCLError)."""
    world_path = save_world(small_world(), tmp_path / "w.ply")
    env = {**os.environ, "PYTHONPATH": f"{PACKAGE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}

    def start(namespace, *parameters):
        command = [sys.executable, "-m", "lyra_sim_ros.world_camera", "--ros-args", "-r", f"__ns:=/{namespace}",
                   "-p", f"world:={world_path}", "-p", "backend:=cpu", *parameters]
        return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    rendering = ("-p", "rate_hz:=50.0", "-p", "initial_pose:=[0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]")
    processes = {sig: start(f"signal_{sig.name.lower()}", *rendering) for sig in (signal.SIGTERM, signal.SIGINT)}
    refused = start("refused", "-p", "width:=0")
    for sig, process in processes.items():
        line = process.stderr.readline()  # rclpy logs to stderr: the node is up once it says so
        while line and "serving" not in line:
            line = process.stderr.readline()
        assert "serving" in line, f"{sig.name}: node did not start"
        time.sleep(1.0)  # let it render a few frames
        process.send_signal(sig)
    for sig, process in processes.items():
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, (sig.name, process.returncode, stderr)
        assert "Traceback" not in stderr and "RCLError" not in stderr, (sig.name, stderr)
    _, stderr = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert stderr.strip().splitlines() == ["world_camera: width: expected an integer in [1, 8192], got 0"]


def test_bag_start_time_is_seconds_or_iso_8601_and_nonsense_is_one_line(tmp_path, capsys):
    from lyra_sim.cli import main
    from lyra_sim.ros.bag import BagError, parse_start_time

    assert parse_start_time("1700000000.5") == 1_700_000_000.5
    assert parse_start_time("2023-11-14T22:13:20") == 1_700_000_000  # UTC
    assert parse_start_time("2023-11-14T23:13:20+01:00") == 1_700_000_000
    for bad in ("yesterday", "-5", "nan"):
        with pytest.raises(BagError, match="start time"):
            parse_start_time(bad)
    world_path = save_world(small_world(), tmp_path / "w.ply")
    capsys.readouterr()
    assert main(["record-bag", str(world_path), "fly", str(tmp_path / "b.mcap"), "--start", "yesterday"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "b.mcap").exists()
