"""Loading and checking what users give: images, depth maps, intrinsics, RGB-D capture folders."""

from lyra_sim.inputs.images import InputError, load_depth, load_intrinsics, load_rgb
from lyra_sim.inputs.sequence import RGBDSequence, read_sequence

__all__ = ["InputError", "RGBDSequence", "load_depth", "load_intrinsics", "load_rgb", "read_sequence"]
