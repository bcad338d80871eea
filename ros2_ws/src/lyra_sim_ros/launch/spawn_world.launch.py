"""Spawn a lyra_sim world and its rendered camera: ros2 launch lyra_sim_ros spawn_world.launch.py world:=/path/w.ply

Every node parameter (lyra_sim_ros.parameters.PARAMETERS) is a launch argument; only the arguments given are
passed, so the node's own defaults (the one table) hold for the rest. ``params_file:=my.yaml`` passes a
parameter file first (config/camera.yaml is a template listing every default); ``pose_topic:=`` and
``odom_topic:=`` remap the node's ~/pose and ~/odom inputs.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node
from lyra_sim_ros.parameters import PARAMETERS, launch_parameters

EXTRA_ARGUMENTS = {
    "params_file": "A ROS parameter YAML file for the node (given arguments override it)",
    "pose_topic": "geometry_msgs/PoseStamped topic with the optical frame's pose (default: ~/pose)",
    "odom_topic": "nav_msgs/Odometry topic of the robot base (default: ~/odom)",
}


def _node(context):
    given = {name: context.launch_configurations.get(name, "") for name in [*PARAMETERS, *EXTRA_ARGUMENTS]}
    parameters = [given["params_file"]] if given["params_file"] else []
    parameters.append(launch_parameters(given))
    remappings = [(f"~/{name}", given[f"{name}_topic"]) for name in ("pose", "odom") if given[f"{name}_topic"]]
    return [Node(package="lyra_sim_ros", executable="world_camera", name="world_camera", output="screen",
                 parameters=parameters, remappings=remappings)]  # fmt: skip


def generate_launch_description():
    declared = [DeclareLaunchArgument(name, default_value="", description=f"{spec.description} "
                                      f"(node default: {spec.default!r})")
                for name, spec in PARAMETERS.items()]  # fmt: skip
    declared += [DeclareLaunchArgument(name, default_value="", description=text)
                 for name, text in EXTRA_ARGUMENTS.items()]  # fmt: skip
    return LaunchDescription([*declared, OpaqueFunction(function=_node)])
