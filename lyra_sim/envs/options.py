"""Options of ``prepare_scene`` (how a source becomes a simulated scene), typed once.

``make_env`` and ``NavigateEnv`` route these names to ``prepare_scene`` (``scene_options``); everything else
configures the env itself.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from lyra_sim.defaults import COLLIDER_TRIANGLE_BUDGET
from lyra_sim.options import option


@dataclass
class SceneOptions:
    """How a source is generated, aligned and given colliders for the robot; see ``prepare_scene``."""

    scale: float | None = option(None, "metres per world unit (default: metric depth as it is, else camera_height)")
    camera_height: float | None = option(None, "the capture camera's height above the floor in metres, for scale")
    voxel_size: float | None = option(None, "collider voxel size in metres (default: chosen from the scene's size)")
    triangle_budget: int = option(COLLIDER_TRIANGLE_BUDGET, "most triangles in the collision proxy")
    robot_scale: float = option(1.0, "robot size and speeds relative to the default robot")
    depth_model: object = option(None, "depth model (folder, Hugging Face id or loaded) for images without depth")
    progress: bool = option(False, "show progress bars while the scene is prepared")
    depth_scale: float | None = option(None, "units per metre of a depth file (16-bit PNGs: millimetres)")
    generate_options: dict | None = option(None, "keyword arguments of generate_world (fov_deg, max_pixels, ...)")
    score_start_views: bool = option(True, "render candidate robot views once, so episodes start where the world "
                                     "was observed")

SCENE_OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(SceneOptions))


def scene_kwargs(scene_options: SceneOptions | dict | None) -> dict:
    """``prepare_scene`` keyword arguments from a ``SceneOptions``, a dict of its field names, or None."""
    if scene_options is None:
        return {}
    if isinstance(scene_options, SceneOptions):
        return dataclasses.asdict(scene_options)
    unknown = set(scene_options) - SCENE_OPTION_NAMES
    if unknown:
        raise TypeError(f"scene_options: unknown option(s) {sorted(unknown)}; expected {sorted(SCENE_OPTION_NAMES)}")
    return dict(scene_options)
