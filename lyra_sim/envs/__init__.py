"""Gymnasium environments on generated worlds. Importing lyra_sim registers ``LyraSim/Navigate-v0``."""

from __future__ import annotations

import gymnasium

ENV_ID = "LyraSim/Navigate-v0"

DEFAULT_MAX_STEPS = 200  # the step limit gymnasium.make applies (TimeLimit); max_episode_steps=N changes it

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="lyra_sim.envs.navigate:NavigateEnv",
                       vector_entry_point="lyra_sim.envs.vector:vector_entry_point",
                       max_episode_steps=DEFAULT_MAX_STEPS)


def make_env(source, intrinsics=None, max_episode_steps: int | None = DEFAULT_MAX_STEPS, num_envs: int | None = None,
             **kwargs) -> gymnasium.Env:
    """A ``LyraSim/Navigate-v0`` environment for ``source``, truncated after ``max_episode_steps`` steps
    (gymnasium's TimeLimit, the one truncation mechanism; None: never); with
    ``num_envs=N`` a vector env of N robots.

    ``source``: an image path or array (a world is generated with ``generate_world``), an RGB-D pair
    ``(rgb, depth)`` with ``intrinsics=K`` (depth in metres, or a file: ``depth_scale``), a world file (.ply,
    .safetensors, .usd*), a world object, or a ``SimScene`` from ``prepare_scene`` (build once, share between
    vectorised copies).
    Keyword arguments of ``prepare_scene`` (depth_scale,
    generate_options, robot_scale, scale, camera_height, ...) prepare the scene (as in ``scene_options``);
    the others go to ``NavigateEnv`` (image_size, fov_deg, start_sampling, depth_format, ...). ``num_envs=N``
    returns ``lyra_sim.envs.vector.NavigateVectorEnv`` (the same as ``gymnasium.make_vec(ENV_ID, num_envs=N,
    vectorization_mode="vector_entry_point", source=...)``): N robots in this process, their cameras rendered in
    one batched call per step (the fast way to run many robots on a CPU; each robot is truncated after
    ``max_episode_steps`` steps).
    """
    kwargs = _route_scene_options(kwargs)
    if num_envs is not None:  # gymnasium's own vector path: the registered vector_entry_point
        return gymnasium.make_vec(ENV_ID, num_envs=num_envs, vectorization_mode="vector_entry_point", source=source,
                                  intrinsics=intrinsics, max_episode_steps=max_episode_steps, **kwargs)
    no_limit = -1  # gymnasium.make's "no TimeLimit" (None would mean the registered 200)
    return gymnasium.make(ENV_ID, source=source, intrinsics=intrinsics,
                          max_episode_steps=no_limit if max_episode_steps is None else max_episode_steps, **kwargs)


def _route_scene_options(kwargs: dict) -> dict:
    """``kwargs`` with the ``SceneOptions`` names (``prepare_scene``'s keyword arguments) moved into
    ``scene_options``."""
    from lyra_sim.envs.options import SCENE_OPTION_NAMES, scene_kwargs

    scene = {key: kwargs.pop(key) for key in list(kwargs) if key in SCENE_OPTION_NAMES}
    if scene:
        kwargs["scene_options"] = {**scene_kwargs(kwargs.get("scene_options")), **scene}
    return kwargs


def prepare_scene(*args, **kwargs):
    """See ``lyra_sim.envs.scene.prepare_scene`` (imported lazily: it pulls in pybullet and open3d)."""
    from lyra_sim.envs.scene import prepare_scene as _prepare

    return _prepare(*args, **kwargs)


__all__ = ["ENV_ID", "make_env", "prepare_scene"]
