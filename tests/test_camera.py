import math

import numpy as np
import pytest
import torch

from lyra_sim import Camera
from lyra_sim.camera import CameraError, look_at_matrix, pixel_directions, relative_poses
from lyra_sim.single_view.surfels import unproject_depth
from lyra_sim.trajectories import LYRA_VIEW_ORDER, lyra_trajectories, lyra_trajectory_positions


def project(cam: Camera, point) -> torch.Tensor:
    p = cam.world_to_cam[0] @ torch.tensor([*point, 1.0])
    uvw = cam.K[0] @ p[:3]
    return uvw[:2] / uvw[2]


def test_from_fov_intrinsics():
    cam = Camera.from_fov(640, 480, 90.0)
    assert cam.K[0, 0, 0] == pytest.approx(320.0) and cam.K[0, 1, 1] == pytest.approx(320.0)
    assert cam.K[0, 0, 2] == 320 and cam.K[0, 1, 2] == 240 and not cam.batched


def test_look_at_centres_target_and_keeps_up_up():
    cam = Camera.look_at([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], up=(0, 0, 1), width=100, height=80)
    torch.testing.assert_close(project(cam, [0, 0, 0]), torch.tensor([50.0, 40.0]), atol=1e-4, rtol=0)
    assert project(cam, [0, 0, 0.5])[1] < 40  # a point above the target appears higher (smaller v)
    torch.testing.assert_close(cam.position[0], torch.tensor([1.0, 2.0, 3.0]), atol=1e-5, rtol=0)


def test_batches_index_and_stack():
    cams = Camera.look_at([[0, 0, 0], [1, 0, 0]], [0, 0, 5], width=32, height=24)
    assert len(cams) == 2 and cams.batched and not cams[1].batched
    both = Camera.stack([cams[0], cams[1]])
    assert torch.equal(both.world_to_cam, cams.world_to_cam)
    assert cams.resized(64, 48).K[0, 0, 0] == pytest.approx(2 * float(cams.K[0, 0, 0]))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((torch.eye(3)[:2], torch.eye(4), 4, 4), "K"),
        ((torch.eye(3), torch.full((4, 4), float("nan")), 4, 4), "NaN"),
        ((torch.eye(3), 2 * torch.eye(4), 4, 4), "rigid"),
        ((torch.eye(3), torch.eye(4), 0, 4), "width"),
        ((-torch.eye(3), torch.eye(4), 4, 4), "focal"),
    ],
)
def test_bad_cameras(args, message):
    with pytest.raises(CameraError, match=message):
        Camera(*args)


def test_rays_through_pixel_centres():
    cam = Camera.from_fov(4, 2, 90.0)
    origins, dirs = cam.rays()
    assert origins.shape == (1, 2, 4, 3)
    expected = torch.tensor([-1.5 / 2, -0.5 / 2, 1.0])  # pixel (0,0) centre: ((0.5-2)/2, (0.5-1)/2, 1)
    torch.testing.assert_close(dirs[0, 0, 0], expected / expected.norm())


def test_lyra_trajectories_follow_the_spec():
    K = Camera.intrinsics_from_fov(160, 88, 60)
    paths = lyra_trajectories(K, 160, 88, num_frames=121)
    assert len(paths) == 6 and all(len(p) == 121 for p in paths)
    for path in paths:  # every path starts at the input camera
        torch.testing.assert_close(path.world_to_cam[0], torch.eye(4), atol=1e-6, rtol=0)
    by_index = dict(zip(LYRA_VIEW_ORDER, paths, strict=True))
    left = by_index[0].position
    assert left[-1, 0] == pytest.approx(-120 * 0.25 / 121, rel=1e-5) and left[:, 1:].abs().max() < 1e-6
    assert by_index[2].position[-1, 1] < 0  # "up" is -y in OpenCV
    assert by_index[4].position[-1, 2] > 0 and by_index[3].position[-1, 2] < 0
    for path in paths:  # cameras keep looking at the point at depth 1
        for i in (30, 120):
            torch.testing.assert_close(project(path[i], [0, 0, 1.0]), torch.tensor([80.0, 44.0]), atol=1e-3, rtol=0)


def test_spiral_turns_clockwise_on_screen():
    pos = lyra_trajectory_positions(5, 121)
    angles = np.unwrap(np.arctan2(pos[1:, 1], pos[1:, 0]))
    assert angles[-1] - angles[0] == pytest.approx(2 * 2 * math.pi, abs=0.2)  # +angle with y down = clockwise
    frac = np.arange(121) / 120
    assert np.all(np.abs(pos[:, 0]) <= 0.15 * 0.5 * frac + 1e-12)  # radius_x 0.15 d, growing from zero
    np.testing.assert_allclose(pos[-1], [0.0, -0.10 * 0.5, 0.0], atol=1e-12)  # ends a full turn round at radius_y


def test_pixel_directions_project_back_to_their_pixels():
    K = torch.tensor([[[50.0, 0.0, 20.0], [0.0, 40.0, 11.0], [0.0, 0.0, 1.0]]], dtype=torch.float64)
    dirs = pixel_directions(K, 6, 8)
    assert dirs.shape == (1, 6, 8, 3) and dirs.dtype == torch.float64
    uvw = torch.einsum("ij,hwj->hwi", K[0], dirs[0] * 2.5)  # any depth: the pixel centre comes back
    v, u = torch.meshgrid(torch.arange(6.0) + 0.5, torch.arange(8.0) + 0.5, indexing="ij")
    torch.testing.assert_close(uvw[..., 0] / uvw[..., 2], u.double())
    torch.testing.assert_close(uvw[..., 1] / uvw[..., 2], v.double())
    torch.testing.assert_close(pixel_directions(K[0], 6, 8), dirs[0])  # unbatched K
    points = unproject_depth(np.full((6, 8), 2.0), K[0].numpy())
    np.testing.assert_allclose(points, 2.0 * dirs[0].numpy())


def test_relative_to_first_is_invariant_to_the_world_frame():
    eyes = np.array([[0.0, 0.0, 0.0], [1.0, 0.5, -0.2], [-0.3, 0.2, 0.4]])
    targets = eyes + np.array([0.2, 0.1, 2.0])
    cams = Camera(Camera.intrinsics_from_fov(32, 24, 60.0), look_at_matrix(eyes, targets), 32, 24)
    relative = cams.relative_to_first()
    torch.testing.assert_close(relative.cam_to_world[0].double(), torch.eye(4, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    moved = torch.eye(4)  # the same rig somewhere else in the world: world_to_cam @ inv(move)
    moved[:3, :3] = torch.tensor(euler_rotation((0.4, -0.7, 1.1)), dtype=torch.float32)
    moved[:3, 3] = torch.tensor([3.0, -2.0, 0.5])
    shifted = Camera(cams.K, cams.world_to_cam @ torch.linalg.inv(moved), 32, 24).relative_to_first()
    torch.testing.assert_close(shifted.world_to_cam, relative.world_to_cam, atol=1e-5, rtol=0)
    # the second camera seen from the first: its centre in the first camera's frame
    first_w2c = cams.world_to_cam[0].double()
    expected = (first_w2c @ torch.tensor([*eyes[1], 1.0], dtype=torch.float64))[:3]
    torch.testing.assert_close(relative.position[1].double(), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(relative_poses(cams.cam_to_world), relative.cam_to_world, atol=1e-5, rtol=0)


def euler_rotation(euler):
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler("xyz", euler).as_matrix()
