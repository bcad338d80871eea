import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lyra_sim import GaussianWorld
from lyra_sim.demo import EXAMPLE_DEPTH, EXAMPLE_DIR, EXAMPLE_INTRINSICS, EXAMPLE_RGB, example_paths

# Tests never download: huggingface_hub (read when first imported) and transformers stay offline. Tests of the
# download paths point the Hub at 127.0.0.1 and patch huggingface_hub.constants themselves.
os.environ["HF_HUB_OFFLINE"] = "1"


def random_world(
    n: int = 60, sh_degree: int = 0, seed: int = 0, depth: float = 3.0, spread: float = 0.6
) -> GaussianWorld:
    """A small random world in front of the identity camera."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * spread + torch.tensor([0.0, 0.0, depth])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.12 + 0.02
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    sh = torch.randn(n, (sh_degree + 1) ** 2, 3, generator=g) * 0.5
    return GaussianWorld(means, quats, scales, opacities, sh)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def small_example(root: Path, size: tuple[int, int] = (80, 60), rgb_resample=Image.NEAREST) -> tuple[Path, Path, Path]:
    """The bundled example shrunk to ``size`` (depth nearest-neighbour, intrinsics scaled) in ``root``, under its
    own file names (so ``lyra-sim demo --example-dir root`` reads it); returns (rgb, depth, intrinsics) paths."""
    root.mkdir(parents=True, exist_ok=True)
    rgb, depth, intrinsics = example_paths(root)
    Image.open(EXAMPLE_DIR / EXAMPLE_RGB).resize(size, rgb_resample).save(rgb)
    Image.open(EXAMPLE_DIR / EXAMPLE_DEPTH).resize(size, Image.NEAREST).save(depth)
    intr = json.loads((EXAMPLE_DIR / EXAMPLE_INTRINSICS).read_text())
    sx, sy = size[0] / intr["width"], size[1] / intr["height"]
    intr.update(fx=intr["fx"] * sx, fy=intr["fy"] * sy, cx=intr["cx"] * sx, cy=intr["cy"] * sy, width=size[0],
                height=size[1])
    intrinsics.write_text(json.dumps(intr))
    return rgb, depth, intrinsics
