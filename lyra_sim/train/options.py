"""Options of the self-distillation data engine (``make_dataset``), typed once."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.options import option, positive_int


@dataclass
class DatasetOptions:
    """How many PyBullet scenes go through the 3D-cache teacher, and at what size; see ``make_dataset``."""

    num_scenes: int = option(16, "number of scenes", flag="--scenes", parse=positive_int)
    held_out: int = option(2, "scenes kept for evaluation")
    width: int = option(64, "image width in pixels", parse=positive_int)
    height: int = option(48, "image height in pixels", parse=positive_int)
    frames: int = option(9, "frames per trajectory (1 + 8k)", parse=positive_int)
    seed: int = option(0, "random seed of the scenes")
    workers: int = option(1, "parallel workers on a local Ray (lyra-sim[scale]); the shards are the same",
                          parse=positive_int)
    ray_address: str | None = option(None, "run on this existing Ray cluster instead (e.g. ray://head:10001)")
