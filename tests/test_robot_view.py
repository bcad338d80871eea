"""What the robot sees: start views scored at prepare time, no holes, RL-ready spaces, depth units."""

import copy
import math

import gymnasium
import numpy as np
import pytest
import torch
from PIL import Image

import lyra_sim
from lyra_sim.camera import Camera
from lyra_sim.envs import ENV_ID, prepare_scene
from lyra_sim.envs import navigate as navigate_module
from lyra_sim.envs.room_structure import FLOOR_TOP_M, structure_mask, structure_walls
from lyra_sim.envs.scene import (
    SCORE_FOV_DEG,
    SCORE_IMAGE_SIZE,
    SCORE_LOD,
    ViewScores,
    observed_shares,
    robot_camera_poses,
    score_views,
    view_shares,
)
from lyra_sim.inputs import InputError
from lyra_sim.inputs.images import load_depth
from lyra_sim.physics.bullet import BulletScene
from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world
from lyra_sim.world import first_keyframe

SMALL = {"image_size": (48, 36), "max_episode_steps": 30}


@pytest.fixture(scope="module")
def room_scene():
    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.05))
    return prepare_scene(view)


def test_candidate_cameras_match_pybullets_camera_mount(room_scene):
    """The poses scored at prepare time are those the env's robot camera has after ``set_robot_pose``."""
    rng = np.random.default_rng(0)
    xy, yaws = rng.uniform(0.5, 3.0, (5, 2)), rng.uniform(-math.pi, math.pi, 5)
    poses = robot_camera_poses(room_scene.proxies[0], room_scene.robot_scale, xy, yaws)
    bullet = BulletScene(room_scene.proxies[0], robot_scale=room_scene.robot_scale)
    try:
        for (x, y), yaw, pose in zip(xy, yaws, poses, strict=True):
            bullet.set_robot_pose(float(x), float(y), float(yaw))
            np.testing.assert_allclose(pose, bullet.camera_world_to_cam(), atol=1e-5)
    finally:
        bullet.close()


def test_observed_share_counts_pixels_of_observed_gaussians(room_scene):
    """A room whose left half (y > 0) is flagged observed, seen along its axis: half of what is drawn."""
    world = room_scene.world
    world = world._replace(observed=world.means[:, 1] > 0)
    poses = robot_camera_poses(room_scene.proxies[0], 1.0, np.array([[0.6, 0.0], [0.6, 0.0]]),
                               np.array([0.0, math.pi / 2]))  # along the room; facing the left wall
    K = Camera.intrinsics_from_fov(64, 48, 90.0)
    observed, covered = observed_shares(world, Camera(K.expand(2, 3, 3), torch.from_numpy(poses).float(), 64, 48))
    assert 0.6 < covered[0] <= 1.0 and observed[0] == pytest.approx(covered[0] / 2, abs=0.03)
    assert observed[1] == pytest.approx(covered[1], abs=0.01) and covered[1] > 0.6  # the left wall: all observed


