"""Options of ``make_sim_ready`` / ``lyra-sim simready``, typed once (imports nothing heavy: the parser uses it)."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.options import option, positive_float, positive_int

#: The file axes that may be up.
UP_AXES = ("+x", "-x", "+y", "-y", "+z", "-z")
#: The options that each fix the metric scale; at most one may be given.
SCALE_OPTIONS = ("scale", "camera_height", "known_size")


@dataclass
class SimReadyOptions:
    """How to make a splat file sim-ready (see ``make_sim_ready``)."""

    scale: float | None = option(None, "metres per file unit", parse=positive_float)
    camera_height: float | None = option(
        None, "metres between floor and the generating camera (Lyra files: first camera at the origin)",
        parse=positive_float)
    known_size: float | None = option(
        None, "metres: the real length of the scene's longest horizontal side (2-98 percent of its splats)",
        parse=positive_float)
    up: str | None = option(None, "file axis that is up (default: the file's convention, else found from the floor)",
                            choices=list(UP_AXES))
    drop_floaters: bool = option(False, "also remove floaters from the world (they are always kept out of the "
                                 "collider)")
    voxel_size: float | None = option(None, "collider voxel size in metres (default: from the scene's size)",
                                      cli=False)
    triangle_budget: int = option(30_000, "collider triangle budget", flag="--triangles", parse=positive_int)
    progress: bool = option(True, "show progress bars", cli=False)
