"""lyra_sim: one image or video in, a Gaussian-splat world a robot can live in out."""

from lyra_sim.camera import Camera
from lyra_sim.envs import make_env
from lyra_sim.generate import generate_world
from lyra_sim.io import load_world, save_world
from lyra_sim.rendering import RenderResult, render
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

__version__ = "0.1.0"

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
