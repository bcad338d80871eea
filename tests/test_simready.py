"""``lyra-sim simready``: a Lyra-1 PLY, a Y-down INRIA-trainer PLY and an SPZ, each made from the same analytic
room (floor at z = 0, walls 2 m high, a 0.6 m box) in the frame and scale its tool would use, go to a levelled
metric world, a validator-clean USD stage with a collider, a collider GLB another library reads, a scene.json
that make_env and load_world take, and a contact sheet, in one command each."""

import json
import math

import numpy as np
import plyfile
import pytest
import torch

from lyra_sim.cli import main
from lyra_sim.io import load_world, save_world
from lyra_sim.io.ply import world_to_ply_array
from lyra_sim.splat_import import SimReadyError, SimReadyOptions, make_sim_ready
from lyra_sim.splat_import.gravity import find_up
from lyra_sim.synthetic.gaussian_rooms import (
    BOX_MAX,
    CAMERA_EYE,
    ROOM_X,
    ROOM_Z,
    camera_view,
    room_surfaces,
    surfels_world,
)
from lyra_sim.world import OPENCV_TO_Z_UP

SPACING = 0.08
LYRA_SCALE = 0.37  # file units per metre of the Lyra-1 file (non-metric depth)
INRIA_SCALE = 2.5  # file units per metre of the trainer's file
CAMERA_HEIGHT = float(CAMERA_EYE[2])


def _plain_ply(world, path):
    """A PLY as another tool writes it: no lyra_sim comments."""
    plyfile.PlyData([plyfile.PlyElement.describe(world_to_ply_array(world), "vertex")]).write(str(path))
    return path


@pytest.fixture(scope="module")
def room():
    return surfels_world(room_surfaces(), spacing=SPACING)


@pytest.fixture(scope="module")
def inputs(room, tmp_path_factory):
    root = tmp_path_factory.mktemp("splats")
    lyra, _ = camera_view(room, scale=LYRA_SCALE)  # first camera's OpenCV frame, unknown scale, SH degree 0
    yaw = math.radians(30)
    spin = torch.tensor([[math.cos(yaw), -math.sin(yaw), 0.0], [math.sin(yaw), math.cos(yaw), 0.0], [0.0, 0.0, 1.0]])
    # A COLMAP-like frame: y down, an arbitrary heading and origin, 2.5 units per metre, SH degree 1.
    trainer = room.with_sh_degree(1).transformed(rotation=torch.tensor(OPENCV_TO_Z_UP).T @ spin,
                                                 translation=torch.tensor([5.0, -1.0, 2.0]), scale=INRIA_SCALE)
    marble, _ = camera_view(room)  # metric, but SPZ records no scale
    return {"lyra1": _plain_ply(lyra, root / "lyra1.ply"), "inria": _plain_ply(trainer, root / "point_cloud.ply"),
            "spz": save_world(marble, root / "marble.spz")}


