"""world_camera over real rclpy on this CPU: images/s and pose-to-image latency at 320x240 and 640x480, and a
soak of hostile inputs (10,000 poses no camera can have, every refused parameter) in the node's own process.

    python benchmarks/bench_ros.py            # writes its two sections of benchmarks/RESULTS.md
    python benchmarks/bench_ros.py --soak     # only the soak section

The node runs in its own process on the bundled example world (72k Gaussians). Latency: publish a pose,
wait for the image stamped with it (closed loop, median of 30). Throughput: publish poses at 100 Hz for
5 s and count the images that come back (the node keeps only the newest pose, so it never falls behind).
DDS stays on loopback (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, private ROS_DOMAIN_ID).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ["ROS_DOMAIN_ID"] = str(200 + os.getpid() % 30)

import numpy as np
import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from results import write_section
from sensor_msgs.msg import Image

from lyra_sim import generate_world, load_world, save_world
from lyra_sim.demo import EXAMPLE_DIR

DATA = EXAMPLE_DIR
PACKAGE = Path(__file__).resolve().parent.parent / "ros2_ws" / "src" / "lyra_sim_ros"


def pose(sec: int, nanosec: int, yaw: float) -> PoseStamped:
    message = PoseStamped()
    message.header.stamp.sec, message.header.stamp.nanosec = sec, nanosec
    message.pose.orientation.w, message.pose.orientation.y = math.cos(yaw / 2), math.sin(yaw / 2)
    return message


RESEND_S = 3.0  # closed loop: send the pose again when its image has not come back within this


def measure(world_path: Path, width: int, height: int, reliability: str) -> tuple[float, float, int]:
    """(median pose-to-image latency, images/s with poses at 100 Hz, re-sent poses) for images published
    ``reliability`` ("reliable": a default-QoS subscriber; "best_effort": a sensor-data one)."""
    command = [sys.executable, "-m", "lyra_sim_ros.world_camera", "--ros-args", "-p", f"world:={world_path}",
               "-p", f"width:={width}", "-p", f"height:={height}", "-p", "rate_hz:=1.0", "-p", "backend:=cpu",
               "-p", f"image_reliability:={reliability}"]
    env = {**os.environ, "PYTHONPATH": f"{PACKAGE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("bench_client")
    stamps: dict[tuple[int, int], float] = {}
    node.create_subscription(Image, "/world_camera/image_raw",
                             lambda m: stamps.setdefault((m.header.stamp.sec, m.header.stamp.nanosec),
                                                         time.perf_counter()),
                             10 if reliability == "reliable" else qos_profile_sensor_data)
    publisher = node.create_publisher(PoseStamped, "/world_camera/pose", 10)
    try:
        deadline = time.monotonic() + 120
        while (1, 0) not in stamps and time.monotonic() < deadline:  # wait for start-up and discovery
            publisher.publish(pose(1, 0, 0.0))
            rclpy.spin_once(node, timeout_sec=0.2)
        latencies, lost = [], 0
        for i in range(30):
            key = (2, i)
            first = time.perf_counter()
            while key not in stamps:  # send again if the image does not come back in time
                sent = time.perf_counter()
                publisher.publish(pose(*key, 0.01 * i))
                while key not in stamps and time.perf_counter() - sent < RESEND_S:
                    rclpy.spin_once(node, timeout_sec=0.001)
                lost += key not in stamps
            latencies.append(stamps[key] - first)
        print(f"{width}x{height} {reliability}: {lost} poses of 30 sent again (no image within {RESEND_S} s)")
        before = len(stamps)
        start = time.perf_counter()
        i = 0
        while time.perf_counter() - start < 5.0:
            publisher.publish(pose(3, i, 0.005 * i))
            i += 1
            until = start + i * 0.01
            while time.perf_counter() < until:
                rclpy.spin_once(node, timeout_sec=0.001)
        end = time.perf_counter()
        rate = (len(stamps) - before) / (end - start)
        return statistics.median(latencies), rate, lost
    finally:
        node.destroy_node()
        process.terminate()
        process.wait(timeout=20)


def soak(poses: int = 10_000) -> None:
    """The node in this process: ``poses`` hostile poses through its callbacks, then every hostile parameter."""
    import torch
    from lyra_sim_ros.camera_node import WorldCamera
    from lyra_sim_ros.hostile import SPOILERS, hostile_poses
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from lyra_sim import Camera, render

    hostile_parameters = [("background", [math.nan, 0.0, 0.0]), ("background", [0.0, 0.0]), ("backend", "bogus"),
                          ("base_to_camera", [0.0] * 7), ("width", 0), ("width", 100000), ("height", 0),
                          ("fov_deg", 180.0), ("rate_hz", 0.0), ("camera_frame_id", ""), ("jpeg_quality", 0),
                          ("image_qos_depth", 5)]  # fmt: skip
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=230, signal_handler_options=SignalHandlerOptions.NO)
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(DATA / "tabletop_rgb.png", depth=DATA / "tabletop_depth.png",
                               intrinsics=DATA / "tabletop_intrinsics.json")  # fmt: skip
        world_path = save_world(world, Path(tmp) / "world.ply")
        node = WorldCamera(context=context, parameter_overrides=[Parameter("world", value=str(world_path)),
                           Parameter("backend", value="cpu"), Parameter("width", value=160),
                           Parameter("height", value=120)])  # fmt: skip
        messages = list(hostile_poses(poses))
        start = time.perf_counter()
        for message in messages:
            (node.on_pose if isinstance(message, PoseStamped) else node.on_odom)(message)
        seconds = time.perf_counter() - start
        refused = sum(not node.set_parameters([Parameter(n, value=v)])[0].successful for n, v in hostile_parameters)
        rendered = []
        node.image_pub.publish = rendered.append  # capture the next image without a subscriber
        good = np.eye(4)
        node.camera_to_world, node.stamp = good, None
        node.render_and_publish()
        camera = Camera.from_fov(160, 120, 90.0)
        with torch.no_grad():
            expected = render(load_world(world_path), camera, backend="cpu").to_uint8().numpy()  # same background
        got = np.frombuffer(bytes(rendered[0].data), np.uint8).reshape(120, 160, 3)
        counters = dict(node.counters)
        node.destroy_node()
    rclpy.shutdown(context=context)
    failures = {k: v for k, v in counters.items() if k.endswith("failures")}
    print(f"soak: {poses:,} hostile poses in {seconds:.2f} s ({1e6 * seconds / poses:.0f} us each), "
          f"rejected {counters.get('rejected_poses', 0):,}, callback failures {failures}, "
          f"{refused}/{len(hostile_parameters)} hostile parameters refused, good pose after: "
          f"{'identical image' if np.array_equal(got, expected) else 'DIFFERENT IMAGE'}")
    lines = [
        f"Measured {datetime.date.today()} by `python benchmarks/bench_ros.py --soak`: world_camera in this process "
        f"(rclpy, example world of {len(world):,} Gaussians), callbacks called directly.",
        "",
        "| hostile poses (PoseStamped + Odometry) | kinds | time per pose | rejected | callback failures "
        "| hostile parameters refused | good pose after |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        f"| {poses:,} | {len(SPOILERS)} | {1e6 * seconds / poses:.0f} us | {counters.get('rejected_poses', 0):,} "
        f"| {sum(failures.values())} | {refused}/{len(hostile_parameters)} "
        f"| {'identical to lyra_sim.render' if np.array_equal(got, expected) else 'different'} |",
        "",
        "Kinds: x = 1e39 (beyond float32), +-1e300, NaN, +-inf, zero / non-unit / overflowing / subnormal quaternions,",
        "a position just beyond the 1000 km bound. The in-suite test (ros2_ws/src/lyra_sim_ros/test) runs 2,000.",
    ]
    write_section("ROS 2 world_camera, hostile-input soak", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


def main() -> None:
    rclpy.init()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(DATA / "tabletop_rgb.png", depth=DATA / "tabletop_depth.png",
                               intrinsics=DATA / "tabletop_intrinsics.json")
        world_path = save_world(world, Path(tmp) / "world.ply")
        for width, height in ((320, 240), (640, 480)):
            for reliability in ("reliable", "best_effort"):  # A/B interleaved under the same machine load
                latency, rate, lost = measure(world_path, width, height, reliability)
                rows.append((width, height, reliability, latency, rate, lost))
                print(f"{width}x{height} {reliability}: pose-to-image latency {1000 * latency:.1f} ms (median), "
                      f"{rate:.1f} images/s")
    rclpy.shutdown()
    load = os.getloadavg()[0]
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} by "
        "`python benchmarks/bench_ros.py`: world_camera (CPU rasterizer) in its own process, the bundled",
        f"example world ({len(world):,} Gaussians), rclpy (ROS 2 Kilted wheels, Fast DDS) on loopback; "
        f"load average {load:.1f} on {os.cpu_count()} cores during the run.",
        "",
        f"| image | image QoS (subscriber) | pose-to-image latency (median of 30) | images/s (poses at 100 Hz, 5 s) "
        f"| poses sent again (no image within {RESEND_S:g} s) |",
        "| --- | --- | --- | --- | --- |",
    ]
    subscriber = {"reliable": "reliable (default QoS, depth 10)", "best_effort": "best effort (sensor data)"}
    lines += [f"| {w}x{h} | {subscriber[r]} | {1000 * lat:.1f} ms | {rate:.1f} | {lost}/30 |"
              for w, h, r, lat, rate, lost in rows]  # fmt: skip
    lines += ["", "The node's default is reliable keep-last 10 (REP 2003's driver QoS);",
              "`image_reliability:=best_effort` gives the sensor-data profile. The two rows per size ran one after",
              "the other, so compare within a size."]
    write_section("ROS 2 world_camera, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    soak()
    if "--soak" not in sys.argv[1:]:
        main()
