"""lyra_sim: one image or video in, a Gaussian-splat world a robot can live in out.

``import lyra_sim`` registers the gymnasium environment and nothing heavier: the names below and the rooms
(``lyra_sim.align``, ``lyra_sim.physics``, ``lyra_sim.single_view``, ...) load on first use, so
``lyra-sim --help`` and a plain import stay fast.
"""

from typing import TYPE_CHECKING

import lyra_sim.envs  # noqa: F401  (registers LyraSim/Navigate-v0 with gymnasium; imports gymnasium only)
from lyra_sim._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "Camera": "camera",
    "DynamicGaussianWorld": "world",
    "GaussianWorld": "world",
    "RenderResult": "rendering",
    "generate_world": "generate",
    "load_world": "io",
    "make_env": "envs",
    "render": "rendering",
    "save_world": "io",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.camera import Camera
    from lyra_sim.envs import make_env
    from lyra_sim.generate import generate_world
    from lyra_sim.io import load_world, save_world
    from lyra_sim.rendering import RenderResult, render
    from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

__all__ = [
    "Camera",
    "DynamicGaussianWorld",
    "GaussianWorld",
    "RenderResult",
    "__version__",
    "generate_world",
    "load_world",
    "make_env",
    "render",
    "save_world",
]
