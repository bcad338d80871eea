"""Options of decoding a GEN3C teacher folder with the Lyra decoder (``decode_teacher_dir``), typed once."""

from __future__ import annotations

from dataclasses import dataclass

from lyra_sim.options import option

LYRA_VIEW_ORDER = (5, 0, 1, 2, 3, 4)  # the order Lyra fuses its six trajectories in


def int_tuple(text: str) -> tuple[int, ...]:
    """argparse type: comma-separated integers ("5,0,1")."""
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from exc


def float_tuple(text: str) -> tuple[float, ...]:
    """argparse type: comma-separated numbers ("0,60,120")."""
    try:
        return tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError as exc:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from exc


@dataclass
class DecodeOptions:
    """How teacher latents become Gaussians; see ``lyra_sim.lyra.pipeline.decode_teacher_dir``."""

    views: tuple[int, ...] = option(LYRA_VIEW_ORDER, "trajectories to fuse, in order", parse=int_tuple)
    prune: float = option(0.8, "fraction of Gaussians dropped by opacity")
    device: str = option("auto", "auto, cpu, cuda, cuda:1, ...")
    dynamic: bool = option(False, "dynamic model: one keyframe per target time")
    times: tuple[float, ...] | None = option(None, "dynamic target frames, e.g. 0,60,120 (default: first, middle, "
                                             "last)", parse=float_tuple)
    fps: float = option(24.0, "frames per second of the teacher videos (Cosmos / GEN3C)", cli=False)
    name: str | None = option(None, "scene name when the folder holds several")
