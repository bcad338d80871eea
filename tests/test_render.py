import math

import numpy as np
import pytest
import torch
from conftest import random_world
from reference_render import reference_render

from lyra_sim import Camera, GaussianWorld, render
from lyra_sim.rendering import cpu_kernels
from lyra_sim.rendering.gsplat_backend import gsplat_available
from lyra_sim.rendering.projection import project_ewa
from lyra_sim.world import rgb_to_sh0


def single_gaussian(z=2.0, s=0.05, opacity=0.8, rgb=(0.9, 0.3, 0.1)):
    return GaussianWorld.from_rgb([[0.0, 0.0, z]], [rgb], [[s, s, s]], [opacity])


def test_single_gaussian_matches_hand_computation():
    w = h = 32
    cam = Camera.from_fov(w, h, 60.0)
    f = float(cam.K[0, 0, 0])
    z, s, o, rgb = 2.0, 0.05, 0.8, torch.tensor([0.9, 0.3, 0.1])
    out = render(single_gaussian(z, s, o, tuple(rgb.tolist())), cam, backend="cpu", background=(0, 0, 0))
    var = (f * s / z) ** 2 + 0.3  # projected variance plus gsplat's eps2d blur
    for px, py in [(16, 16), (15, 16), (18, 16), (16, 19), (20, 13)]:
        dx, dy = w / 2 - (px + 0.5), h / 2 - (py + 0.5)
        alpha = o * math.exp(-0.5 * (dx * dx + dy * dy) / var)
        expected = alpha * rgb if alpha >= 1 / 255 else torch.zeros(3)
        torch.testing.assert_close(out.rgb[py, px], expected, atol=1e-5, rtol=1e-5)
        if alpha >= 1 / 255:
            assert out.depth[py, px] == pytest.approx(z, rel=1e-5)
            assert out.alpha[py, px] == pytest.approx(alpha, rel=1e-4)
    # far from the centre nothing is drawn: alpha below 1/255 is skipped
    assert out.alpha[0, 0] == 0 and out.depth[0, 0] == 0


def test_background_fills_uncovered_pixels():
    cam = Camera.from_fov(16, 16, 60.0)
    out = render(single_gaussian(), cam, backend="cpu", background=(0.2, 0.4, 0.6))
    torch.testing.assert_close(out.rgb[0, 0], torch.tensor([0.2, 0.4, 0.6]))
    centre = out.rgb[8, 8]
    a = out.alpha[8, 8]
    assert torch.allclose(
        centre, a * torch.tensor([0.9, 0.3, 0.1]) + (1 - a) * torch.tensor([0.2, 0.4, 0.6]), atol=1e-5
    )


@pytest.mark.parametrize("sh_degree", [0, 1, 3])
def test_cpu_matches_naive_reference(sh_degree):
    world = random_world(n=80, sh_degree=sh_degree, seed=sh_degree)
    cam = Camera.look_at([0.4, -0.2, 0.0], [0.0, 0.0, 3.0], width=40, height=30, fov_deg=70)
    out = render(world, cam, backend="cpu", background=(0.1, 0.2, 0.3))
    rgb, depth, alpha = reference_render(world, cam, background=(0.1, 0.2, 0.3))
    torch.testing.assert_close(out.rgb, rgb, atol=2e-5, rtol=0)
    torch.testing.assert_close(out.alpha, alpha, atol=2e-5, rtol=0)
    mask = alpha > 0.05
    torch.testing.assert_close(out.depth[mask], depth[mask], atol=1e-4, rtol=1e-5)


def test_opaque_stack_stops_at_transmittance_floor():
    # Ten nearly opaque Gaussians at the same pixel: compositing must stop before T <= 1e-4.
    n = 10
    means = torch.tensor([[0.0, 0.0, 2.0 + 0.1 * i] for i in range(n)])
    world = GaussianWorld.from_rgb(means, torch.rand(n, 3), torch.full((n, 3), 1.0), torch.full((n,), 0.97))
    cam = Camera.from_fov(8, 8, 40.0)
    out = render(world, cam, backend="cpu", background=(0, 0, 0))
    rgb, _, _ = reference_render(world, cam)
    torch.testing.assert_close(out.rgb, rgb, atol=1e-5, rtol=0)
    a = [float(render(world.subset([i]), cam, backend="cpu").alpha[4, 4]) for i in range(3)]  # alone
    t2 = (1 - a[0]) * (1 - a[1])
    assert t2 * (1 - a[2]) <= 1e-4 < t2  # so the third Gaussian is where compositing stops
    assert out.alpha[4, 4] == pytest.approx(1 - t2, abs=1e-6)


