"""The one parameter table: its checks, config/camera.yaml and the launch file agree with it (no ROS graph)."""

import ast
import math
from pathlib import Path

import pytest
import yaml
from lyra_sim_ros.parameters import PARAMETERS, combined_problem, launch_parameters, problem

PACKAGE = Path(__file__).resolve().parent.parent

HOSTILE = {
    "background": [[math.nan, 0.0, 0.0], [0.0, 0.0], [2.0, 0.0, 0.0], [math.inf, 0.0, 0.0], "red"],
    "backend": ["bogus", "", "CPU"],
    "base_to_camera": [[0.0] * 7, [0.0] * 6, [math.nan, 0, 0, 1, 0, 0, 0], [1e39, 0, 0, 1, 0, 0, 0],
                       [0, 0, 0, 2.0, 0, 0, 0], [0, 0, 0, 1e200, 1e200, 0, 0]],
    "initial_pose": [[0.0, 0.0], [0, 0, 0, 0, 0, 0, 0], [math.nan] * 7],
    "width": [0, 100000, -1, 3.5, "320", True],
    "height": [0, 100000],
    "fov_deg": [0.0, 180.0, math.nan, -10.0, 1e9, "wide"],
    "rate_hz": [0.0, -1.0, math.nan, math.inf, 1e9],
    "camera_frame_id": ["", "   ", "/camera"],
    "world_frame_id": [""],
    "point_cloud_max_points": [-1, 10**12],
    "collision_mesh": ["/nonexistent/mesh.obj"],
    "image_reliability": ["bogus"],
    "image_qos_depth": [0, 100000],
    "compressed_format": ["gif", "JPEG"],
    "jpeg_quality": [0, 101],
    "png_level": [-1, 10],
}  # fmt: skip


def test_every_default_passes_its_own_check():
    for name, spec in PARAMETERS.items():
        assert problem(name, spec.default) is None, name
    assert combined_problem({n: PARAMETERS[n].default for n in ("width", "height")}) is None


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_values_are_refused_with_a_reason(name):
    for value in HOSTILE[name]:
        reason = problem(name, value)
        assert reason and isinstance(reason, str), (name, value)


def test_numbers_may_be_given_as_integers_where_a_double_is_expected():
    assert problem("fov_deg", 90) is None and problem("background", [0, 1, 0]) is None
    assert problem("base_to_camera", [0, 0, 0, 1, 0, 0, 0]) is None


def test_image_size_is_bounded_as_a_whole():
    assert combined_problem({"width": 8192, "height": 8192})
    assert combined_problem({"width": 4096, "height": 4096}) is None


def test_defaults_agree_with_the_library():
    from lyra_sim.rendering import DEFAULT_BACKGROUND

    assert tuple(PARAMETERS["background"].default) == DEFAULT_BACKGROUND


def test_config_yaml_lists_every_parameter_at_its_table_default():
    config = yaml.safe_load((PACKAGE / "config" / "camera.yaml").read_text())["world_camera"]["ros__parameters"]
    assert list(config) == list(PARAMETERS)
    for name, spec in PARAMETERS.items():
        assert config[name] == spec.default, name


def test_launch_passes_only_the_arguments_given_with_the_table_types():
    given = {"world": "/w.ply", "width": "640", "fov_deg": "75", "background": "[0, 0.5, 1]", "image": "",
             "camera_frame_id": "cam", "pose_topic": "/robot/pose"}  # fmt: skip
    parameters = launch_parameters(given)
    assert parameters == {"world": "/w.ply", "width": 640, "fov_deg": 75.0, "background": [0.0, 0.5, 1.0],
                          "camera_frame_id": "cam"}  # fmt: skip
    assert type(parameters["fov_deg"]) is float and type(parameters["width"]) is int
    assert launch_parameters({"world": "123"}) == {"world": "123"}  # strings stay strings
    with pytest.raises(ValueError, match="width"):
        launch_parameters({"width": "wide"})


def test_launch_file_declares_the_table_and_starts_the_installed_executable():
    """ROS's launch is not installable here: check the launch file's structure against the package."""
    tree = ast.parse((PACKAGE / "launch" / "spawn_world.launch.py").read_text())
    imports = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
               and node.module == "lyra_sim_ros.parameters" for alias in node.names}  # fmt: skip
    assert {"PARAMETERS", "launch_parameters"} <= imports
    node_call = next(node for node in ast.walk(tree) if isinstance(node, ast.Call)
                     and getattr(node.func, "id", "") == "Node")  # fmt: skip
    keywords = {k.arg: k.value for k in node_call.keywords}
    assert keywords["package"].value == "lyra_sim_ros" and keywords["executable"].value == "world_camera"
    setup = (PACKAGE / "setup.py").read_text()
    assert "world_camera = {PACKAGE}.world_camera:main" in setup and 'PACKAGE = "lyra_sim_ros"' in setup
    assert "<build_type>ament_python</build_type>" in (PACKAGE / "package.xml").read_text()
    assert (PACKAGE / "resource" / "lyra_sim_ros").exists()
