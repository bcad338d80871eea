import numpy as np
import pytest
import torch

from lyra_sim import GaussianWorld


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
