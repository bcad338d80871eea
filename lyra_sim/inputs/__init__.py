"""Loading and checking what users give: images, depth maps, intrinsics, RGB-D capture folders."""

from typing import TYPE_CHECKING

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "InputError": "images",
    "RGBDSequence": "sequence",
    "load_depth": "images",
    "load_intrinsics": "images",
    "load_rgb": "images",
    "read_sequence": "sequence",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

if TYPE_CHECKING:
    from lyra_sim.inputs.images import InputError, load_depth, load_intrinsics, load_rgb
    from lyra_sim.inputs.sequence import RGBDSequence, read_sequence

__all__ = [
    "InputError",
    "RGBDSequence",
    "load_depth",
    "load_intrinsics",
    "load_rgb",
    "read_sequence",
]
