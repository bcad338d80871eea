"""world_camera over real rclpy on this CPU: images/s and pose-to-image latency at 320x240 and 640x480.

    python benchmarks/bench_ros.py            # writes its section of benchmarks/RESULTS.md

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

import rclpy
from geometry_msgs.msg import PoseStamped
from rclpy.qos import qos_profile_sensor_data
from results import write_section
from sensor_msgs.msg import Image

from lyra_sim import generate_world, save_world
from lyra_sim.demo import EXAMPLE_DIR

DATA = EXAMPLE_DIR
PACKAGE = Path(__file__).resolve().parent.parent / "ros2_ws" / "src" / "lyra_sim_ros"


def pose(sec: int, nanosec: int, yaw: float) -> PoseStamped:
    message = PoseStamped()
    message.header.stamp.sec, message.header.stamp.nanosec = sec, nanosec
    message.pose.orientation.w, message.pose.orientation.y = math.cos(yaw / 2), math.sin(yaw / 2)
    return message


def measure(world_path: Path, width: int, height: int) -> tuple[float, float, int]:
    command = [sys.executable, "-m", "lyra_sim_ros.world_camera", "--ros-args", "-p", f"world:={world_path}",
               "-p", f"width:={width}", "-p", f"height:={height}", "-p", "rate_hz:=1.0", "-p", "backend:=cpu"]
    env = {**os.environ, "PYTHONPATH": f"{PACKAGE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node("bench_client")
    stamps: dict[tuple[int, int], float] = {}
    node.create_subscription(Image, "/world_camera/image_raw",
                             lambda m: stamps.setdefault((m.header.stamp.sec, m.header.stamp.nanosec),
                                                         time.perf_counter()), qos_profile_sensor_data)
    publisher = node.create_publisher(PoseStamped, "/world_camera/pose", 10)
    try:
        deadline = time.monotonic() + 120
        while (1, 0) not in stamps and time.monotonic() < deadline:  # wait for start-up and discovery
            publisher.publish(pose(1, 0, 0.0))
            rclpy.spin_once(node, timeout_sec=0.2)
        latencies, lost = [], 0
        for i in range(30):
            key = (2, i)
            while key not in stamps:  # best-effort sensor QoS may drop an image: re-send after 1 s
                sent = time.perf_counter()
                publisher.publish(pose(*key, 0.01 * i))
                while key not in stamps and time.perf_counter() - sent < 1.0:
                    rclpy.spin_once(node, timeout_sec=0.001)
                lost += key not in stamps
            latencies.append(stamps[key] - sent)
        print(f"{width}x{height}: {lost} of 30 closed-loop images were lost and re-requested")
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


def main() -> None:
    rclpy.init()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        world = generate_world(DATA / "tabletop_rgb.png", depth=DATA / "tabletop_depth.png",
                               intrinsics=DATA / "tabletop_intrinsics.json")
        world_path = save_world(world, Path(tmp) / "world.ply")
        for width, height in ((320, 240), (640, 480)):
            latency, rate, lost = measure(world_path, width, height)
            rows.append((width, height, latency, rate, lost))
            print(f"{width}x{height}: pose-to-image latency {1000 * latency:.1f} ms (median), {rate:.1f} images/s")
    rclpy.shutdown()
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()} by "
        "`python benchmarks/bench_ros.py`: world_camera (CPU rasterizer) in its own process, the bundled",
        f"example world ({len(world):,} Gaussians), rclpy (ROS 2 Kilted wheels, Fast DDS) on loopback.",
        "",
        "| image | pose-to-image latency (median of 30) | images/s (poses at 100 Hz, 5 s) | lost in closed loop |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {w}x{h} | {1000 * lat:.1f} ms | {rate:.1f} | {lost}/30 |" for w, h, lat, rate, lost in rows]
    lines += ["", "Images go out with sensor-data QoS (best effort): large ones can be dropped by Fast DDS on the",
              "way (the closed loop re-requests after 1 s and says how often it had to)."]
    write_section("ROS 2 world_camera, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
