"""NavigateVectorEnv (one process, batched camera render) and AsyncVectorEnv with gymnasium's default fork."""

import functools
import os
import signal

import gymnasium
import numba
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import lyra_sim
from lyra_sim.envs import ENV_ID, prepare_scene
from lyra_sim.envs.navigate import ActionError
from lyra_sim.envs.vector import NavigateVectorEnv
from lyra_sim.synthetic.gaussian_rooms import camera_view, room_surfaces, surfels_world

SMALL = {"image_size": (40, 30), "max_episode_steps": 6}


@pytest.fixture(scope="module")
def room_scene():
    view, _ = camera_view(surfels_world(room_surfaces(), spacing=0.05))
    return prepare_scene(view)


@pytest.mark.parametrize(("render_group", "mode", "camera_lod", "camera_period"), [
    (None, AutoresetMode.NEXT_STEP, None, 1), (2, AutoresetMode.NEXT_STEP, None, 1),
    (1, AutoresetMode.NEXT_STEP, None, 1),  # one camera per batch: batches taken back from the worker and split
    (2, AutoresetMode.SAME_STEP, None, 1),
    (None, AutoresetMode.NEXT_STEP, 8.0, 1),  # coarse enough to change this small room's 40x30 pictures
    (None, AutoresetMode.NEXT_STEP, None, 4),  # camera refreshed every 4th step (and at every reset)
])
def test_vector_env_equals_sync_vector_env_of_single_envs(room_scene, render_group, mode, camera_lod, camera_period):
    """Same seeds and actions: identical observations, rewards, autoresets (max_episode_steps=6 truncates) and, in
    same-step mode, final observations, whether the cameras render in one batch after the physics or in groups
    of 2 on the worker during it, with a level of detail, and with a camera refresh period."""
    make = functools.partial(gymnasium.make, ENV_ID, source=room_scene, camera_lod=camera_lod,
                             camera_period=camera_period, **SMALL)
    sync = gymnasium.vector.SyncVectorEnv([make] * 3, autoreset_mode=mode)
    batched = lyra_sim.make_env(room_scene, num_envs=3, render_group=render_group, autoreset_mode=mode,
                                camera_lod=camera_lod, camera_period=camera_period, **SMALL)
    assert isinstance(batched, NavigateVectorEnv)
    try:
        obs_a, _ = sync.reset(seed=[5, 6, 7])
        obs_b, _ = batched.reset(seed=[5, 6, 7])
        rng = np.random.default_rng(0)
        saw_reset = False
        for _ in range(9):
            for key in obs_a:
                np.testing.assert_array_equal(obs_a[key], obs_b[key], err_msg=key)
            assert obs_b["rgb"].std() > 5  # real pictures, not the blank placeholders
            actions = rng.uniform(-1, 1, (3, 2)).astype(np.float32)
            *step_a, info_a = sync.step(actions)
            *step_b, info_b = batched.step(actions)
            obs_a, obs_b = step_a[0], step_b[0]
            for a, b in zip(step_a[1:], step_b[1:], strict=True):
                np.testing.assert_array_equal(a, b)
            assert ("final_obs" in info_a) == ("final_obs" in info_b)
            assert ("final_obs" in info_b) == (mode == AutoresetMode.SAME_STEP and bool((step_b[2] | step_b[3]).any()))
            for final_a, final_b in zip(info_a.get("final_obs", []), info_b.get("final_obs", []), strict=True):
                assert (final_a is None) == (final_b is None)
                if final_a is not None:
                    assert final_b["rgb"].std() > 5
                    for key in final_a:
                        np.testing.assert_array_equal(final_a[key], final_b[key], err_msg=f"final_obs {key}")
            saw_reset |= bool(step_b[3].any())
        assert saw_reset  # the autoreset path was exercised
    finally:
        sync.close()
        batched.close()


