"""The bundled tabletop RGB-D example (shipped in ``lyra_sim/data``, so the demo runs from an installed wheel)."""

from __future__ import annotations

import os
from pathlib import Path

from lyra_sim.defaults import EXAMPLE_DIR

EXAMPLE_RGB, EXAMPLE_DEPTH, EXAMPLE_INTRINSICS = "tabletop_rgb.png", "tabletop_depth.png", "tabletop_intrinsics.json"

__all__ = ["EXAMPLE_DEPTH", "EXAMPLE_DIR", "EXAMPLE_INTRINSICS", "EXAMPLE_RGB", "example_paths"]


def example_paths(example_dir: str | os.PathLike = EXAMPLE_DIR) -> tuple[Path, Path, Path]:
    """(rgb, depth, intrinsics) files of the tabletop example in ``example_dir``."""
    data = Path(example_dir)
    return data / EXAMPLE_RGB, data / EXAMPLE_DEPTH, data / EXAMPLE_INTRINSICS
