"""The Lyra decoder: checkpoint compatibility, strict loading, output parameterisation, pruning."""

import math
from pathlib import Path

import pytest
import torch

from lyra_sim.camera import relative_poses
from lyra_sim.lyra import CheckpointError, LyraDecoder, LyraDecoderConfig
from lyra_sim.lyra.gaussian_head import (
    activate,
    gaussians_from_raw,
    kept_count,
    packed_to_world,
    top_opacity,
)
from lyra_sim.lyra.plucker import intrinsics_matrix, plucker_image, time_image

KEYS_FILE = Path(__file__).parent / "data" / "lyra_checkpoint_keys.txt"


def official_keys() -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in KEYS_FILE.read_text().splitlines():
        name, shape = line.split(" ", 1)
        keys[name] = tuple(int(v) for v in shape.strip("()").split(",") if v.strip())
    return keys


@pytest.fixture(scope="module")
def official_static():
    return LyraDecoder.official()


@pytest.mark.parametrize("dynamic", [False, True])
def test_state_dict_equals_released_checkpoint_keys(dynamic, official_static):
    model = official_static if not dynamic else LyraDecoder.official(dynamic=True)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = official_keys()
    assert len(expected) == 254
    assert got == expected
    assert sum(math.prod(s) for s in got.values()) == 32_753_996


def test_block_types_follow_the_release(official_static):
    kinds = ["attn" if hasattr(b, "attn") else "mamba" for b in official_static.enc_blocks]
    assert [i for i, k in enumerate(kinds) if k == "attn"] == [7, 15]


def test_strict_load_of_an_official_format_checkpoint(tmp_path, official_static):
    path = tmp_path / "lyra_static.pt"
    torch.save({"module": official_static.state_dict()}, path)
    loaded = LyraDecoder.from_checkpoint(path)
    assert not loaded.config.dynamic
    for name, tensor in official_static.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    dynamic_path = tmp_path / "lyra_dynamic.pt"
    dynamic_path.symlink_to(path)
    assert LyraDecoder.from_checkpoint(dynamic_path).config.dynamic


def test_wrong_checkpoint_lists_missing_unexpected_and_misshaped_keys(tmp_path, official_static):
    state = dict(official_static.state_dict())
    del state["enc_blocks.3.mamba.mamba_scans.1.A_log"]
    state["enc_blocks.99.norm.weight"] = torch.ones(512)
    state["deconv.bias"] = torch.zeros(14)
    path = tmp_path / "wrong.pt"
    torch.save({"module": state}, path)
    with pytest.raises(CheckpointError) as err:
        LyraDecoder.from_checkpoint(path)
    message = str(err.value)
    assert str(path) in message
    assert "missing (1): enc_blocks.3.mamba.mamba_scans.1.A_log" in message
    assert "unexpected (1): enc_blocks.99.norm.weight" in message
    assert "deconv.bias: checkpoint (14,) vs model (12,)" in message


def test_unreadable_or_malformed_checkpoints_fail_clearly(tmp_path):
    not_torch = tmp_path / "notes.pt"
    not_torch.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.pt: not a loadable"):
        LyraDecoder.from_checkpoint(not_torch)
    bare = tmp_path / "bare.pt"
    torch.save(LyraDecoder(LyraDecoderConfig.small()).state_dict(), bare)  # no {"module": ...} wrapper
    with pytest.raises(CheckpointError, match="'module'"):
        LyraDecoder.from_checkpoint(bare)
    with pytest.raises(CheckpointError, match="not found"):
        LyraDecoder.from_checkpoint(tmp_path / "missing.pt")


def test_small_config_round_trips_through_its_checkpoint(tmp_path):
    model = LyraDecoder(LyraDecoderConfig.small(dynamic=True))
    path = tmp_path / "small.pt"
    torch.save(model.official_checkpoint(), path)
    loaded = LyraDecoder.from_checkpoint(path)
    assert loaded.config == model.config


def test_forward_shapes_and_zero_initialised_conditioning():
    torch.manual_seed(0)
    model = LyraDecoder(LyraDecoderConfig.small(dynamic=True)).eval()
    latents = torch.randn(1, 2, 16, 3, 4, 6)
    plucker = torch.randn(1, 2, 32, 3, 4, 6)
    times_a, times_b = torch.randn(1, 2, 16, 3, 4, 6), torch.randn(1, 2, 16, 3, 4, 6)
    with torch.no_grad():
        raw = model(latents, plucker, times_a, times_a)
        assert raw.shape == (1, 2, 12, 17, 4, 6)  # (T-1)*8+1 frames, 2x the token grid
        # Zero-initialised Plücker/time embeddings: a fresh model ignores them (Lyra's warm start).
        torch.testing.assert_close(model(latents, torch.zeros_like(plucker), times_b, times_a), raw)
        model.patch_time_embed_tgt.proj.weight.normal_()
        assert not torch.allclose(model(latents, plucker, times_a, times_b), raw)
    with pytest.raises(ValueError, match="plucker"):
        model(latents, plucker[:, :, :16], times_a, times_a)
    with pytest.raises(ValueError, match="target_times"):
        model(latents, plucker)


def test_activations_stay_in_their_ranges():
    raw = torch.randn(1000, 12) * 6
    values = activate(raw)
    assert values["depth"].min() >= 0.1 and values["depth"].max() <= 500
    assert values["rgb"].min() >= 0 and values["rgb"].max() <= 1
    assert values["scale"].min() > 0 and values["scale"].max() <= 0.3
    assert values["opacity"].min() > 0 and values["opacity"].max() < 1
    torch.testing.assert_close(values["quat"].norm(dim=-1), torch.ones(1000))
    # The stated offsets: distance 1.65 -> midway depth, opacity 2 -> 0.5, scale 1 -> 0.3.
    at_offsets = activate(torch.tensor([[1.65, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 2.0]]))
    assert at_offsets["depth"].item() == pytest.approx((0.1 + 500) / 2)
    assert at_offsets["opacity"].item() == pytest.approx(0.5)
    assert at_offsets["scale"][0].tolist() == pytest.approx([0.3] * 3)


