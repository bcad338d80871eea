import json

import numpy as np
import pytest
import torch
from conftest import random_world

from lyra_sim import Camera, DynamicGaussianWorld
from lyra_sim.camera import DEFAULT_FOV_DEG, CameraError
from lyra_sim.views.media import path_time, render_path
from lyra_sim.views.paths import camera_path, render_intrinsics, scene_depth, world_camera_path


def _world_with_camera():
    world = random_world(n=40)
    world.info.update(intrinsics=[[200.0, 0.0, 160.0], [0.0, 210.0, 120.0], [0.0, 0.0, 1.0]], image_size=[320, 240])
    return world


def test_render_intrinsics_rescale_the_generating_camera():
    K = render_intrinsics(_world_with_camera(), 160, 60)
    expected = torch.tensor([[100.0, 0.0, 80.0], [0.0, 52.5, 30.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(K, expected)


def test_render_intrinsics_fall_back_to_a_field_of_view():
    K = render_intrinsics(random_world(n=10), 200, 100)  # no generating camera recorded
    assert K[0, 0] == pytest.approx(100 / np.tan(np.radians(DEFAULT_FOV_DEG) / 2))
    K = render_intrinsics(_world_with_camera(), 200, 100, fov=90.0)  # an explicit fov wins
    assert K[0, 0] == pytest.approx(100.0) and K[0, 2] == pytest.approx(100.0)


def test_scene_depth_is_the_median_depth_in_front():
    world = random_world(n=5)
    world.means = torch.tensor([[0, 0, 1.0], [0, 0, 2.0], [0, 0, 4.0], [0, 0, -3.0], [0, 0, -9.0]])
    assert scene_depth(world) == pytest.approx(2.0)  # points behind the camera do not count
    world.means[:, 2] = -1.0
    assert scene_depth(world) == 1.0


def test_paths_start_at_the_input_camera_and_scale_with_depth():
    K = Camera.intrinsics_from_fov(64, 48, 60.0)
    for spec in ("fly", "lyra:0", "lyra:5"):
        near, far = (camera_path(spec, K, 64, 48, 9, depth) for depth in (1.0, 3.0))
        assert len(near) == 9
        assert torch.allclose(near.position[0], torch.zeros(3), atol=1e-5), spec
        assert torch.allclose(far.position, 3.0 * near.position, atol=1e-4), spec
    left = camera_path("lyra:0", K, 64, 48, 9, 2.0).position
    assert left[-1, 0] < -0.4 and abs(float(left[-1, 1])) < 1e-6  # trajectory 0 moves left (-x)


def test_json_camera_file_and_bad_specs(tmp_path):
    K = Camera.intrinsics_from_fov(64, 48, 60.0)
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 0, 3] = [0.0, 0.5, 1.0]
    path = tmp_path / "cams.json"
    path.write_text(json.dumps({"K": K.tolist(), "world_to_cam": poses.tolist(), "width": 32, "height": 24}))
    cams = camera_path(str(path), K, 64, 48, 99, 1.0)
    assert len(cams) == 3 and cams.width == 32 and cams.height == 24
    assert torch.allclose(cams.position[:, 0].double(), torch.tensor([0.0, -0.5, -1.0]).double())
    for spec in ("lyra:6", "lyra:x", "circle", str(tmp_path / "missing.json")):
        with pytest.raises(CameraError, match="--path"):
            camera_path(spec, K, 64, 48, 4, 1.0)
    path.write_text(json.dumps({"K": K.tolist()}))
    with pytest.raises(CameraError, match="world_to_cam"):
        camera_path(str(path), K, 64, 48, 4, 1.0)


def test_world_camera_path_uses_the_worlds_camera_and_depth():
    world = _world_with_camera()
    cams = world_camera_path(world, "lyra:1", 160, 120, 5)
    assert torch.allclose(cams.K[0], render_intrinsics(world, 160, 120))
    expected = camera_path("lyra:1", render_intrinsics(world, 160, 120), 160, 120, 5, scene_depth(world))
    assert torch.allclose(cams.world_to_cam, expected.world_to_cam)


def test_render_path_plays_a_dynamic_world_over_the_path(tmp_path):
    static, moved = random_world(n=30, seed=1), random_world(n=30, seed=1)
    moved.means = moved.means + torch.tensor([0.8, 0.0, 0.0])
    world = DynamicGaussianWorld([0.0, 2.0], [static, moved])
    assert [path_time(world, i, 5) for i in range(5)] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert path_time(static, 3, 5) is None
    cams = Camera.stack([Camera.from_fov(40, 30, 60.0)] * 3)
    written = render_path(world, cams, tmp_path / "r", mp4=False, depth_frames=True, background=(0, 0, 0))
    assert len(written["frames"]) == 3 and "mp4" not in written
    assert sorted(p.name for p in (tmp_path / "r").glob("depth_*.png")) == [f"depth_{i:04d}.png" for i in range(3)]
    from PIL import Image

    first, last = (np.asarray(Image.open(written["frames"][i])).astype(float) for i in (0, 2))
    columns = np.arange(40)
    centre = [float((img.sum(axis=(0, 2)) * columns).sum() / img.sum()) for img in (first, last)]
    assert centre[1] > centre[0] + 2  # the last frame shows the keyframe moved to +x (right on screen)
