"""The oneDNN inference path of nn.Linear against the module itself."""

import copy

import pytest
import torch
from torch import nn

from lyra_sim.lyra import cpu_linear


@pytest.mark.parametrize("bias", [True, False])
def test_inference_linear_equals_module(bias):
    torch.manual_seed(0)
    layer = nn.Linear(96, 40, bias=bias)
    x = torch.randn(2, 70, 128)[..., 16:112]  # a strided slice, like the projections' inputs
    expected = layer(x).detach()
    with torch.inference_mode():
        torch.testing.assert_close(cpu_linear.linear(layer, x), expected, atol=1e-5, rtol=1e-5)
    double = copy.deepcopy(layer).double()  # not float32: the module's own path
    with torch.no_grad():
        torch.testing.assert_close(cpu_linear.linear(double, x.double()), double(x.double()), atol=0, rtol=0)


def test_training_keeps_the_module_and_its_gradients():
    layer = nn.Linear(8, 4)
    out = cpu_linear.linear(layer, torch.randn(3, 8))
    out.sum().backward()
    assert layer.weight.grad is not None and out.grad_fn is not None
