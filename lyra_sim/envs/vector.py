"""N Navigate robots in one process, their cameras rendered together: ``make_env(source, num_envs=N)``.

``NavigateVectorEnv`` is gymnasium's ``SyncVectorEnv`` (same batching, autoreset modes, ``reset_mask`` and
infos) over ``NavigateEnv`` copies sharing one prepared scene, except that the robots' camera images of a
step are rendered in ONE call of ``lyra_sim.render`` with all the cameras, which draws one camera per
numba thread. Physics and rewards stay per robot. The process uses one pool of numba threads (``threads``,
default: the CPUs this process may run on), so N robots never oversubscribe the cores the way N
single-threaded-looking AsyncVectorEnv workers, each with its own thread pools, do.
"""

from __future__ import annotations

import os
from functools import partial

import numba
import numpy as np
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from lyra_sim.camera import Camera
from lyra_sim.envs import DEFAULT_MAX_STEPS
from lyra_sim.envs.navigate import NavigateEnv
from lyra_sim.envs.scene import prepare_scene
from lyra_sim.rendering import DEFAULT_BACKGROUND, render


class _DeferredCameraEnv(NavigateEnv):
    """NavigateEnv whose observations leave rgb/depth blank and queue the camera for a batched render."""

    def __init__(self, *args, pending: list, **kwargs):
        super().__init__(*args, **kwargs)
        self._pending = pending

    def _observation(self) -> dict:
        width, height = self.image_size
        obs = {
            "rgb": np.zeros((height, width, 3), np.uint8),
            "depth": np.zeros((height, width, 1), np.float32),
            **self._robot_observation(),
        }
        self._pending.append((self, obs, self._world_now(), self._robot_camera(self.camera_K, self.image_size)))
        return obs


class NavigateVectorEnv(SyncVectorEnv):
    """``num_envs`` Navigate-v0 robots in one scene, stepped in this process with one batched render per step.

    ``source`` and ``intrinsics`` are as for ``make_env`` (the scene is prepared once and shared); each robot
    is truncated after ``max_steps`` steps (None: never); other keyword arguments go to each ``NavigateEnv``.
    ``threads`` sets numba's thread count for the process (default: every CPU it may use).
    """

    def __init__(self, source, num_envs: int, intrinsics=None, threads: int | None = None, copy: bool = True,
                 autoreset_mode: str | AutoresetMode = AutoresetMode.NEXT_STEP,
                 max_steps: int | None = DEFAULT_MAX_STEPS, **kwargs):
        if int(num_envs) != num_envs or num_envs < 1:
            raise ValueError(f"num_envs: expected a positive integer, got {num_envs!r}")
        scene = prepare_scene(source, intrinsics=intrinsics, **(kwargs.pop("scene_options", None) or {}))
        available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        numba.set_num_threads(max(1, min(threads or available, numba.config.NUMBA_NUM_THREADS)))
        self._pending: list = []
        make = partial(_DeferredCameraEnv, scene, pending=self._pending, max_steps=max_steps, **kwargs)
        super().__init__([make] * int(num_envs), copy=copy, autoreset_mode=autoreset_mode)

    def reset(self, *, seed=None, options=None):
        self._pending.clear()
        obs, infos = super().reset(seed=seed, options=options)
        self._render_pending(obs)
        return obs, infos

    def step(self, actions):
        self._pending.clear()
        obs, rewards, terminations, truncations, infos = super().step(actions)
        self._render_pending(obs)
        return obs, rewards, terminations, truncations, infos

    def _render_pending(self, obs: dict) -> None:
        """Render every queued camera (one call per world) and fill the observations that wait for them."""
        by_world: dict[int, list] = {}
        for entry in self._pending:
            by_world.setdefault(id(entry[2]), []).append(entry)
        slot = {id(env): i for i, env in enumerate(self.envs)}
        for entries in by_world.values():
            with torch.no_grad():
                result = render(entries[0][2], Camera.stack([e[3] for e in entries]), background=DEFAULT_BACKGROUND)
            for b, (env, env_obs, _, _) in enumerate(entries):
                images = env._camera_images(type(result)(result.rgb[b], result.depth[b], result.alpha[b]))
                env_obs["rgb"][...] = images["rgb"]  # the env's own dict (final_obs in SAME_STEP mode)
                env_obs["depth"][...] = images["depth"]
                i = slot[id(env)]
                if env_obs is self._env_obs[i]:  # the observation this step returns for robot i
                    obs["rgb"][i] = images["rgb"]
                    obs["depth"][i] = images["depth"]
        self._pending.clear()
