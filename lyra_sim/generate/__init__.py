"""Make a world from whatever the user gives: one image or RGB-D frame, a capture folder, or many at once.

The generators themselves live by job: ``single_view`` (one RGB-D frame, weightless), ``capture``
(many RGB-D frames fused), ``lyra`` (the Lyra decoder on teacher latents); ``inputs`` loads what users give.
"""

from lyra_sim.generate.api import generate_world
from lyra_sim.single_view.completion import CompletionOptions, tint_completed

__all__ = ["CompletionOptions", "generate_world", "tint_completed"]
