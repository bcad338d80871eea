"""One RGB-D frame to a complete world, without weights: layers, depth fill, completion (floor, walls, backs)."""

from lyra_sim.single_view.completion import CompletionOptions, tint_completed
from lyra_sim.single_view.depth_sources import DEPTH_MODEL_ENV, FlatPriorWarning, estimate_depth, ground_backdrop_prior
from lyra_sim.single_view.lift import lift_rgbd

__all__ = [
    "DEPTH_MODEL_ENV",
    "CompletionOptions",
    "FlatPriorWarning",
    "estimate_depth",
    "ground_backdrop_prior",
    "lift_rgbd",
    "tint_completed",
]
