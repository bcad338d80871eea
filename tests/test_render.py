import itertools
import math

import numpy as np
import pytest
import torch
from conftest import random_world
from previous_cpu_renderer import render_previous
from reference_render import reference_render

from lyra_sim import Camera, GaussianWorld, render
from lyra_sim.rendering import cpu as cpu_backend
from lyra_sim.rendering import cpu_kernels
from lyra_sim.rendering import index as scene_index_module
from lyra_sim.rendering.gsplat_backend import gsplat_available
from lyra_sim.rendering.index import SceneIndex, build_index
from lyra_sim.rendering.projection import project_ewa
from lyra_sim.sh import eval_sh_colors
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
    torch.testing.assert_close(out.rgb, rgb.clamp(0, 1), atol=2e-5, rtol=0)  # render() clips rgb to [0, 1]
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


@pytest.mark.parametrize("batch_cameras", [8, 2])  # 2: the batch goes in parts of 2 and 1 cameras
def test_batched_cameras_equal_single_renders(monkeypatch, batch_cameras):
    monkeypatch.setattr(cpu_backend, "BATCH_CAMERAS", batch_cameras)
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
    index = build_index(world, chunk_size=32)
    n = len(index.ids)
    chunks = np.arange(index.num_chunks)
    rows = np.empty((n, cpu_kernels.PACKED_WIDTH), np.float32)
    depth, slots, counts = np.empty(n, np.float32), np.empty(n, np.int64), np.empty(len(chunks), np.int64)
    tile_rows = np.empty((n, 2), np.int32)
    K = cam.K[0].double()
    cpu_kernels.project_chunks(
        index.geometry, index.sh, index.chunk_starts, chunks, np.zeros(len(chunks), np.int64), index.chunk_starts[:-1],
        0, len(chunks), cam.world_to_cam.double().numpy(),
        cam.position.double().numpy(), np.array([[K[0, 0], K[1, 1], K[0, 2], K[1, 2]]]), 64, 48, 16, 0.3, 0.01, 1e10,
        rows, depth, slots, tile_rows, counts,
    )
    visible = np.concatenate([np.arange(s, s + c) for s, c in zip(index.chunk_starts[:-1], counts, strict=True)])
    assert len(visible) > 100
    ids = torch.from_numpy(index.ids[slots[visible]].astype(np.int64))
    mean2d, conic, z = project_ewa(world.means, world.quats, world.scales, cam.world_to_cam[0], cam.K[0], 64, 48)
    np.testing.assert_allclose(rows[visible, :2], mean2d[ids].numpy(), rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(rows[visible, 2:5], conic[ids].numpy(), rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(depth[visible], z[ids].numpy(), rtol=1e-6)
    colors = eval_sh_colors(world.sh[ids], world.means[ids] - cam.position[0])
    np.testing.assert_allclose(rows[visible, cpu_kernels.COL : cpu_kernels.COL + 3], colors.numpy(), atol=1e-5)
    top, radius = rows[visible, cpu_kernels.MY], rows[visible, cpu_kernels.RY]  # tile rows 16 pixels high
    np.testing.assert_array_equal(tile_rows[visible, 0], np.maximum(np.floor((top - radius) / 16), 0))
    np.testing.assert_array_equal(tile_rows[visible, 1], np.ceil((top + radius) / 16))


def test_depth_sort_orders_by_depth_then_world_index():
    rng = np.random.default_rng(1)
    depth = rng.choice(np.array([0.5, 1.0, 2.5, 7.0], np.float32), size=5000)
    depth = np.concatenate([depth, rng.uniform(0.1, 50.0, 3000).astype(np.float32)])
    world_ids = rng.permutation(len(depth)).astype(np.int32)  # the index's order is not the world's
    cand_offsets = np.array([0, 1000, 4000, 6000], np.int64)  # three regions, partly filled
    counts = np.array([700, 3000, 2000], np.int64)
    slots = np.arange(len(depth), dtype=np.int64)
    order = cpu_kernels.depth_sort(depth, cand_offsets, counts, world_ids, slots)
    candidates = np.concatenate([np.arange(o, o + c) for o, c in zip(cand_offsets, counts, strict=False)])
    expected = candidates[np.lexsort((world_ids[candidates], depth[candidates]))]
    np.testing.assert_array_equal(order, expected)


def frustum_world(n: int, cam: Camera, seed: int = 0, sh_degree: int = 0) -> GaussianWorld:
    """n Gaussians spread over the camera's view between 1 and 8 units deep, plus some outside it."""
    g = torch.Generator().manual_seed(seed)
    K = cam.K[0]
    z = torch.rand(n, generator=g) * 7 + 1
    u = torch.rand(n, generator=g) * cam.width * 1.6 - 0.3 * cam.width
    v = torch.rand(n, generator=g) * cam.height * 1.6 - 0.3 * cam.height
    means = torch.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)
    means = torch.cat([means, means[: n // 4] * torch.tensor([1.0, 1.0, -1.0])])  # behind the camera
    m = len(means)
    scales = torch.exp(torch.rand(m, 3, generator=g) * 2 - 4)
    return GaussianWorld(means, torch.randn(m, 4, generator=g), scales, torch.rand(m, generator=g) * 0.95 + 0.01,
                         torch.randn(m, (sh_degree + 1) ** 2, 3, generator=g) * 0.4)


@pytest.mark.parametrize("sh_degree", [0, 3])
def test_matches_previous_implementation(sh_degree):
    cam = Camera.look_at([0.1, -0.1, 0.0], [0, 0, 4.0], width=70, height=50, fov_deg=60)
    world = frustum_world(4000, cam, seed=sh_degree, sh_degree=sh_degree)
    out = render(world, cam, backend="cpu", background=(0, 0, 0))
    rgb, alpha = render_previous(world, cam)
    assert alpha.mean() > 0.5  # a dense picture, many Gaussians overlap
    # float32 blending, precomputed covariances: differences at the level of float32 rounding
    np.testing.assert_allclose(out.rgb.numpy(), np.clip(rgb, 0, 1), atol=2e-5, rtol=0)  # render() clips rgb
    np.testing.assert_allclose(out.alpha.numpy(), alpha, atol=2e-5, rtol=0)


@pytest.mark.parametrize("bands", [2, 3, 4])
def test_bands_of_tile_rows_change_nothing(monkeypatch, bands):
    """The parallel composite's bands (each sorts, bins and blends the Gaussians touching it) give the picture
    of one band over the whole image, bit for bit, however the 4 tile rows are split."""
    cam = Camera.look_at([0.1, -0.1, 0.0], [0, 0, 4.0], width=70, height=50, fov_deg=60)
    world = frustum_world(6000, cam, seed=5, sh_degree=1)
    monkeypatch.setattr(cpu_backend, "_band_count", lambda height, threads: 1)
    whole = render(world, cam, backend="cpu")
    monkeypatch.setattr(cpu_backend, "_band_count", lambda height, threads: bands)
    banded = render(world, cam, backend="cpu")
    assert torch.equal(banded.rgb, whole.rgb) and torch.equal(banded.alpha, whole.alpha)
    assert torch.equal(banded.depth, whole.depth)


@pytest.mark.parametrize("share", [0.02, 0.3])
def test_nearest_chunks_first_changes_nothing(monkeypatch, share):
    """Projecting and compositing the nearest chunks first (then the rest, only if pixels are still open) gives
    the picture of projecting everything at once, bit for bit, in a dense view and a half-empty one."""
    cam = Camera.look_at([0.1, -0.1, 0.0], [0, 0, 4.0], width=70, height=50, fov_deg=60)
    dense = frustum_world(20000, cam, seed=7, sh_degree=1)
    sparse = frustum_world(300, cam, seed=8)
    for world in (dense, sparse):
        monkeypatch.setattr(scene_index_module, "CHUNK_SIZE", 64)  # many chunks to split
        world = GaussianWorld(world.means.clone(), world.quats, world.scales, world.opacities, world.sh)
        monkeypatch.setattr(cpu_backend, "FIRST_WAVE_SHARE", 1.0)
        at_once = render(world, cam, backend="cpu")
        monkeypatch.setattr(cpu_backend, "FIRST_WAVE_SHARE", share)
        monkeypatch.setattr(cpu_backend, "WAVE_MIN_LAYERS", 0)  # two waves whatever the view's depth
        waves = render(world, cam, backend="cpu")
        assert torch.equal(waves.rgb, at_once.rgb) and torch.equal(waves.depth, at_once.depth)
    assert float(at_once.alpha.mean()) < 0.9  # the sparse view leaves pixels open: the second wave runs


def test_bands_hold_equal_shares_of_the_gaussians():
    """Band boundaries split the tile rows so each band holds about the same count of Gaussian x tile row."""
    tile_rows = np.array([[0, 1]] * 10 + [[5, 7]] * 30 + [[6, 8]] * 30, np.int32)  # rows 5-7 are busy
    depth = np.ones(len(tile_rows), np.float32)
    bounds = cpu_kernels.balanced_bands(depth, tile_rows, np.array([0]), np.array([len(tile_rows)]), 0.5, 2.0, 8, 4)
    cover = np.zeros(8)
    for first, last in tile_rows:
        cover[first:last] += 1
    shares = [cover[a:b].sum() for a, b in itertools.pairwise(bounds)]
    assert bounds[0] == 0 and bounds[-1] == 8 and np.all(np.diff(bounds) >= 1)
    assert max(shares) <= 0.5 * cover.sum()  # 4 bands of 2 rows each would give rows 6-7 90 of the 130
    assert len(cpu_kernels.balanced_bands(depth, tile_rows, np.array([0]), np.array([len(tile_rows)]), 0.5, 2.0, 3,
                                          8)) == 4
    # only the Gaussians of the depth range count: without the busy rows' ones, the first band holds row 0 alone
    far_busy = np.where(tile_rows[:, 0] >= 5, 3.0, 1.0).astype(np.float32)
    assert cpu_kernels.balanced_bands(far_busy, tile_rows, np.array([0]), np.array([len(tile_rows)]), 0.5, 2.0, 8,
                                      4)[1] == 1


def test_camera_groups_share_the_work_equally():
    """A batch's cameras go to one group per thread with about equal Gaussian counts (numba gives each thread
    one contiguous run of the batch loop, so the order matters)."""
    costs = [100, 5, 5, 90, 10, 5, 80, 5]
    order, starts = cpu_backend._camera_groups(costs, 2)
    assert sorted(order.tolist()) == list(range(8)) and starts.tolist()[0] == 0 and starts[-1] == 8
    totals = [sum(costs[c] for c in order[a:b]) for a, b in itertools.pairwise(starts)]
    assert len(totals) == 2 and max(totals) == 170  # the best split (90 + 80); 4 + 4 in order: 200 and 100
    assert len(cpu_backend._camera_groups([3, 1], 8)[1]) == 3  # no more groups than cameras


def test_chunk_culling_changes_nothing(monkeypatch):
    """A camera inside a large world: whole chunks are culled, the picture is that of the unculled render."""
    monkeypatch.setattr(scene_index_module, "CHUNK_SIZE", 64)
    g = torch.Generator().manual_seed(4)
    n = 20_000
    means = (torch.rand(n, 3, generator=g) - 0.5) * torch.tensor([20.0, 20.0, 4.0])
    world = GaussianWorld(means, torch.randn(n, 4, generator=g), torch.exp(torch.rand(n, 3, generator=g) * 3 - 5),
                          torch.rand(n, generator=g), torch.randn(n, 4, 3, generator=g) * 0.4)
    cams = Camera.look_at([[0, 0, 0], [3.0, -2, 0.5]], [[1.0, 0, 0], [0, 5, 0]], width=48, height=32, fov_deg=70,
                          up=(0, 0, 1))
    index = scene_index_module.scene_index(world)
    together = index.visible_chunks_of(cams.world_to_cam.double().numpy(), cams.K.double().numpy(), 48, 32, 0.01,
                                       1e10)
    for b in range(2):
        view = cams[b]
        kept = index.visible_chunks(view.world_to_cam[0].double().numpy(), view.K[0].double().numpy(), 48, 32,
                                    0.01, 1e10)
        assert len(kept) < 0.7 * index.num_chunks  # culling does something here
        np.testing.assert_array_equal(together[b], kept)  # a batch's shared pass culls each camera the same
    culled = render(world, cams, backend="cpu", background=(0, 0, 0))
    single = render(world, cams[1], backend="cpu", background=(0, 0, 0))
    monkeypatch.setattr(SceneIndex, "visible_chunks_of",
                        lambda self, world_to_cam, *args: [np.arange(self.num_chunks)] * len(world_to_cam))
    unculled = render(world, cams, backend="cpu", background=(0, 0, 0))
    assert unculled.alpha.mean() > 0.5  # the scene fills the view
    assert torch.equal(culled.rgb, unculled.rgb) and torch.equal(culled.alpha, unculled.alpha)
    assert torch.equal(culled.depth, unculled.depth)
    assert torch.equal(single.rgb, culled.rgb[1])  # one camera (parallel stages) == one of a batch (serial)
    rgb, _ = render_previous(world, cams[1])
    np.testing.assert_allclose(culled.rgb[1].numpy(), rgb, atol=2e-5, rtol=0)


def test_index_is_rebuilt_when_the_world_changes():
    world = random_world(n=300, seed=2)
    cam = Camera.look_at([0, 0, 0], [0, 0, 3.0], width=32, height=24)
    first = scene_index_module.scene_index(world)
    assert scene_index_module.scene_index(world) is first
    before = render(world, cam, backend="cpu", background=(0, 0, 0)).rgb
    with torch.no_grad():
        world.means[:, 0] += 0.3  # in place: same tensor, new version
    assert scene_index_module.scene_index(world) is not first
    after = render(world, cam, backend="cpu", background=(0, 0, 0)).rgb
    torch.testing.assert_close(after, torch.from_numpy(render_previous(world, cam)[0]), atol=2e-5, rtol=0)
    assert not torch.allclose(before, after)
    world.sh = world.sh * 0.5  # replaced tensor
    torch.testing.assert_close(render(world, cam, backend="cpu", background=(0, 0, 0)).rgb,
                               torch.from_numpy(render_previous(world, cam)[0]), atol=2e-5, rtol=0)


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
                          validate=False)
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
            "--path", "lyra:0", "--no-mp4", "-o", str(tmp_path / "out")]
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


def test_every_kernel_compiles_once_for_every_kind_of_render():
    """One camera, a batch, exact and with a level of detail all run the same compiled kernels: numba holds one
    specialisation of each (a second one would double a fresh environment's compile time)."""
    world = random_world(n=400, seed=5)
    cam = Camera.look_at([0, 0, 0], [0, 0, 3.0], width=40, height=30)
    batch = Camera.look_at([[0, 0, 0], [0.2, 0, 0]], [[0, 0, 3.0], [0, 0.5, 3.0]], width=40, height=30)
    with torch.no_grad():
        for camera in (cam, batch):
            for lod in (None, 1.0):
                render(world, camera, backend="cpu", lod=lod)
    # the kernels Python calls (their callees come compiled inside them when numba's cache has them)
    for kernel in (cpu_kernels.project_chunks, cpu_kernels.project_chunks_lod, cpu_kernels.composite,
                   cpu_kernels.balanced_bands):
        assert len(kernel.signatures) == 1, kernel.__name__


def test_a_cold_kernel_cache_is_announced_once(monkeypatch, capsys):
    class Cold:  # a kernel numba has neither compiled nor cached (numba's attribute names)
        signatures = ()

        class _cache:
            class _cache_file:
                _index_path = "/nonexistent/lyra_sim_kernel.nbi"

    assert cpu_backend._compiled_or_cached(cpu_kernels.composite) is True  # compiled in this process
    assert cpu_backend._compiled_or_cached(Cold) is False
    Cold.__name__ = "balanced_bands"
    monkeypatch.setattr(cpu_backend, "_announced", set())
    monkeypatch.setattr(cpu_kernels, "balanced_bands", Cold)
    cpu_backend.announce_compile()
    cpu_backend.announce_compile()
    err = capsys.readouterr().err
    assert err.count("compiling the CPU renderer, once") == 1
    assert f"~{cpu_backend.COMPILE_SECONDS['balanced_bands']} s" in err  # only the cold kernel's time
    monkeypatch.setattr(cpu_kernels, "project_chunks_lod", type("project_chunks_lod", (Cold,), {}))
    cpu_backend.announce_compile(lod=True)  # a first render with a level of detail needs one more kernel
    assert capsys.readouterr().err.count("compiling the CPU renderer, once") == 1


def _outside_a_side_plane(corners: list, K: np.ndarray, width: int, height: int) -> bool:
    """Whether all corners (camera frame) lie beyond one side plane of the image widened by CULL_MARGIN_PX."""
    fx, fy, cx, cy, m = K[0, 0], K[1, 1], K[0, 2], K[1, 2], scene_index_module.CULL_MARGIN_PX
    return (all(x * fx > (width + m - cx) * z for x, _, z in corners)
            or all(x * fx < (-m - cx) * z for x, _, z in corners)
            or all(y * fy > (height + m - cy) * z for _, y, z in corners)
            or all(y * fy < (-m - cy) * z for _, y, z in corners))


def test_chunk_culling_of_a_batch_matches_a_corner_by_corner_test():
    """visible_chunks_of for 8 cameras at once against the rule written out per camera, chunk and corner: a chunk is
    kept unless its means' box lies wholly before near or beyond far, or its extent box's eight corners all lie
    beyond one side plane of the image."""
    g = torch.Generator().manual_seed(5)
    n = 4000
    world = GaussianWorld((torch.rand(n, 3, generator=g) - 0.5) * 10, torch.randn(n, 4, generator=g),
                          torch.full((n, 3), 0.02), torch.full((n,), 0.5), torch.zeros(n, 1, 3))
    index = scene_index_module.build_index(world, chunk_size=32)
    rng = np.random.default_rng(3)
    eyes = rng.uniform(-2, 2, (8, 3))
    cams = Camera.look_at(eyes.tolist(), (eyes + rng.normal(size=(8, 3))).tolist(), width=40, height=30, fov_deg=80)
    w2c, K = cams.world_to_cam.double().numpy(), cams.K.double().numpy()
    near, far = 0.5, 4.0
    got = index.visible_chunks_of(w2c, K, 40, 30, near, far)
    mean_corners = scene_index_module.box_corners(index.mean_boxes)
    extent_corners = scene_index_module.box_corners(index.extent_boxes)
    for b in range(8):
        expected = []
        for c in range(index.num_chunks):
            mean_z = [w2c[b, 2, :3] @ corner + w2c[b, 2, 3] for corner in mean_corners[c]]
            cam = [w2c[b, :3, :3] @ corner + w2c[b, :3, 3] for corner in extent_corners[c]]
            if min(mean_z) <= far and max(mean_z) >= near and not _outside_a_side_plane(cam, K[b], 40, 30):
                expected.append(c)
        assert 0 < len(expected) < index.num_chunks  # some chunks culled, some kept
        np.testing.assert_array_equal(got[b], expected)