def test_gaussian_positions_lie_on_their_pixel_rays():
    torch.manual_seed(0)
    frames, height, width = 3, 5, 7
    K = intrinsics_matrix(torch.tensor([[80.0, 70.0, 28.0, 20.0]]).repeat(frames, 1))  # full-res 56 x 40
    angle = torch.tensor(0.3)
    cam_to_world = torch.eye(4).repeat(frames, 1, 1)
    cam_to_world[:, :3, 3] = torch.tensor([[0.0, 0, 0], [0.5, -0.2, 0.1], [1.0, 0.3, -0.4]])
    cam_to_world[2, :3, :3] = torch.tensor([[torch.cos(angle), 0, torch.sin(angle)], [0, 1, 0],
                                            [-torch.sin(angle), 0, torch.cos(angle)]])
    raw = torch.randn(12, frames, height, width)
    packed = gaussians_from_raw(raw, K, cam_to_world, downsample=8)
    xyz = packed[:, :3].view(frames, height, width, 3)
    # Independent check: project each centre back with K/8 into its own frame's camera.
    world_to_cam = torch.linalg.inv(cam_to_world)
    cam = torch.einsum("fij,fhwj->fhwi", world_to_cam[:, :3, :3], xyz) + world_to_cam[:, None, None, :3, 3]
    u = K[:, None, None, 0, 0] / 8 * cam[..., 0] / cam[..., 2] + K[:, None, None, 0, 2] / 8
    v = K[:, None, None, 1, 1] / 8 * cam[..., 1] / cam[..., 2] + K[:, None, None, 1, 2] / 8
    cols = torch.arange(width).float() + 0.5
    rows = torch.arange(height).float() + 0.5
    torch.testing.assert_close(u, cols.expand_as(u), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, rows[:, None].expand_as(v), atol=1e-3, rtol=0)
    depth = activate(raw.permute(1, 2, 3, 0))["depth"][..., 0]
    torch.testing.assert_close(cam.norm(dim=-1), depth, rtol=1e-4, atol=1e-4)  # distance along a unit ray


def test_pruning_keeps_the_official_count_of_the_most_opaque():
    for n in (10, 7, 1000, 12345):
        opacity = torch.rand(n)
        packed = torch.zeros(n, 14)
        packed[:, 3] = opacity
        kept = top_opacity(packed, 0.8)
        assert len(kept) == int(n * (1 - 0.8))  # as the official code computes it (0.19999999999999996)
        if len(kept):
            dropped_max = torch.sort(opacity, descending=True).values[len(kept):].max() if len(kept) < n else -1
            assert kept[:, 3].min() >= dropped_max
            assert set(kept[:, 3].tolist()) == set(torch.topk(opacity, len(kept)).values.tolist())
    assert len(top_opacity(torch.zeros(10, 14), 0.8)) == 1  # 10 * 0.19999999999999996 = 1.9999999999999996
    # The released model's count: 10,222,080 Gaussians -> 2,044,415 (float rounding drops one of 0.2 * N).
    assert kept_count(10_222_080, 0.8) == 2_044_415


def test_packed_gaussians_become_a_world_with_plain_rgb():
    packed = torch.zeros(4, 14)
    packed[:, 3] = 0.5
    packed[:, 4:7] = 0.1
    packed[:, 7] = 1.0
    packed[:, 11:14] = torch.tensor([0.2, 0.4, 0.9])
    world = packed_to_world(packed)
    assert world.frame == "opencv" and world.meters_per_unit is None and world.sh_degree == 0
    from lyra_sim.world import SH_C0

    torch.testing.assert_close(world.sh[:, 0] * SH_C0 + 0.5, packed[:, 11:14])


def test_plucker_rays_have_unit_directions_and_moments_orthogonal():
    K = intrinsics_matrix(torch.tensor([[50.0, 50.0, 16.0, 12.0]]))
    pose = torch.eye(4)[None].clone()
    pose[0, :3, 3] = torch.tensor([1.0, 2.0, 3.0])
    image = plucker_image(K, pose, 24, 32)
    moment, direction = image[0, :3], image[0, 3:]
    torch.testing.assert_close(direction.norm(dim=0), torch.ones(24, 32))
    torch.testing.assert_close((moment * direction).sum(0), torch.zeros(24, 32), atol=1e-5, rtol=0)
    # Centre pixel of an unrotated camera looks down +z (pixel centres at +0.5: column 16 is 16.5).
    centre = direction[:, 11, 15]
    torch.testing.assert_close(centre, torch.nn.functional.normalize(torch.tensor([-0.5 / 50, -0.5 / 50, 1]), dim=0))
    relative = relative_poses(torch.stack([pose[0], pose[0] @ torch.diag(torch.tensor([1.0, -1, -1, 1]))]))
    torch.testing.assert_close(relative[0], torch.eye(4))


def test_time_image_maps_into_unit_range():
    image = time_image(torch.tensor([0.0, 0.5, 1.0]), 4, 6)
    assert image.shape == (3, 3, 4, 6)
    assert image.min() >= -1 and image.max() <= 1
    torch.testing.assert_close(image[1, :, 0, 0], torch.tensor([0.0, 2 * math.cos(0.5) - 1, 2 * math.sin(0.5) - 1]))
    with pytest.raises(ValueError, match="times"):
        time_image(torch.tensor([1.5]), 2, 2)
