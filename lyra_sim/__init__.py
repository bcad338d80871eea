"""lyra_sim: one image or video in, a Gaussian-splat world a robot can live in out.

The functions below are imported eagerly; the subpackages (``lyra_sim.align``, ``lyra_sim.physics``,
``lyra_sim.train``, ...) load on first attribute access, so ``import lyra_sim`` stays as fast as it was.
"""

import importlib
import importlib.util
import pkgutil

from lyra_sim.camera import Camera
from lyra_sim.envs import make_env
from lyra_sim.generate import generate_world
from lyra_sim.io import load_world, save_world
from lyra_sim.rendering import RenderResult, render
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

__version__ = "0.1.0"


def __getattr__(name: str):
    """Submodules as attributes after a plain ``import lyra_sim`` (``lyra_sim.physics...``), imported on first use."""
    if not name.startswith("_") and importlib.util.find_spec(f"{__name__}.{name}") is not None:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {module.name for module in pkgutil.iter_modules(__path__)})


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
