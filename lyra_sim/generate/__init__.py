"""Make a world from whatever the user gives: one image or RGB-D frame, a capture folder, or many at once.

The generators themselves live by job: ``single_view`` (one RGB-D frame, weightless), ``capture``
(many RGB-D frames fused), ``lyra`` (the Lyra decoder on teacher latents); ``inputs`` loads what users give.
"""

from typing import TYPE_CHECKING

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "CompletionOptions": "lyra_sim.single_view.completion",
    "generate_world": "api",
    "tint_completed": "lyra_sim.single_view.completion",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.generate.api import generate_world
    from lyra_sim.single_view.completion import CompletionOptions, tint_completed

__all__ = [
    "CompletionOptions",
    "generate_world",
    "tint_completed",
]
