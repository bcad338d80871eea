"""Gymnasium environments on generated worlds. Importing lyra_sim registers ``LyraSim/Navigate-v0``."""

from __future__ import annotations

import gymnasium

ENV_ID = "LyraSim/Navigate-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(id=ENV_ID, entry_point="lyra_sim.envs.navigate:NavigateEnv")


def make_env(source, intrinsics=None, num_envs: int | None = None, **kwargs) -> gymnasium.Env:
    """A ``LyraSim/Navigate-v0`` environment for ``source``; with ``num_envs=N`` a vector env of N robots.

    ``source``: an image path or array (a world is generated with ``generate_world``), an RGB-D pair
    ``(rgb, depth_metres)`` with ``intrinsics=K``, a world file (.ply, .safetensors, .usd*), a world object,
    or a ``SimScene`` from ``prepare_scene`` (build once, share between vectorised copies).
    Keyword arguments go to ``NavigateEnv`` (image_size, fov_deg, max_steps, scene_options, ...).
    ``num_envs=N`` returns ``lyra_sim.envs.vector.NavigateVectorEnv``: N robots in this process, their
    cameras rendered in one batched call per step (the fast way to run many robots on a CPU).
    """
    if num_envs is not None:
        from lyra_sim.envs.vector import NavigateVectorEnv

        return NavigateVectorEnv(source, num_envs, intrinsics=intrinsics, **kwargs)
    return gymnasium.make(ENV_ID, source=source, intrinsics=intrinsics, **kwargs)


def prepare_scene(*args, **kwargs):
    """See ``lyra_sim.envs.scene.prepare_scene`` (imported lazily: it pulls in pybullet and open3d)."""
    from lyra_sim.envs.scene import prepare_scene as _prepare

    return _prepare(*args, **kwargs)


__all__ = ["ENV_ID", "make_env", "prepare_scene"]