def test_scoring_refines_around_the_best_subsampled_cells(room_scene):
    """The refined cells lie around the best subsampled cells (by observed share, by observed x object share), off
    the subsample, and their rows are their views."""
    world, proxy, free = first_keyframe(room_scene.world), room_scene.proxies[0], room_scene.free_space
    coarse = score_views(world, proxy, free, refine=0)
    fine = score_views(world, proxy, free, refine=1)
    n = len(coarse.cells)
    np.testing.assert_array_equal(fine.cells[:n], coarse.cells)
    extra = fine.cells[n:]
    assert len(extra) > 0 and free.free[extra[:, 0], extra[:, 1]].all()
    spacing = np.abs(coarse.cells[:, None] - coarse.cells[None]).max(-1)
    spacing = spacing[spacing > 0].min()  # the subsample's stride
    best = coarse.cells[[np.argmax(coarse.observed.max(axis=1)),
                         np.argmax((coarse.observed * coarse.objects).max(axis=1))]]  # the two rankings' best
    near = np.abs(extra[:, None] - best[None]).max(-1) <= spacing // 2
    assert near.any(axis=1).all() and near.any(axis=0).all()
    assert not (np.abs(extra[:, None] - coarse.cells[None]).max(-1) == 0).any()
    picks = [0, len(extra) - 1]  # two refined cells rendered on their own, in every heading
    xy = np.repeat(free.origin + (extra[picks] + 0.5) * free.cell, len(fine.yaws), axis=0)
    poses = robot_camera_poses(proxy, 1.0, xy, np.tile(fine.yaws, len(picks)))
    K = Camera.intrinsics_from_fov(*SCORE_IMAGE_SIZE, SCORE_FOV_DEG)
    cameras = Camera(K.expand(len(xy), 3, 3), torch.from_numpy(poses).float(), *SCORE_IMAGE_SIZE)
    observed, _ = observed_shares(world, cameras, lod=SCORE_LOD)
    np.testing.assert_allclose(fine.observed[n + np.array(picks)], observed.reshape(len(picks), -1), atol=1e-6)
    exact, _ = observed_shares(world, cameras)  # the scores' level of detail against the exact render
    assert np.abs(observed - exact).mean() < 0.03 and np.abs(observed - exact).max() < 0.2


def test_starts_follow_the_view_scores(room_scene):
    """With one well-observed view, every episode starts there (heading within its bin); uniform ignores it."""
    scene = copy.copy(room_scene)
    scores = room_scene.view_scores
    observed = np.zeros_like(scores.observed)
    m, k = len(scores.cells) // 2, 3
    observed[m, k] = 0.9
    scene.view_scores = ViewScores(scores.cells, scores.yaws, observed, scores.covered,
                                   np.ones_like(observed), scores.depth)  # every view shows objects
    centre = scene.free_space.cell_centre(tuple(scores.cells[m]))
    bin_width = 2 * math.pi / len(scores.yaws)
    env = gymnasium.make(ENV_ID, source=scene, **SMALL).unwrapped
    uniform = gymnasium.make(ENV_ID, source=scene, start_sampling="uniform", **SMALL).unwrapped
    try:
        for seed in range(4):
            obs, info = env.reset(seed=seed)
            np.testing.assert_allclose(obs["state"][:2], centre, atol=0.02)
            yaw = math.atan2(obs["state"][3], obs["state"][2])
            assert abs(math.remainder(yaw - scores.yaws[k], 2 * math.pi)) <= bin_width / 2 + 1e-3
            assert info["start_view_observed"] == pytest.approx(0.9)
            assert scene.free_space.is_free(info["goal"]) and 0.5 <= info["distance"] <= 2.5
        starts = [tuple(np.round(uniform.reset(seed=s)[0]["state"][:2], 3)) for s in range(4)]
        assert len(set(starts)) > 1 and "start_view_observed" not in uniform.reset(seed=0)[1]
    finally:
        env.close()
        uniform.close()


def test_observation_spaces_are_bounded_images(room_scene):
    """Finite bounds everywhere; uint8 depth is the metres depth in steps of max_depth / 255."""
    metres = gymnasium.make(ENV_ID, source=room_scene, max_depth=4.0, **SMALL).unwrapped
    steps = gymnasium.make(ENV_ID, source=room_scene, max_depth=4.0, depth_format="uint8", **SMALL).unwrapped
    try:
        for env in (metres, steps):
            for space in env.observation_space.spaces.values():
                assert np.isfinite(space.low).all() and np.isfinite(space.high).all()
        image = steps.observation_space["depth"]
        assert image.dtype == np.uint8 and image.shape == (36, 48, 1) and (image.low == 0).all()
        assert (image.high == 255).all()
        obs_m, _ = metres.reset(seed=2)
        obs_u, _ = steps.reset(seed=2)
        for _ in range(3):
            action = np.array([0.6, 0.4])
            obs_m, *_ = metres.step(action)
            obs_u, *_ = steps.step(action)
            assert metres.observation_space.contains(obs_m) and steps.observation_space.contains(obs_u)
        depth = obs_m["depth"]
        assert depth.max() <= 4.0 and (depth > 0).mean() > 0.5
        expected = np.where(depth > 0, np.maximum(np.rint(depth * 255 / 4.0), 1), 0)
        np.testing.assert_array_equal(obs_u["depth"], expected.astype(np.uint8))
    finally:
        metres.close()
        steps.close()


