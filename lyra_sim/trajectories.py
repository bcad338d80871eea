"""Camera paths: Lyra's six self-distillation trajectories and simple fly-throughs.

All paths start at the identity camera (the input view, OpenCV frame) and keep looking at a
point straight ahead, as GEN3C's trajectory generator does.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lyra_sim.camera import Camera, look_at_matrix
from lyra_sim.lyra.options import LYRA_VIEW_ORDER

# index -> (name, default distance = midpoint of the paper's range, range); Lyra, arXiv 2509.19296
LYRA_TRAJECTORIES: dict[int, tuple[str, float, tuple[float, float]]] = {
    0: ("left", 0.25, (0.2, 0.3)),
    1: ("right", 0.25, (0.2, 0.3)),
    2: ("up", 0.15, (0.1, 0.2)),
    3: ("zoom_out", 0.35, (0.3, 0.4)),
    4: ("zoom_in", 0.35, (0.3, 0.4)),
    5: ("spiral", 0.5, (0.4, 0.6)),
}


def lyra_trajectory_positions(index: int, num_frames: int = 121, distance: float | None = None) -> np.ndarray:
    """Camera centres (num_frames, 3) of trajectory ``index`` at scene scale 1 (OpenCV axes).

    Linear moves advance ``i * d / num_frames`` per frame; the spiral turns clockwise on screen
    twice with radii 0.15 d (x) and 0.10 d (y), its radius growing linearly from zero so that
    every trajectory starts at the input camera.
    """
    if index not in LYRA_TRAJECTORIES:
        raise ValueError(f"index: Lyra trajectories are 0..5, got {index}")
    name, default, _ = LYRA_TRAJECTORIES[index]
    d = default if distance is None else float(distance)
    i = np.arange(num_frames, dtype=np.float64)
    step = i * d / num_frames
    pos = np.zeros((num_frames, 3))
    if name == "left":
        pos[:, 0] = -step
    elif name == "right":
        pos[:, 0] = step
    elif name == "up":
        pos[:, 1] = -step  # OpenCV y points down
    elif name == "zoom_out":
        pos[:, 2] = -step
    elif name == "zoom_in":
        pos[:, 2] = step
    else:
        frac = i / max(num_frames - 1, 1)
        theta = 2 * 2 * math.pi * frac  # two turns; increasing angle is clockwise with y down
        pos[:, 0] = 0.15 * d * frac * np.sin(theta)
        pos[:, 1] = -0.10 * d * frac * np.cos(theta)
    return pos


def lyra_trajectories(
    K,
    width: int,
    height: int,
    num_frames: int = 121,
    distances: dict[int, float] | None = None,
    scene_scale: float = 1.0,
    order: tuple[int, ...] = LYRA_VIEW_ORDER,
) -> list[Camera]:
    """Lyra's camera paths in ``order`` (default 5, 0, 1, 2, 3, 4), each a batch of num_frames cameras.

    ``scene_scale`` scales the moves and the look-at depth (1 at scale 1), e.g. to the median
    scene depth as GEN3C does.
    """
    distances = distances or {}
    paths = []
    target = np.array([0.0, 0.0, 1.0]) * scene_scale
    for index in order:
        eyes = lyra_trajectory_positions(index, num_frames, distances.get(index)) * scene_scale
        targets = np.broadcast_to(target, eyes.shape)
        paths.append(Camera(K, look_at_matrix(eyes, targets), width, height))
    return paths


def fly_through(
    K,
    width: int,
    height: int,
    num_frames: int = 48,
    look_at_depth: float = 2.0,
    radius: float = 0.3,
    forward: float = 0.5,
) -> Camera:
    """A gentle demo path: one elliptical loop around the input view while dollying forward."""
    t = torch.linspace(0, 1, num_frames, dtype=torch.float64)
    theta = 2 * math.pi * t
    eyes = torch.stack(
        [radius * torch.sin(theta), -0.5 * radius * (1 - torch.cos(theta)), forward * torch.sin(math.pi * t)],
        dim=-1,
    )
    targets = torch.tensor([0.0, 0.0, look_at_depth], dtype=torch.float64).expand_as(eyes)
    return Camera(K, look_at_matrix(eyes.numpy(), targets.numpy()), width, height)
