"""World generation: the embedded RGB-D lift (weightless, CPU) and its depth sources."""

from lyra_sim.generate.depth_sources import DEPTH_MODEL_ENV, estimate_depth, ground_backdrop_prior
from lyra_sim.generate.images import InputError, load_depth, load_intrinsics, load_rgb
from lyra_sim.generate.lift import generate_world, lift_rgbd

__all__ = [
    "DEPTH_MODEL_ENV",
    "InputError",
    "estimate_depth",
    "generate_world",
    "ground_backdrop_prior",
    "lift_rgbd",
    "load_depth",
    "load_intrinsics",
    "load_rgb",
]