def test_batched_cameras_equal_single_renders():
    world = random_world(n=50)
    cams = Camera.look_at([[0, 0, 0], [0.3, 0, 0], [0, -0.3, 0.2]], [0, 0, 3.0], width=24, height=20)
    batch = render(world, cams, backend="cpu")
    assert batch.rgb.shape == (3, 20, 24, 3) and batch.depth.shape == (3, 20, 24)
    for i in range(3):
        single = render(world, cams[i], backend="cpu")
        torch.testing.assert_close(batch.rgb[i], single.rgb)


def test_numba_projection_matches_torch_projection():
    world = random_world(n=200, sh_degree=2, seed=3)
    cam = Camera.look_at([0.2, 0.1, -0.5], [0, 0, 3.0], width=64, height=48, fov_deg=80)
    n = len(world)
    packed = np.empty((n, cpu_kernels.PACKED_WIDTH), np.float32)
    depth = np.empty(n, np.float32)
    K = cam.K[0].double()
    cpu_kernels.project_gaussians(
        world.means.numpy(), world.quats.numpy(), world.scales.numpy(), world.opacities.numpy(), world.sh.numpy(),
        cam.world_to_cam[0].double().numpy(), cam.position[0].double().numpy(), float(K[0, 0]), float(K[1, 1]),
        float(K[0, 2]), float(K[1, 2]), 64, 48, 0.3, 0.01, 1e10, packed, depth,
    )  # fmt: skip
    visible = packed[:, cpu_kernels.RX] > 0
    assert visible.sum() > 100
    mean2d, conic, z = project_ewa(world.means, world.quats, world.scales, cam.world_to_cam[0], cam.K[0], 64, 48)
    np.testing.assert_allclose(packed[visible, :2], mean2d[visible].numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(packed[visible, 2:5], conic[visible].numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(depth[visible], z[visible].numpy(), rtol=1e-6)


def test_depth_order_is_a_stable_sort():
    rng = np.random.default_rng(1)
    depth = rng.choice(np.array([0.5, 1.0, 2.5, 7.0], np.float32), size=5000)
    order = cpu_kernels.depth_order(depth)
    np.testing.assert_array_equal(order, np.argsort(depth, kind="stable"))


def test_gradients_match_autograd_through_reference():
    world = random_world(n=25, sh_degree=1, seed=7, spread=0.4)
    cam = Camera.look_at([0.1, 0.0, 0.0], [0, 0, 3.0], width=24, height=20, fov_deg=60)
    weights = torch.rand(20, 24, 3, generator=torch.Generator().manual_seed(0))
    dweights = torch.rand(20, 24, generator=torch.Generator().manual_seed(1))

    def grads(renderer):
        leaves = {
            k: getattr(world, k).clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "sh")
        }
        w = GaussianWorld(**leaves, validate=False)
        for k, v in leaves.items():  # keep the leaves themselves (the constructor normalises quats)
            setattr(w, k, v)
        rgb, depth, alpha = renderer(w)
        loss = (rgb * weights).sum() + (depth * dweights).sum() * 0.1 + alpha.sum()
        loss.backward()
        return {k: v.grad for k, v in leaves.items()}

    ours = grads(
        lambda w: (lambda r: (r.rgb, r.depth, r.alpha))(render(w, cam, backend="cpu", background=(0.3, 0.3, 0.3)))
    )
    ref = grads(lambda w: reference_render(w, cam, background=(0.3, 0.3, 0.3)))
    for key in ours:
        scale = ref[key].abs().max().clamp_min(1e-6)
        err = (ours[key] - ref[key]).abs().max() / scale
        assert err < 2e-3, f"gradient of {key} differs: relative error {err:.2e}"


def test_cpu_training_step_reduces_loss():
    target_world = random_world(n=30, seed=11)
    cam = Camera.from_fov(24, 24, 60.0)
    target = render(target_world, cam, backend="cpu").rgb
    colors = torch.full((30, 1, 3), 0.0, requires_grad=True)
    opt = torch.optim.Adam([colors], lr=0.1)
    losses = []
    for _ in range(15):
        w = GaussianWorld(target_world.means, target_world.quats, target_world.scales, target_world.opacities, colors,
                          validate=False)  # fmt: skip
        loss = ((render(w, cam, backend="cpu").rgb - target) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.2 * losses[0]


def test_render_rejects_bad_arguments():
    world = single_gaussian()
    cam = Camera.from_fov(8, 8, 60)
    with pytest.raises(ValueError, match="backend"):
        render(world, cam, backend="vulkan")
    with pytest.raises(ValueError, match="background"):
        render(world, cam, background=(0, 0))
    with pytest.raises(TypeError, match="camera"):
        render(world, "not a camera")


def test_empty_and_fully_culled_worlds_render_background():
    cam = Camera.from_fov(8, 8, 60)
    behind = GaussianWorld.from_rgb([[0, 0, -1.0]], [[1, 0, 0]], [[0.1] * 3], [0.9])
    out = render(behind, cam, backend="cpu", background=(1, 1, 1))
    assert torch.equal(out.rgb, torch.ones(8, 8, 3)) and out.alpha.max() == 0
    empty = GaussianWorld(torch.zeros(0, 3), torch.zeros(0, 4), torch.zeros(0, 3), torch.zeros(0), torch.zeros(0, 1, 3))
    assert render(empty, cam, backend="cpu").alpha.max() == 0


@pytest.mark.gpu
@pytest.mark.skipif(not gsplat_available(), reason="needs CUDA and gsplat")
def test_cpu_and_gsplat_agree():
    world = random_world(n=3000, sh_degree=3, seed=5, spread=1.0)
    cam = Camera.look_at([0.3, -0.2, -0.5], [0, 0, 3.0], width=160, height=120, fov_deg=70)
    cpu = render(world, cam, backend="cpu", background=(1, 1, 1))
    gpu = render(world.to("cuda"), cam, backend="gsplat", background=(1, 1, 1))
    mse = ((cpu.rgb - gpu.rgb.cpu()) ** 2).mean()
    assert 10 * torch.log10(1 / mse) >= 40


def test_rgb_to_sh0_renders_plain_colour():
    sh = rgb_to_sh0(torch.tensor([[0.25, 0.5, 1.0]]))
    world = GaussianWorld([[0, 0, 1.0]], [[1, 0, 0, 0]], [[0.5] * 3], [0.999], sh)
    out = render(world, Camera.from_fov(4, 4, 10.0), backend="cpu", background=(0, 0, 0))
    torch.testing.assert_close(out.rgb[2, 2] / out.alpha[2, 2], torch.tensor([0.25, 0.5, 1.0]), atol=1e-4, rtol=0)


def test_default_background_is_white_like_the_cli(tmp_path):
    from PIL import Image

    from lyra_sim.cli import main
    from lyra_sim.io import save_world
    from lyra_sim.rendering import DEFAULT_BACKGROUND

    assert DEFAULT_BACKGROUND == (1.0, 1.0, 1.0)
    behind = GaussianWorld.from_rgb([[0, 0, -1.0]], [[1, 0, 0]], [[0.1] * 3], [0.9])
    assert torch.equal(render(behind, Camera.from_fov(8, 8, 60)).rgb, torch.ones(8, 8, 3))
    # `lyra-sim render` of the same world from the same side: white frames too.
    save_world(behind, tmp_path / "w.ply")
    args = ["render", str(tmp_path / "w.ply"), "--frames", "1", "--width", "8", "--height", "8", "--fov", "60",
            "--path", "lyra:0", "--no-mp4", "-o", str(tmp_path / "out")]  # fmt: skip
    assert main(args) == 0
    frame = np.asarray(Image.open(tmp_path / "out" / "frame_0000.png"))
    assert frame.min() == 255


def test_surface_depth_drops_pixels_that_show_no_surface():
    from lyra_sim.rendering import SURFACE_ALPHA, RenderResult

    depth = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    alpha = torch.tensor([[0.9, SURFACE_ALPHA], [SURFACE_ALPHA - 1e-3, 0.0]])
    result = RenderResult(torch.zeros(2, 2, 3), depth, alpha)
    torch.testing.assert_close(result.surface_depth(), torch.tensor([[1.0, 2.0], [0.0, 0.0]]))
    torch.testing.assert_close(result.surface_depth(min_alpha=0.95), torch.zeros(2, 2))