def test_make_env_passes_scene_options_to_prepare_scene(room_scene, monkeypatch):
    """depth_scale and the other prepare_scene options reach it through make_env (no TypeError)."""
    seen = {}

    def fake_prepare(source, intrinsics=None, **options):
        seen.update(options)
        return room_scene

    monkeypatch.setattr(navigate_module, "prepare_scene", fake_prepare)
    env = lyra_sim.make_env("frame.png", depth_scale=5000, generate_options={"max_pixels": 10_000},
                            scene_options={"robot_scale": 1.0}, image_size=(32, 24), start_sampling="uniform")
    try:
        env.reset(seed=0)
        assert seen == {"depth_scale": 5000, "generate_options": {"max_pixels": 10_000}, "robot_scale": 1.0}
    finally:
        env.close()


def _write_depth_png(path, metres: np.ndarray, units_per_metre: float):
    Image.fromarray(np.round(metres * units_per_metre).astype(np.uint16)).save(path)
    return path


def test_tum_scaled_depth_png_asks_for_depth_scale(tmp_path):
    metres = np.full((12, 16), 1.6, np.float32)
    metres[:, 8:] = 2.4
    tum = _write_depth_png(tmp_path / "tum_depth.png", metres, 5000)
    with pytest.raises(InputError, match=r"tum_depth\.png.*--depth-scale.*5000 for TUM"):
        load_depth(tum, metres.shape)
    np.testing.assert_allclose(load_depth(tum, metres.shape, depth_scale=5000), metres, atol=1e-3)
    millimetres = _write_depth_png(tmp_path / "mm_depth.png", metres, 1000)
    np.testing.assert_allclose(load_depth(millimetres, metres.shape), metres, atol=1e-3)
    far = _write_depth_png(tmp_path / "far_depth.png", metres * 3, 1000)  # 4.8-7.2 m: the user says so
    np.testing.assert_allclose(load_depth(far, metres.shape, depth_scale=1000), metres * 3, atol=1e-3)


def test_render_clips_rgb_unless_gradients_flow():
    """An over-bright Gaussian (SH colour 1.5) renders at most 1; with gradients the raw value keeps its slope."""
    from lyra_sim import GaussianWorld, render

    def world(sh):
        return GaussianWorld(means=torch.tensor([[0.0, 0.0, 2.0]]), quats=torch.tensor([[1.0, 0, 0, 0]]),
                             scales=torch.full((1, 3), 0.5), opacities=torch.tensor([0.99]), sh=sh, frame="opencv")

    sh = ((torch.full((1, 3), 1.5) - 0.5) / 0.28209479)[:, None, :]
    camera = Camera.from_fov(16, 12, 60.0)
    with torch.no_grad():
        clipped = render(world(sh), camera, background=(1.0, 1.0, 1.0)).rgb
    assert clipped.max() == 1.0 and clipped.min() >= 0.0
    trainable = sh.clone().requires_grad_(True)
    raw = render(world(trainable), camera, background=(1.0, 1.0, 1.0)).rgb
    assert raw.max() > 1.2
    raw[6, 8].sum().backward()
    assert trainable.grad.abs().sum() > 0


def _box_gaussians(world) -> np.ndarray:
    """(N,) bool: the box's Gaussians in ``room_scene``'s world (surfels_world lays out the room's planes first)."""
    room_only = len(surfels_world(room_surfaces(with_box=False), spacing=0.05).means)
    box = np.zeros(len(world.means), bool)
    box[room_only:] = True
    return box