def test_vector_env_after_a_bad_action_mid_step(room_scene):
    """Robot 1's NaN action raises after robot 0's camera went to the worker: nothing is left rendering, and
    the next step returns the same pictures as an env that never saw the bad action (two vector envs, one
    render worker)."""
    clean = NavigateVectorEnv(room_scene, 2, render_group=1, **SMALL)
    interrupted = NavigateVectorEnv(room_scene, 2, render_group=1, **SMALL)
    try:
        clean.reset(seed=3)
        interrupted.reset(seed=3)
        with pytest.raises(ActionError):
            interrupted.step(np.array([[0.0, 0.0], [np.nan, 0.0]], np.float32))
        # Robot 0 moved (a zero action) in one env only: reset it by hand in both. Outside the vector env's own
        # reset and step its camera is not rendered (no render may be left running in the shared worker).
        assert interrupted.envs[0].reset(seed=4)[0]["rgb"].max() == 0
        clean.envs[0].reset(seed=4)
        actions = np.array([[0.5, 0.1], [0.2, -0.3]], np.float32)
        for a, b in zip(clean.step(actions)[:4], interrupted.step(actions)[:4], strict=True):
            if isinstance(a, dict):
                for key in a:
                    np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            else:
                np.testing.assert_array_equal(a, b)
    finally:
        clean.close()
        interrupted.close()
    with pytest.raises(ValueError, match="render_group"):
        NavigateVectorEnv(room_scene, 1, render_group=0, **SMALL)


def test_vector_env_sets_one_thread_pool(room_scene):
    before = numba.get_num_threads()
    env = NavigateVectorEnv(room_scene, 2, threads=1, **SMALL)
    try:
        assert numba.get_num_threads() == 1
        obs, _ = env.reset(seed=0)
        assert obs["rgb"].shape == (2, 30, 40, 3) and obs["depth"].shape == (2, 30, 40, 1)
    finally:
        env.close()
        numba.set_num_threads(before)
    with pytest.raises(ValueError, match="num_envs"):
        NavigateVectorEnv(room_scene, 0)


def test_async_vector_env_with_the_default_fork_context(room_scene):
    """The parent has already rendered with numba's thread pool; forked workers must still render."""
    make = functools.partial(gymnasium.make, ENV_ID, source=room_scene, **SMALL)
    reference = gymnasium.vector.SyncVectorEnv([make, make])
    obs_sync, _ = reference.reset(seed=[1, 2])  # numba's parallel kernels have run in this process
    asynchronous = gymnasium.vector.AsyncVectorEnv([make, make])  # default context: fork on Linux
    try:
        obs_async, _ = asynchronous.reset(seed=[1, 2])
        np.testing.assert_array_equal(obs_sync["rgb"], obs_async["rgb"])
        actions = np.array([[0.5, 0.2], [0.3, -0.4]], dtype=np.float32)
        np.testing.assert_array_equal(reference.step(actions)[0]["depth"], asynchronous.step(actions)[0]["depth"])
    finally:
        reference.close()
        asynchronous.close()


def test_vector_env_in_a_forked_child(room_scene):
    """The render worker thread does not survive fork(): a child process must start its own, not wait forever
    on the parent's."""
    parent = NavigateVectorEnv(room_scene, 2, **SMALL)
    try:
        obs, _ = parent.reset(seed=0)  # the parent's worker exists now
        pid = os.fork()
        if pid == 0:  # the child: exit code 0 = same pictures, 3 = different, killed by SIGALRM = hung
            signal.alarm(60)
            child = NavigateVectorEnv(room_scene, 2, **SMALL)
            os._exit(0 if np.array_equal(child.reset(seed=0)[0]["rgb"], obs["rgb"]) else 3)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        parent.close()


def test_gymnasium_make_vec_builds_the_batched_env_through_the_registered_vector_entry_point(room_scene):
    envs = gymnasium.make_vec(ENV_ID, num_envs=2, source=room_scene, image_size=(40, 30), max_episode_steps=2)
    try:  # no vectorization_mode: gymnasium picks the spec's vector_entry_point
        assert isinstance(envs, NavigateVectorEnv) and envs.num_envs == 2
        envs.reset(seed=[1, 2])
        truncated = [envs.step(np.zeros((2, 2), np.float32))[3] for _ in range(2)]
        assert not truncated[0].any() and truncated[1].all()  # max_episode_steps reaches every robot
        from gymnasium.wrappers import TimeLimit

        from lyra_sim.envs.navigate import NavigateEnv

        assert all(isinstance(env, TimeLimit) for env in envs.envs)  # gymnasium's own limit, one per robot
        assert all(isinstance(robot, NavigateEnv) for robot in envs.robots)
    finally:
        envs.close()
