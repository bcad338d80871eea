"""LyraSim/Navigate-v0: gymnasium conformance, reproducibility, collisions, vector envs, sources."""

import functools
import inspect

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import lyra_sim
from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import ENV_ID, prepare_scene
from lyra_sim.envs.navigate import NavigateEnv
from lyra_sim.inputs import InputError
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
from lyra_sim.io import save_world
from lyra_sim.synthetic.gaussian_rooms import ROOM_X, camera_view, room_surfaces, surfels_world

EXAMPLE = EXAMPLE_DIR
SMALL = {"image_size": (48, 36), "max_episode_steps": 30}


@pytest.fixture(scope="module")
def room_scene():
    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.05))
    return prepare_scene(view)


@pytest.fixture(scope="module")
def example_rgbd():
    rgb = load_rgb(EXAMPLE / "tabletop_rgb.png")
    depth = load_depth(EXAMPLE / "tabletop_depth.png", rgb.shape[:2])
    K = load_intrinsics(EXAMPLE / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
    return rgb, depth, K


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    for action in actions:
        obs, reward, terminated, truncated, _ = env.step(action)
        trace.append((obs, reward, terminated, truncated))
        if terminated or truncated:
            break
    return trace


def test_check_env_on_the_bundled_rgbd_example(example_rgbd):
    rgb, depth, K = example_rgbd
    env = lyra_sim.make_env((rgb, depth), intrinsics=K, **SMALL)
    try:
        check_env(env.unwrapped, skip_render_check=False)
        obs, _ = env.reset(seed=0)
        assert obs["rgb"].dtype == np.uint8 and obs["rgb"].shape == (36, 48, 3)
        assert obs["depth"].shape == (36, 48, 1) and (obs["depth"] >= 0).all()
        assert (obs["depth"] > 0).mean() > 0.2  # the robot camera sees Gaussians (single view: not all around)
        frame = env.render()
        assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8
        # The proxy came from the input depth plus rendered views; its floor is at z = 0.
        scene = env.unwrapped.scene
        assert scene.proxies[0].floor_z == 0.0 and scene.proxies[0].info["views"] == 49  # 6 x 4 + 24 + 1 measured
    finally:
        env.close()


def test_same_seed_same_episode(room_scene):
    actions = [np.array([0.8, 0.3]), np.array([0.5, -0.6]), np.array([1.0, 0.0])] * 4
    env_a = gymnasium.make(ENV_ID, source=room_scene, **SMALL)
    env_b = gymnasium.make(ENV_ID, source=room_scene, **SMALL)
    try:
        first, second, again = rollout(env_a, 7, actions), rollout(env_b, 7, actions), rollout(env_a, 7, actions)
        other = rollout(env_b, 8, actions)
        for trace in (second, again):
            assert len(trace) == len(first)
            for step_a, step_b in zip(first[1:], trace[1:], strict=True):
                for key in ("rgb", "depth", "state", "goal"):
                    np.testing.assert_array_equal(step_a[0][key], step_b[0][key])
                assert step_a[1:] == step_b[1:]
        assert not np.array_equal(first[0]["state"], other[0]["state"])
    finally:
        env_a.close()
        env_b.close()


def test_starts_and_goals_lie_in_free_space(room_scene):
    env = gymnasium.make(ENV_ID, source=room_scene, **SMALL)
    try:
        for seed in range(5):
            obs, info = env.reset(seed=seed)
            assert room_scene.free_space.is_free(obs["state"][:2])
            assert room_scene.free_space.is_free(info["goal"])
            assert 0.5 <= info["distance"] <= 2.5
    finally:
        env.close()


def test_driving_into_a_wall_terminates_with_a_penalty(room_scene):
    env = gymnasium.make(ENV_ID, source=room_scene, image_size=(32, 24), max_episode_steps=200).unwrapped
    try:
        env.reset(seed=0)
        wall_x = ROOM_X[1] - 0.3
        env.bullet.set_robot_pose(wall_x - 0.7, -1.0, 0.0)  # beside the box, facing the far wall
        env._distance = float(np.linalg.norm(env.goal - env.bullet.robot_state()[:2]))
        for _ in range(60):
            _, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0]))
            if terminated:
                break
        assert terminated and info["collision"] and not truncated
        assert reward < -4.0
        assert env.bullet.robot_state()[0] < wall_x
    finally:
        env.close()


def test_step_limit_truncates(room_scene):
    env = gymnasium.make(ENV_ID, source=room_scene, image_size=(32, 24), max_episode_steps=3)
    try:
        env.reset(seed=1)
        results = [env.step(np.zeros(2)) for _ in range(3)]
        assert [r[3] for r in results] == [False, False, True]
        assert not any(r[2] for r in results)
        assert all(r[1] == pytest.approx(-0.01, abs=0.02) for r in results)  # standing still: about the step cost
    finally:
        env.close()


def test_sync_and_async_vector_envs(room_scene):
    make = functools.partial(gymnasium.make, ENV_ID, source=room_scene, image_size=(32, 24), max_episode_steps=10)
    sync = gymnasium.vector.SyncVectorEnv([make, make])
    asynchronous = gymnasium.vector.AsyncVectorEnv([make, make], context="spawn")
    try:
        obs_sync, _ = sync.reset(seed=[3, 4])
        obs_async, _ = asynchronous.reset(seed=[3, 4])
        np.testing.assert_array_equal(obs_sync["rgb"], obs_async["rgb"])
        actions = np.array([[0.5, 0.2], [0.3, -0.4]], dtype=np.float32)
        step_sync, step_async = sync.step(actions), asynchronous.step(actions)
        np.testing.assert_array_equal(step_sync[0]["state"], step_async[0]["state"])
        np.testing.assert_array_equal(step_sync[1], step_async[1])
        assert step_sync[0]["rgb"].shape == (2, 24, 32, 3)
    finally:
        sync.close()
        asynchronous.close()


