"""``generate_world``: one entry point for a single image / RGB-D frame and for an RGB-D sequence."""

from __future__ import annotations

import os

from lyra_sim.inputs.sequence import RGBDSequence, is_sequence_dir
from lyra_sim.single_view import lift
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld


def generate_world(image, depth=None, intrinsics=None, **options) -> GaussianWorld | DynamicGaussianWorld:
    """A world from one image (+ depth), or from an RGB-D sequence.

    ``image`` is an image (path, PIL image or array; see ``lyra_sim.single_view.lift.generate_world``
    for ``depth``, ``intrinsics`` and the single-frame options), or an ``RGBDSequence`` or a
    sequence folder (TUM RGB-D or ``rgb/`` + ``depth/`` layout; options ``poses``, ``depth_scale``,
    ``every``, ``max_frames`` and those of ``lyra_sim.capture.pipeline.reconstruct_sequence``:
    ``voxel_size``, ``sh_degree``, ``dynamic``, ``keyframe_interval``, ...). A sequence gives one
    fused world, or a ``DynamicGaussianWorld`` when part of the scene moves.
    """
    if isinstance(image, RGBDSequence) or (isinstance(image, (str, os.PathLike)) and is_sequence_dir(image)):
        if depth is not None:
            raise lift.InputError(f"{image}: a sequence folder brings its own depth; do not pass depth")
        from lyra_sim.capture.pipeline import generate_world_from_sequence  # loads open3d and cv2: only when used

        return generate_world_from_sequence(image, intrinsics=intrinsics, **options)
    return lift.generate_world(image, depth=depth, intrinsics=intrinsics, **options)
