"""One RGB-D frame to a complete world, without weights: layers, depth fill, completion (floor, walls, backs)."""

from typing import TYPE_CHECKING

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "DEPTH_MODEL_ENV": "depth_sources",
    "CompletionOptions": "completion",
    "FlatPriorWarning": "depth_sources",
    "SingleViewOptions": "options",
    "estimate_depth": "depth_sources",
    "ground_backdrop_prior": "depth_sources",
    "lift_rgbd": "lift",
    "tint_completed": "completion",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.single_view.completion import CompletionOptions, tint_completed
    from lyra_sim.single_view.depth_sources import (
        DEPTH_MODEL_ENV,
        FlatPriorWarning,
        estimate_depth,
        ground_backdrop_prior,
    )
    from lyra_sim.single_view.lift import lift_rgbd
    from lyra_sim.single_view.options import SingleViewOptions

__all__ = [
    "DEPTH_MODEL_ENV",
    "CompletionOptions",
    "FlatPriorWarning",
    "SingleViewOptions",
    "estimate_depth",
    "ground_backdrop_prior",
    "lift_rgbd",
    "tint_completed",
]
