"""N Navigate robots in one process, their cameras rendered together: ``make_env(source, num_envs=N)``.

``NavigateVectorEnv`` is gymnasium's ``SyncVectorEnv`` (same batching, autoreset modes, ``reset_mask`` and
infos) over ``NavigateEnv`` copies sharing one prepared scene, except that the robots' camera images of a
step are rendered in ONE call of ``lyra_sim.render`` with all the cameras (``RenderQueue``), which draws one
camera per numba thread. Physics and rewards stay per robot. The process uses one pool of numba threads
(``threads``, default: the CPUs this process may run on), so N robots never oversubscribe the cores the way N
single-threaded-looking AsyncVectorEnv workers, each with its own thread pools, do.
"""

from __future__ import annotations

import os
from functools import partial

import gymnasium
import numba
import numpy as np
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit

from lyra_sim.envs import DEFAULT_MAX_STEPS
from lyra_sim.envs.navigate import NavigateEnv
from lyra_sim.envs.options import scene_kwargs
from lyra_sim.envs.render_queue import RenderQueue
from lyra_sim.envs.scene import prepare_scene


class _DeferredCameraEnv(NavigateEnv):
    """NavigateEnv whose observations leave rgb/depth blank and queue the camera in ``render_queue`` (when the
    camera is due: ``camera_period``); the queue's images fill them in, and they are the last images after."""

    render_queue: RenderQueue

    def _observation(self) -> dict:
        if not self._camera_due():
            return {**self._last_images(), **self._robot_observation()}
        width, height = self.image_size
        obs = {
            "rgb": np.zeros((height, width, 3), np.uint8),
            "depth": np.zeros((height, width, 1), self.observation_space["depth"].dtype),
            **self._robot_observation(),
        }
        self._images = {"rgb": obs["rgb"], "depth": obs["depth"]}  # filled in by the vector env's render
        self.render_queue.add((self, obs), self._world_now(), self.bullet.camera_world_to_cam())
        return obs


class NavigateVectorEnv(SyncVectorEnv):
    """``num_envs`` Navigate-v0 robots in one scene, stepped in this process; their cameras render in batches.

    ``source`` and ``intrinsics`` are as for ``make_env`` (the scene is prepared once and shared); each robot
    is truncated after ``max_episode_steps`` steps by gymnasium's ``TimeLimit``, as ``gymnasium.make`` truncates a
    single env (None: never); other keyword arguments go to each ``NavigateEnv``.
    ``threads`` sets numba's thread count (default: every CPU the process may use). ``render_group``: cameras
    per batched render (default None: one render of every robot's camera after all the physics). A smaller
    group renders on a worker thread (one numba thread) while the next robots' physics steps, and what is left
    after the physics is split between both threads (``RenderQueue``): it needs an idle core, and on a busy 2-core
    machine it measured slower than one batch (benchmarks/RESULTS.md, "Navigate-v0 simulation speed").
    """

    def __init__(self, source, num_envs: int, intrinsics=None, threads: int | None = None, copy: bool = True,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_episode_steps: int | None = DEFAULT_MAX_STEPS, render_group: int | None = None, **kwargs):
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs: expected a positive integer, got {num_envs!r}")
        scene = prepare_scene(source, intrinsics=intrinsics, **scene_kwargs(kwargs.pop("scene_options", None)))
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        threads = max(1, min(threads or available, numba.config.NUMBA_NUM_THREADS))
        numba.set_num_threads(threads)
        make = partial(_robot, scene, max_episode_steps, kwargs)
        super().__init__([make] * int(num_envs), copy=copy, autoreset_mode=autoreset_mode)
        first = self.robots[0]
        self._renders = RenderQueue(first.camera_K, first.image_size, render_group, threads, first.camera_lod)
        for robot in self.robots:
            robot.render_queue = self._renders

    @property
    def robots(self) -> list[NavigateEnv]:
        """Each robot's NavigateEnv (``envs`` holds them inside their TimeLimit)."""
        return [env.unwrapped for env in self.envs]

    def reset(self, *, seed=None, options=None):
        return self._with_images(super().reset, seed=seed, options=options)

    def step(self, actions):
        return self._with_images(super().step, actions)

    def _with_images(self, call, *args, **kwargs):
        """Run SyncVectorEnv's reset or step (which queues every robot's camera) and fill in the images."""
        self._renders.begin()
        try:
            result = call(*args, **kwargs)
        except BaseException:
            self._renders.discard()
            raise
        obs = result[0]
        slot = {id(robot): i for i, robot in enumerate(self.robots)}
        for (env, env_obs), rgb, depth in self._renders.finish():
            env_obs["rgb"][...] = rgb  # the env's own dict (final_obs in SAME_STEP mode)
            depth = env.depth_observation(depth)
            env_obs["depth"][...] = depth
            i = slot[id(env)]
            if env_obs is self._env_obs[i]:  # the observation this step returns for robot i
                obs["rgb"][i] = rgb
                obs["depth"][i] = depth
        return result

    def close_extras(self, **kwargs):
        if getattr(self, "_renders", None) is not None:
            self._renders.discard()
        super().close_extras(**kwargs)


def _robot(scene, max_episode_steps: int | None, kwargs: dict) -> gymnasium.Env:
    """One robot of the vector env: its NavigateEnv, in gymnasium's TimeLimit when it has a step limit."""
    env = _DeferredCameraEnv(scene, **kwargs)
    return env if max_episode_steps is None else TimeLimit(env, max_episode_steps)


def vector_entry_point(num_envs: int, **kwargs) -> NavigateVectorEnv:
    """The registered ``vector_entry_point`` of LyraSim/Navigate-v0: ``gymnasium.make_vec(ENV_ID, num_envs=N,
    vectorization_mode="vector_entry_point", source=...)`` builds a ``NavigateVectorEnv``; ``max_episode_steps``
    reaches every robot."""
    return NavigateVectorEnv(num_envs=num_envs, **kwargs)