@pytest.fixture(scope="module")
def ready(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("ready")
    options = {"lyra1": SimReadyOptions(progress=False),
               "inria": SimReadyOptions(known_size=ROOM_X[1] - ROOM_X[0], progress=False),
               "spz": SimReadyOptions(progress=False)}
    return {name: make_sim_ready(path, out / name, options[name]) for name, path in inputs.items()}


@pytest.mark.parametrize(("name", "expected_height"), [
    ("lyra1", ROOM_Z * 1.2 / CAMERA_HEIGHT),  # the assumed 1.2 m camera height sets the scale
    ("inria", ROOM_Z),  # --known-size: the room is 4 m long
    ("spz", ROOM_Z * 1.2 / CAMERA_HEIGHT),  # SPZ records no scale: the camera height prior again
])
def test_each_file_becomes_a_level_world_with_its_floor_at_zero(ready, name, expected_height):
    world = load_world(ready[name].outputs["scene"])
    assert world.frame == "z_up" and world.meters_per_unit == 1.0
    z = world.means[:, 2].double()
    floor_share = 0.15  # the floor holds ~27 % of the room's surfels
    assert abs(float(torch.quantile(z, 0.01))) < 0.02 and abs(float(torch.quantile(z, floor_share))) < 0.02
    assert float(torch.quantile(z, 0.995)) == pytest.approx(expected_height, rel=0.05)


def test_the_user_is_told_the_convention_gravity_and_whether_the_scale_is_assumed(ready):
    notes = {name: "\n".join(result.notes) for name, result in ready.items()}
    assert "Lyra-1" in notes["lyra1"] and "SCALE ASSUMED" in notes["lyra1"] and "--camera-height" in notes["lyra1"]
    assert "INRIA" in notes["inria"] and "file axis -y is up" in notes["inria"] and "known size 4 m" in notes["inria"]
    assert not ready["inria"].scale_assumed
    assert "SPZ" in notes["spz"] and ready["spz"].scale_assumed and "--camera-height" in notes["spz"]
    assert "--camera-height" not in notes["inria"]  # no camera is known in a trainer's frame
    for result in ready.values():
        assert set(result.timings) >= {"load", "floaters", "align", "collider", "usd"}


def test_usd_stage_is_validator_clean_and_holds_splats_and_collider(ready):
    from pxr import Usd, UsdGeom, UsdPhysics

    from usd_exporters import validate_stage

    for result in ready.values():
        path = result.outputs["usd"]
        assert validate_stage(path) == []
        stage = Usd.Stage.Open(str(path))
        assert UsdGeom.GetStageUpAxis(stage) == "Z"
        kinds = {prim.GetTypeName() for prim in stage.Traverse()}
        assert "ParticleField3DGaussianSplat" in kinds
        assert any(prim.HasAPI(UsdPhysics.CollisionAPI) for prim in stage.Traverse())


def test_usd_stage_passes_nvidias_validator(ready):
    from test_usd import nvidia_validate

    failures, errors, text = nvidia_validate(ready["inria"].outputs["usd"])
    assert (failures, errors) == (0, 0), text[-2000:]


def test_collider_glb_is_read_by_open3d_in_gltf_axes(ready, room):
    import open3d as o3d

    mesh = o3d.io.read_triangle_mesh(str(ready["inria"].outputs["collider"]))
    vertices = np.asarray(mesh.vertices)
    assert len(mesh.triangles) > 100
    # glTF: +Y up. The room's floor is at y = 0 (the collider's floor is a box of FLOOR_THICKNESS below it) and
    # its walls reach 2 m; it is 4 m long.
    from lyra_sim.physics.proxy import FLOOR_THICKNESS

    assert vertices[:, 1].min() == pytest.approx(-FLOOR_THICKNESS, abs=0.02)
    floor_top = vertices[np.abs(vertices[:, 1]) < 0.02]  # the floor box's top face, at the seen floor
    assert len(floor_top) >= 4
    assert vertices[:, 1].max() == pytest.approx(ROOM_Z, rel=0.08)
    horizontal = np.ptp(vertices[:, [0, 2]], axis=0).max()
    assert horizontal >= 0.95 * (ROOM_X[1] - ROOM_X[0])


def test_scene_json_runs_an_env_and_reuses_the_collider(ready):
    from lyra_sim.envs import make_env, prepare_scene

    scene_path = ready["spz"].outputs["scene"]
    scene = prepare_scene(scene_path)
    data = json.loads(scene_path.read_text())
    assert data["convention"]["name"] == "spz" and data["floaters"]["of"] == len(scene.world)
    proxy = scene.proxies[0]
    assert proxy.floor_z == 0.0 and proxy.obstacle_faces < len(proxy.faces)
    # The camera is at the origin looking along +x; the box's centre is 2.2 m ahead of it in the room, and the
    # assumed 1.2 m camera height (the real one is 1.3 m) scales everything by 1.2 / 1.3.
    s = 1.2 / CAMERA_HEIGHT
    top = proxy.vertices[proxy.faces[: proxy.obstacle_faces]].reshape(-1, 3)
    box = top[(np.abs(top[:, 0] - (2.5 - CAMERA_EYE[0]) * s) < 0.15) & (np.abs(top[:, 1]) < 0.25)]
    assert box[:, 2].max() == pytest.approx(BOX_MAX[2] * s, abs=0.05)  # the collider stands where the box stands
    env = make_env(scene, max_episode_steps=3, image_size=(32, 24))
    obs, _ = env.reset(seed=0)
    assert obs["rgb"].shape == (24, 32, 3) and obs["rgb"].std() > 0
    env.step(env.action_space.sample())
    env.close()


def test_contact_sheet_shows_the_room(ready):
    from PIL import Image

    sheet = np.asarray(Image.open(ready["lyra1"].outputs["contact_sheet"]))
    assert sheet.shape == (4 * 120, 5 * 160, 3)
    assert (sheet.reshape(-1, 3).std(axis=0) > 20).all()  # floor, walls and box in view, not a blank image


def test_gravity_search_finds_any_up_axis(room):
    for axis, rotation in (("+x", [[0, 0, 1], [0, 1, 0], [-1, 0, 0]]), ("-z", [[1, 0, 0], [0, -1, 0], [0, 0, -1]])):
        turned = room.transformed(rotation=torch.tensor(rotation, dtype=torch.float32))
        assert find_up(turned, hint=None).axis == axis


def test_cli_prints_one_line_per_output_and_refuses_bad_options(inputs, tmp_path, capsys):
    assert main(["simready", str(inputs["inria"]), "-o", str(tmp_path / "a"), "--camera-height", "1.5"]) == 2
    err = capsys.readouterr().err
    assert "point_cloud.ply" in err and "--camera-height" in err and not (tmp_path / "a").exists()
    assert main(["simready", str(tmp_path / "missing.ply"), "-o", str(tmp_path / "b")]) == 2
    assert "missing.ply" in capsys.readouterr().err
    with pytest.raises(SimReadyError, match="--up must be one of"):
        make_sim_ready(inputs["lyra1"], tmp_path / "c", SimReadyOptions(up="up"))
    assert main(["simready", str(inputs["lyra1"]), "-o", str(tmp_path / "d"), "--camera-height", "1.3"]) == 0
    out = capsys.readouterr().out
    for name in ("world.usdc", "collider.glb", "scene.json", "contact_sheet.png"):
        assert sum(line.startswith("wrote") and line.endswith(name) for line in out.splitlines()) == 1
    assert "SCALE ASSUMED" not in out and "camera height 1.3 m" in out


def test_conventions_are_recognised_from_what_the_file_says(inputs, room, tmp_path):
    from lyra_sim.splat_import.conventions import recognise

    assert recognise(inputs["lyra1"]).name == "lyra1" and recognise(inputs["inria"]).name == "inria"
    assert recognise(inputs["spz"]).name == "spz"
    lyra2 = inputs["lyra1"].read_bytes()
    (tmp_path / "reconstructed_scene.ply").write_bytes(lyra2)
    assert recognise(tmp_path / "reconstructed_scene.ply").metric
    ours = room.subset(torch.arange(200))
    for name in ("ours.ply", "ours.glb", "ours.sog", "ours.safetensors"):
        assert recognise(save_world(ours, tmp_path / name)).name == "lyra_sim", name
    plain = load_world(tmp_path / "ours.glb")
    plain.info = {}
    assert recognise(_plain_ply(plain.with_sh_degree(1), tmp_path / "other.ply")).name == "inria"
    (tmp_path / "other.gltf").write_text(json.dumps({"asset": {"version": "2.0"}}))
    assert recognise(tmp_path / "other.gltf").name == "gltf"
