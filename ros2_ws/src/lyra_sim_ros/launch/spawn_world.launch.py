"""Spawn a lyra_sim world and its rendered camera: ros2 launch lyra_sim_ros spawn_world.launch.py world:=/path/w.ply"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue

ARGUMENTS = {
    "world": ("", "World file (.ply, .safetensors, .usd*) to load"),
    "image": ("", "Image to generate a world from when 'world' is empty"),
    "width": ("320", "Image width in pixels"),
    "height": ("240", "Image height in pixels"),
    "fov_deg": ("90.0", "Horizontal field of view in degrees"),
    "rate_hz": ("10.0", "Publishing rate"),
    "camera_frame_id": ("camera_optical_frame", "Optical frame id of the images"),
    "world_frame_id": ("map", "Frame id of the world"),
    "pose_topic": ("/camera/pose", "geometry_msgs/PoseStamped topic with the camera's optical-frame pose"),
}
TYPES = {"width": int, "height": int, "fov_deg": float, "rate_hz": float}


def generate_launch_description():
    config = os.path.join(get_package_share_directory("lyra_sim_ros"), "config", "camera.yaml")
    declared = [DeclareLaunchArgument(name, default_value=default, description=description)
                for name, (default, description) in ARGUMENTS.items()]
    parameters = {
        name: ParameterValue(LaunchConfiguration(name), value_type=TYPES.get(name, str))
        for name in ARGUMENTS
        if name != "pose_topic"
    }
    node = Node(
        package="lyra_sim_ros",
        executable="world_camera",
        name="world_camera",
        output="screen",
        parameters=[config, parameters],
        remappings=[("~/pose", LaunchConfiguration("pose_topic"))],
    )
    return LaunchDescription([*declared, node])
