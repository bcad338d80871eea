"""Options of ``lyra-sim demo`` (``run_demo``), typed once."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.defaults import EXAMPLE_DIR
from lyra_sim.options import option, positive_int


@dataclass
class DemoOptions:
    """Where the demo writes, how long its fly-through and robot episode are, and which example it runs on."""

    frames: int = option(36, "fly-through frames", parse=positive_int)
    steps: int = option(60, "steps of the scripted robot episode (6 s of simulated time)", parse=positive_int)
    example_dir: str = option(str(EXAMPLE_DIR), "folder with the tabletop_* example files")
