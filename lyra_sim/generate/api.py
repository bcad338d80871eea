"""``generate_world``: one entry point for a single image / RGB-D frame and for an RGB-D sequence."""

from __future__ import annotations

import os

from lyra_sim.capture.options import CaptureOptions
from lyra_sim.inputs.sequence import RGBDSequence, is_sequence_dir
from lyra_sim.options import as_kwargs
from lyra_sim.single_view import lift
from lyra_sim.single_view.options import SingleViewOptions
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld


def generate_world(image, depth=None, intrinsics=None, options: SingleViewOptions | CaptureOptions | None = None,
                   **overrides) -> GaussianWorld | DynamicGaussianWorld:
    """A world from one image (+ depth), or from an RGB-D sequence.

    ``image`` is an image (path, PIL image or array), or an ``RGBDSequence`` or a sequence folder (TUM RGB-D or
    ``rgb/`` + ``depth/`` layout). ``options`` is a ``SingleViewOptions`` for an image and a ``CaptureOptions``
    for a sequence (their fields document every setting); keyword arguments of the same names override single
    fields (``generate_world("a.png", depth="d.png", depth_scale=5000)``). A sequence gives one fused world, or a
    ``DynamicGaussianWorld`` when part of the scene moves.
    """
    sequence = isinstance(image, RGBDSequence) or (isinstance(image, (str, os.PathLike)) and is_sequence_dir(image))
    kind = CaptureOptions if sequence else SingleViewOptions
    if options is not None and not isinstance(options, kind):
        raise lift.InputError(f"{image}: options must be a {kind.__name__} for this input, got "
                              f"{type(options).__name__}")
    settings = {**(as_kwargs(options) if options is not None else {}), **overrides}
    if sequence:
        if depth is not None:
            raise lift.InputError(f"{image}: a sequence folder brings its own depth; do not pass depth")
        from lyra_sim.capture.pipeline import generate_world_from_sequence  # loads open3d and cv2: only when used

        return generate_world_from_sequence(image, intrinsics=intrinsics, **settings)
    return lift.generate_world(image, depth=depth, intrinsics=intrinsics, **settings)