def test_structure_is_floor_and_walls_not_the_box(room_scene):
    """The box (0.6 m high) is an object; the floor and the four 2 m walls (found by RANSAC: no wall record) are
    structure."""
    world = first_keyframe(room_scene.world)
    structure, box = structure_mask(world), _box_gaussians(world)
    means = world.means.numpy()
    assert not structure[box & (means[:, 2] > FLOOR_TOP_M)].any()
    assert structure[~box].mean() > 0.99  # the room's own surfels (a wall's foot and corners included)
    assert len(structure_walls(world)) == 4


def test_object_share_is_the_box_share_of_the_view(room_scene):
    """From 1 m in front of the box, facing it and facing a bare wall: the object share is the pixel share of the
    box (above the floor) rendered alone (nothing but the floor stands between the camera and the box); the wall
    view has none."""
    world = first_keyframe(room_scene.world)
    box = _box_gaussians(world)
    centre = world.means[box].numpy().mean(axis=0)
    start = centre[:2] + np.array([-1.0, 0.0]) @ _aligned_xy_rotation(world).T  # 1 m back along the room's axis
    towards = math.atan2(*(centre[:2] - start)[::-1])
    poses = robot_camera_poses(room_scene.proxies[0], 1.0, np.array([start, start]),
                               np.array([towards, towards + math.pi / 2]))
    K = Camera.intrinsics_from_fov(64, 48, 90.0)
    cameras = Camera(K.expand(2, 3, 3), torch.from_numpy(poses).float(), 64, 48)
    shares = view_shares(world, cameras)
    above_floor = box & (world.means[:, 2].numpy() >= FLOOR_TOP_M)  # the box's foot is floor
    box_alone = observed_shares(world.subset(torch.from_numpy(above_floor)), cameras)[1]
    # The floor in front, seen at grazing angle from 12 cm, covers a few rows of the box's foot: at most 20 % less.
    assert box_alone[0] > 0.2 and 0.8 * box_alone[0] < shares.objects[0] <= box_alone[0] + 0.01
    assert shares.objects[1] == 0.0 and shares.observed[1] > 0.95


def _aligned_xy_rotation(world) -> np.ndarray:
    """2x2: the room's x, y axes in the aligned world's x, y (the room's +x is the generating camera's heading)."""
    forward = world.alignment.camera_to_world[:2, 2]
    c, s = forward / np.linalg.norm(forward)
    return np.array([[c, -s], [s, c]])


def test_starts_face_the_observed_box_not_the_bare_walls(room_scene):
    """Every view of the room is observed, so the observed share alone cannot choose: the starts must face the box
    (part of it within 40 degrees of the camera's axis, the field of view being 90), from free space."""
    world = first_keyframe(room_scene.world)
    box = world.means[_box_gaussians(world)].numpy()[:, :2]
    env = gymnasium.make(ENV_ID, source=room_scene, **SMALL).unwrapped
    try:
        for seed in range(8):
            obs, _ = env.reset(seed=seed)
            x, y, c, s = obs["state"][:4]
            assert room_scene.free_space.is_free((x, y))
            off = np.remainder(np.arctan2(box[:, 1] - y, box[:, 0] - x) - math.atan2(s, c) + math.pi, 2 * math.pi)
            nearest = np.abs(off - math.pi).min()  # the box Gaussian nearest the view's axis, radians off it
            assert nearest < math.radians(40.0), f"seed {seed}: the box is {math.degrees(nearest):.0f} deg off"
            pose = torch.from_numpy(env.bullet.camera_world_to_cam()).float()
            shares = view_shares(world, Camera(env.camera_K[None], pose[None], *env.image_size))
            # min_objects (0.05) bounds the scored view; the heading's jitter within its yaw bin and the env's image
            # size move the first frame's share a little (0.046 seen), so the frame must show at least half of it.
            assert shares.objects[0] >= 0.025 and shares.observed[0] > 0.9
    finally:
        env.close()