def test_sources_image_and_world_file(tmp_path, room_scene):
    env = lyra_sim.make_env(str(EXAMPLE / "tabletop_rgb.png"), **SMALL)  # no depth: the floor prior
    try:
        obs, _ = env.reset(seed=0)
        assert obs["rgb"].shape == (36, 48, 3)
    finally:
        env.close()
    path = save_world(room_scene.world, tmp_path / "room.ply")
    env = lyra_sim.make_env(str(path), **SMALL)
    try:
        env.reset(seed=0)
        assert env.unwrapped.scene.world.info["alignment"]["camera_height_m"] > 0
    finally:
        env.close()


def test_bad_source_is_named():
    with pytest.raises(InputError, match=r"nothing\.png"):
        lyra_sim.make_env("nothing.png")


def test_non_finite_action_is_refused_and_the_env_keeps_working(room_scene):
    from lyra_sim.envs.navigate import ActionError

    env = gymnasium.make(ENV_ID, source=room_scene, image_size=(32, 24), max_episode_steps=20).unwrapped
    try:
        env.reset(seed=0)
        before = env.bullet.robot_state()
        for bad in ([np.nan, 0.0], [0.0, np.inf], [1.0, 2.0, 3.0]):
            with pytest.raises(ActionError, match="action"):
                env.step(np.array(bad))
        assert env.bullet.robot_state() == pytest.approx(before)  # nothing moved
        obs, reward, *_ = env.step(np.array([0.5, 0.0]))
        assert np.isfinite(obs["state"]).all() and np.isfinite(reward)
    finally:
        env.close()


def test_stepping_a_finished_episode_needs_a_reset(room_scene):
    from gymnasium.error import ResetNeeded

    env = gymnasium.make(ENV_ID, source=room_scene, image_size=(32, 24)).unwrapped
    try:
        with pytest.raises(ResetNeeded):
            env.step(np.zeros(2))
        env.reset(seed=1)
        env.step(np.zeros(2))
        env.goal_radius = 1e6  # every position is at the goal: the next step terminates
        *_, terminated, _, info = env.step(np.zeros(2))
        assert terminated and info["success"]
        with pytest.raises(ResetNeeded, match="ended"):
            env.step(np.zeros(2))  # no more reward after the episode ended
        env.reset(seed=1)
        env.step(np.zeros(2))
    finally:
        env.close()


def test_step_limit_is_gymnasiums_time_limit_only(room_scene):
    """One truncation mechanism: gymnasium's TimeLimit (200 steps at registration); the env never truncates."""
    from gymnasium.wrappers import TimeLimit

    assert gymnasium.spec(ENV_ID).max_episode_steps == 200
    env = gymnasium.make(ENV_ID, source=room_scene, image_size=(32, 24), max_episode_steps=2)
    try:
        assert env.spec.max_episode_steps == 2 and _wraps(env, TimeLimit)
        assert "max_steps" not in inspect.signature(NavigateEnv).parameters
        env.reset(seed=1)
        assert [env.step(np.zeros(2))[3] for _ in range(2)] == [False, True]
        bare = env.unwrapped
        bare.reset(seed=1)
        assert not any(bare.step(np.zeros(2))[3] for _ in range(3))  # no second, hidden limit underneath
    finally:
        env.close()
    unlimited = lyra_sim.make_env(room_scene, image_size=(32, 24), max_episode_steps=None)
    try:
        assert not _wraps(unlimited, TimeLimit)
    finally:
        unlimited.close()


def _wraps(env, wrapper_type) -> bool:
    """Whether ``wrapper_type`` is among the wrappers around ``env``'s core."""
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, wrapper_type):
            return True
        env = env.env
    return False


def test_camera_period_repeats_the_last_images_between_refreshes(room_scene):
    """camera_period=3: the images are the reset's at steps 1-2 and new at step 3, where they equal what an env
    refreshing every step sees after the same seed and actions; the robot state changes every step."""
    every = gymnasium.make(ENV_ID, source=room_scene, **SMALL)
    third = gymnasium.make(ENV_ID, source=room_scene, camera_period=3, **SMALL)
    try:
        actions = [np.array([0.8, 0.6])] * 4
        trace_every, trace_third = rollout(every, 4, actions), rollout(third, 4, actions)
        assert len(trace_every) == len(trace_third) == 5
        frames = [trace_every[0]] + [step[0] for step in trace_every[1:]]
        seen = [trace_third[0]] + [step[0] for step in trace_third[1:]]
        for t, expected in ((0, 0), (1, 0), (2, 0), (3, 3), (4, 3)):
            for key in ("rgb", "depth"):
                np.testing.assert_array_equal(seen[t][key], frames[expected][key], err_msg=f"step {t} {key}")
            np.testing.assert_array_equal(seen[t]["state"], frames[t]["state"])
        assert not np.array_equal(frames[1]["rgb"], frames[0]["rgb"])  # the robot moved: a refresh would differ
        with pytest.raises(ValueError, match="camera_period"):
            gymnasium.make(ENV_ID, source=room_scene, camera_period=0, **SMALL)
    finally:
        every.close()
        third.close()


def test_an_image_with_bad_intrinsics_is_one_error_naming_them_before_any_world_is_made(tmp_path):
    from lyra_sim.inputs import InputError

    bad = tmp_path / "K.json"
    bad.write_text('{"fx": -5, "fy": 100, "cx": 10, "cy": 10}')
    with pytest.raises(InputError, match=r"intrinsics.*K\.json.*focal"):
        lyra_sim.make_env(str(EXAMPLE / "tabletop_rgb.png"), intrinsics=str(bad), **SMALL)
