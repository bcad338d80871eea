"""Typed provenance: the generating camera, the alignment and the depth source read back from ``world.info``,
through files, with the same face on static and dynamic worlds."""

import numpy as np
import pytest
import torch

from lyra_sim import Camera, DynamicGaussianWorld, GaussianWorld
from lyra_sim.io import load_world, save_world
from lyra_sim.provenance import Alignment, ProvenanceError

K = [[100.0, 0.0, 40.0], [0.0, 110.0, 30.0], [0.0, 0.0, 1.0]]


def _world(n: int = 5, **info) -> GaussianWorld:
    rng = np.random.default_rng(0)
    means = rng.normal(size=(n, 3)) + np.array([0.0, 0.0, 3.0])
    world = GaussianWorld.from_rgb(means, rng.random((n, 3)), np.full((n, 3), 0.05), np.full(n, 0.9))
    world.info = dict(info)
    return world


def test_generating_camera_of_a_generated_world_survives_every_native_format(tmp_path):
    world = _world(intrinsics=K, image_size=[80, 60], depth_source="given")
    for name in ("w.ply", "w.safetensors"):
        back = load_world(save_world(world, tmp_path / name))
        camera = back.generating_camera
        assert (camera.width, camera.height) == (80, 60)
        assert torch.allclose(camera.K[0], torch.tensor(K)) and torch.equal(camera.world_to_cam[0], torch.eye(4))
        assert back.depth_source == "given"


def test_an_aligned_world_carries_its_camera_pose_and_a_typed_alignment():
    from lyra_sim.align import align_world
    from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

    world, _ = camera_view(surfels_world(room_surfaces()))
    world.info = {"intrinsics": K, "image_size": [80, 60]}
    aligned = align_world(world, scale=1.0)
    alignment = aligned.alignment
    assert isinstance(alignment, Alignment) and alignment.scale_source == "given"
    camera = aligned.generating_camera
    # The camera's centre is where the alignment put the generating camera's origin.
    centre = torch.linalg.inv(camera.world_to_cam[0].double())[:3, 3].numpy()
    assert np.allclose(centre, alignment.transform[:3, :3] @ np.zeros(3) + alignment.transform[:3, 3], atol=1e-5)
    assert np.allclose(centre, alignment.camera_to_world[:3, 3], atol=1e-5)  # the camera pose is float32
    assert world.alignment is None


@pytest.mark.parametrize("info, field", [
    ({"intrinsics": K, "image_size": [0, 60]}, "image_size"),
    ({"intrinsics": K, "image_size": 80}, "image_size"),
    ({"intrinsics": K, "image_size": ["80", "60"]}, "image_size"),
    ({"intrinsics": K, "image_size": [10**9, 60]}, "image_size"),
    ({"intrinsics": [[1, 2], [3, 4]], "image_size": [80, 60]}, "intrinsics"),
    ({"intrinsics": [[0, 0, 1], [0, 0, 1], [0, 0, 1]], "image_size": [80, 60]}, "intrinsics"),
    ({"intrinsics": K, "image_size": [80, 60], "alignment": {"transform": "abc"}}, "alignment"),
])
def test_malformed_recorded_provenance_is_an_error_that_names_the_field(info, field):
    world = _world(**info)
    with pytest.raises(ProvenanceError, match=field):
        _ = world.generating_camera


def test_static_and_dynamic_worlds_share_one_face():
    static = _world(intrinsics=K, image_size=[80, 60])
    dynamic = DynamicGaussianWorld([0.0, 1.0], [static, _world(7)])
    assert static.times == [0.0] and static.at(5.0) is static and static.keyframes == [static]
    assert dynamic.at(0.9) is dynamic.worlds[1] and dynamic.keyframes == dynamic.worlds
    assert dynamic.info is static.info and dynamic.generating_camera.width == 80
    assert static.map(lambda w: w.subset([0, 1])).num_gaussians == 2
    assert isinstance(static.generating_camera, Camera)
