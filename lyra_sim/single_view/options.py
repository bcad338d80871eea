"""Options of the single-view generator (``generate_world`` on one image or RGB-D frame), typed once."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lyra_sim.defaults import (
    DEFAULT_CAMERA_HEIGHT,
    DEFAULT_FOV_DEG,
    DEFAULT_MAX_PIXELS,
    DEPTH_MODEL_ENV,
    EXAMPLE_DEPTH_MODEL,
    PRIOR_PITCH_DEG,
)
from lyra_sim.options import option, positive_float, positive_int

if TYPE_CHECKING:
    from lyra_sim.single_view.completion import CompletionOptions


@dataclass
class SingleViewOptions:
    """How one image (+ depth) becomes a world; see ``lyra_sim.single_view.lift.generate_world``."""

    depth_scale: float | None = option(None, "stored depth units per metre: 1000 for millimetre PNGs (the PNG "
                                       "default), 5000 for TUM RGB-D (the TUM layout's default), 1 for metres "
                                       "(.npy)", parse=positive_float)
    max_pixels: int | None = option(DEFAULT_MAX_PIXELS, "downscale larger images to this many pixels, one Gaussian "
                                    "each (0 or None keeps the full size)")
    fov_deg: float | None = option(None, "horizontal FOV when no intrinsics (degrees; default: the depth model's "
                                   f"own estimate where it makes one, as Depth Pro does, else {DEFAULT_FOV_DEG:g})",
                                   flag="--fov")
    depth_model: str | os.PathLike | None = option(
        None, "depth model for images without --depth: a local transformers directory or a Hugging Face model id "
        "(Depth Anything V2 relative or metric, Depth Pro), downloaded once into the Hugging Face cache (see "
        f"fetch-model); e.g. {EXAMPLE_DEPTH_MODEL}; default: ${DEPTH_MODEL_ENV}")
    stride: int = option(1, "use every n-th pixel", parse=positive_int)
    camera_height: float = option(DEFAULT_CAMERA_HEIGHT, "prior: camera height (m)")
    pitch_deg: float = option(PRIOR_PITCH_DEG, "prior: camera pitch down (degrees)", flag="--pitch")
    opacity: float = option(0.95, "opacity of the lifted surfels", cli=False)
    complete: bool = option(True, "keep only what the camera saw: no invented floor, walls, back layers or object "
                            "backs (completed Gaussians carry observed = False otherwise)")
    completion: CompletionOptions | None = option(None, "settings of the completion (CompletionOptions)", cli=False)
