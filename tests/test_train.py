"""Self-distillation: the cache teacher, latent spaces, losses, data engine and the training loop."""

import json

import numpy as np
import pytest
import torch

from lyra_sim.camera import Camera
from lyra_sim.cli import main
from lyra_sim.lyra import LyraDecoder
from lyra_sim.lyra.latent_space import PixelSpace
from lyra_sim.train.data_engine import SceneDataset, make_dataset
from lyra_sim.train.loop import Stage, TrainConfig, Trainer, prepare_sample
from lyra_sim.train.losses import PerceptualLoss, masked_mse, scale_invariant_depth_loss
from lyra_sim.train.teachers import CacheTeacher

H, W = 48, 64
K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
FRONT = (slice(16, 32), slice(20, 40))  # rows, cols of the front square in the input


def two_planes():
    """A red square at depth 1 in front of a blue wall at depth 2."""
    rgb = np.zeros((H, W, 3))
    rgb[..., 2] = 1.0
    depth = np.full((H, W), 2.0)
    depth[FRONT] = 1.0
    rgb[FRONT] = [1.0, 0.0, 0.0]
    return rgb, depth


def camera_moved(dx):
    """A camera translated by dx along +x (world_to_cam translation -dx)."""
    world_to_cam = torch.eye(4)
    world_to_cam[0, 3] = -dx
    return Camera.stack([Camera(torch.tensor(K).float(), world_to_cam, W, H)])


def test_cache_teacher_reproduces_the_input_view_exactly():
    rng = np.random.default_rng(0)
    rgb = rng.random((H, W, 3))
    _, depth = two_planes()
    result = CacheTeacher().render(rgb, depth, K, camera_moved(0.0))
    mask = result.masks[0].numpy()
    assert mask.mean() > 0.85  # only the depth edge band is left out
    np.testing.assert_allclose(result.frames[0].numpy()[mask], rgb[mask], atol=1e-6)
    np.testing.assert_allclose(result.depth[0].numpy()[mask], depth[mask], atol=1e-6)
    assert not mask[16:32, 19].any() and not mask[16:32, 40].any()  # the square's edges are unreliable


def test_disocclusions_are_masked_not_invented():
    rgb, depth = two_planes()
    result = CacheTeacher().render(rgb, depth, K, camera_moved(0.2))
    mask, frame = result.masks[0].numpy(), result.frames[0].numpy()
    # Front plane moves 50 * 0.2 / 1 = 10 px left, the wall 5 px: target columns 30..34 of the square's rows
    # show wall that the input never saw.
    assert not mask[18:30, 30:35].any()
    # Everything still valid has one of the two true colours (no blending across the edge).
    valid = frame[mask]
    assert np.all((np.abs(valid - [1, 0, 0]).max(1) < 1e-6) | (np.abs(valid - [0, 0, 1]).max(1) < 1e-6))
    # The wall slid out of view on the right: 5 columns with nothing.
    assert not mask[:, -5:].any()


@pytest.mark.parametrize("dx", [-0.2, 0.2])
def test_conservative_refinement_hides_wall_behind_the_edge(dx):
    """Without refinement, wall pixels land where the square's unsplatted edge should occlude them."""
    rgb, depth = two_planes()
    footprint = np.zeros((H, W), bool)
    shift = round(50 * dx)  # fx * dx / depth of the square (1)
    footprint[FRONT[0], FRONT[1].start - shift:FRONT[1].stop - shift] = True  # the square in the target view
    for threshold, expect_leak in ((0.02, False), (1e9, True)):
        result = CacheTeacher(behind_threshold=threshold).render(rgb, depth, K, camera_moved(dx))
        mask, frame = result.masks[0].numpy(), result.frames[0].numpy()
        leaked = footprint & mask & (frame[..., 2] > 0.5)
        assert leaked.any() == expect_leak


def test_pixel_space_keeps_every_pixel():
    space = PixelSpace()
    frames = torch.rand(17, 32, 48, 3)
    latents = space.encode_video(frames)
    assert latents.shape == (1536, 3, 4, 6)
    # Invert by hand: channel layout (rgb, t, y, x), latent frame 1 = frames 1..8, frame 0 repeated.
    blocks = latents.reshape(3, 8, 8, 8, 3, 4, 6).permute(4, 1, 5, 2, 6, 3, 0)  # (T, t, h, y, w, x, c)
    video = (blocks.reshape(3, 8, 32, 48, 3) + 1) / 2
    torch.testing.assert_close(video[1], frames[1:9], atol=1e-6, rtol=0)
    torch.testing.assert_close(video[2], frames[9:17], atol=1e-6, rtol=0)
    torch.testing.assert_close(video[0], frames[:1].expand(8, -1, -1, -1), atol=1e-6, rtol=0)
    plucker = space.encode_plucker(torch.ones(17, 6, 32, 48))
    assert plucker.shape == (6, 3, 4, 6) and torch.allclose(plucker, torch.ones_like(plucker))
    with pytest.raises(ValueError, match="1 \\+ 8k"):
        space.encode_video(torch.rand(10, 32, 48, 3))


def test_depth_loss_is_invariant_to_scale_and_shift():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(3, 12, 16, generator=g) * 3 + 1
    prediction = torch.rand(3, 12, 16, generator=g) * 2 + 0.5
    mask = torch.rand(3, 12, 16, generator=g) > 0.3
    base = scale_invariant_depth_loss(prediction, target, mask)
    for scale, shift in ((2.5, 0.0), (0.3, 4.0), (7.0, -0.2)):
        assert scale_invariant_depth_loss(scale * prediction + shift, target, mask) == pytest.approx(base.item(),
                                                                                                     rel=1e-5)
        assert scale_invariant_depth_loss(prediction, scale * target + shift, mask) == pytest.approx(base.item(),
                                                                                                     rel=1e-5)
    assert scale_invariant_depth_loss(prediction**2, target, mask) != pytest.approx(base.item(), rel=1e-3)
    assert scale_invariant_depth_loss(target * 2 + 1, target, mask).item() == pytest.approx(0.0, abs=1e-6)


def test_masked_pixels_carry_no_gradient():
    g = torch.Generator().manual_seed(1)
    prediction = torch.rand(2, 20, 24, 3, generator=g).requires_grad_(True)
    depth = (torch.rand(2, 20, 24, generator=g) + 1).requires_grad_(True)
    target, target_depth = torch.rand(2, 20, 24, 3, generator=g), torch.rand(2, 20, 24, generator=g) + 1
    mask = torch.zeros(2, 20, 24, dtype=torch.bool)
    mask[:, 5:15, 4:20] = True
    loss = masked_mse(prediction, target, mask) + 0.5 * PerceptualLoss()(prediction, target, mask)
    loss = loss + 0.05 * scale_invariant_depth_loss(depth, target_depth, mask)
    loss.backward()
    assert prediction.grad[~mask].abs().max() == 0 and depth.grad[~mask].abs().max() == 0
    assert prediction.grad[mask].abs().max() > 0 and depth.grad[mask].abs().max() > 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("dataset")
    make_dataset(root, num_scenes=3, held_out=1, progress=False)
    return root


def test_data_engine_writes_resumable_safetensors_shards(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["train"] == ["scene_00000.safetensors", "scene_00001.safetensors"]
    assert manifest["held_out"] == ["scene_00002.safetensors"]
    first = dataset / "scene_00000.safetensors"
    stamp = first.stat().st_mtime_ns
    make_dataset(dataset, num_scenes=3, held_out=1, progress=False)  # resumes: nothing rewritten
    assert first.stat().st_mtime_ns == stamp
    assert first.read_bytes()[8:9] == b"{"  # a safetensors header, not a pickle
    scene = SceneDataset(dataset)[0]
    assert scene["frames"].shape == (6, 9, 48, 64, 3) and scene["frames"].dtype == torch.uint8
    assert scene["view_index"].tolist() == [5, 0, 1, 2, 3, 4]
    assert 0.5 < scene["masks"].float().mean() < 1.0  # warped views have masked disocclusions
    # Frame 0 of every trajectory is the input camera: the input image wherever valid.
    valid = scene["masks"][0, 0].bool()
    assert (scene["frames"][0, 0][valid].int() - scene["input_rgb"][valid].int()).abs().max() <= 1


def tiny_config(dataset, output, **overrides):
    settings = dict(dataset=str(dataset), output=str(output), width=32, depth=2, lr=3e-3, warmup_steps=5,
                    log_every=5, checkpoint_every=1000, seed=0,
                    stages=[Stage("all", 40, views=(6, 6), frames_per_view=2)])
    settings.update(overrides)
    return TrainConfig(**settings)


def test_tiny_decoder_loss_falls(dataset, tmp_path):
    trainer = Trainer(tiny_config(dataset, tmp_path / "run"))
    history = trainer.train(progress=False)
    first = np.mean([row["total"] for row in history[:5]])
    last = np.mean([row["total"] for row in history[-5:]])
    assert last < 0.75 * first, (first, last)
    metrics = trainer.evaluate()
    assert metrics["trajectories"] == 6 and 5 < metrics["psnr"] < 60
    assert (tmp_path / "run" / "metrics.csv").read_text().startswith("step,stage,mse,perceptual,depth,opacity")


def test_checkpoints_use_the_official_format_and_runs_resume(dataset, tmp_path):
    config = tiny_config(dataset, tmp_path / "run", stages=[Stage("a", 3, views=(2, 2), frames_per_view=1),
                                                           Stage("prune", 3, prune=0.8, opacity_weight=0.1)])
    Trainer(config).train(steps=3, progress=False)
    payload = torch.load(tmp_path / "run" / "checkpoints" / "last.pt", weights_only=True)
    model = LyraDecoder.from_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert set(payload["module"]) == set(model.state_dict())
    assert model.config.latent_channels == 1536 and payload["perceptual"] == "ssim"
    resumed = Trainer(config)
    assert resumed.step == 3
    history = resumed.train(progress=False)
    assert [row["step"] for row in history] == [4, 5, 6] and {row["stage"] for row in history} == {"prune"}
    assert (tmp_path / "run" / "checkpoints" / "step_000006.pt").exists()


def test_dynamic_step_with_motion_reversal(dataset, tmp_path):
    trainer = Trainer(tiny_config(dataset, tmp_path / "dyn", dynamic=True, motion_reversal=1.0,
                                  stages=[Stage("dyn", 2, views=(2, 2), frames_per_view=1)]))
    history = trainer.train(progress=False)
    assert all(row["reversed"] == 1 and np.isfinite(row["total"]) for row in history)
    scene = SceneDataset(dataset)[0]
    forward = prepare_sample(scene, [0, 1], PixelSpace(), dynamic=True, target_time=0.25, reverse=False)
    backward = prepare_sample(scene, [0, 1], PixelSpace(), dynamic=True, target_time=0.25, reverse=True)
    flipped = PixelSpace().encode_video(scene["frames"][0].float().flip(0) / 255.0)
    torch.testing.assert_close(backward.latents[0, 0], flipped)
    # Reversed input: the target time t is seen at 1 - t, and input-frame times run backwards.
    torch.testing.assert_close(backward.target_times[0, 0], PixelSpace().encode_times(torch.full((9,), 0.75), H, W))
    assert not torch.allclose(forward.input_times, backward.input_times)


def test_cli_make_dataset_train_eval(tmp_path, capsys):
    data = tmp_path / "data"
    assert main(["make-dataset", str(data), "--scenes", "2", "--held-out", "1"]) == 0
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"dataset": str(data), "output": str(tmp_path / "out"), "width": 32, "depth": 2,
                                  "stages": [{"name": "s", "steps": 2, "views": [1, 2]}]}))
    assert main(["train", "--config", str(config)]) == 0
    assert main(["eval", str(tmp_path / "out" / "checkpoints" / "last.pt")]) == 0
    printed = capsys.readouterr().out
    assert "perceptual loss: ssim" in printed and '"psnr"' in printed
    assert main(["make-dataset", str(tmp_path / "bad"), "--width", "60"]) == 2


def test_held_out_metrics_are_logged_and_cosmos_latents_train(dataset, tmp_path):
    from lyra_fixtures import write_tiny_tokenizer

    tokenizer = write_tiny_tokenizer(tmp_path / "cosmos")
    trainer = Trainer(tiny_config(dataset, tmp_path / "cosmos_run", latent_space="cosmos", tokenizer=str(tokenizer),
                                  eval_every=2, stages=[Stage("s", 2, views=(1, 1), frames_per_view=1)]))
    assert trainer.accelerator.unwrap_model(trainer.model).config.latent_channels == 16
    history = trainer.train(progress=False)
    assert len(history) == 2 and all(np.isfinite(row["total"]) for row in history)
    rows = (tmp_path / "cosmos_run" / "eval.csv").read_text().splitlines()
    assert rows[0] == "step,psnr,ssim,trajectories" and rows[1].startswith("2,")


def test_gen3c_teacher_reads_an_official_output_folder(tmp_path):
    import imageio.v3 as iio
    from lyra_fixtures import FRAMES, HEIGHT, WIDTH, write_teacher_dir

    from lyra_sim.train.teachers import Gen3cTeacher

    root = write_teacher_dir(tmp_path / "gen3c")
    for k in range(6):
        video = np.full((FRAMES, HEIGHT, WIDTH, 3), 40 * k, np.uint8)
        (root / str(k) / "rgb").mkdir()
        iio.imwrite(root / str(k) / "rgb" / "scene.mp4", video, fps=24)
    trajectories = Gen3cTeacher(root).trajectories()
    assert [t.index for t in trajectories] == [5, 0, 1, 2, 3, 4]
    first = trajectories[0]
    assert first.frames.shape == (FRAMES, HEIGHT, WIDTH, 3) and first.depth is None and first.masks.all()
    assert abs(float(trajectories[1].frames.mean()) - 0.0) < 0.02 and abs(float(first.frames.mean()) - 200 / 255) < 0.02
    torch.testing.assert_close(first.cameras.world_to_cam[0], torch.eye(4), atol=1e-5, rtol=0)


def test_progressive_stages_change_frames_and_resolution(dataset, tmp_path):
    scene = SceneDataset(dataset)[0]
    def tile(tensor, height_axis):  # 2 x 2 copies of the image plane
        return torch.cat([torch.cat([tensor] * 2, height_axis)] * 2, height_axis + 1)

    scene = {**scene, "frames": tile(scene["frames"], 2), "depth": tile(scene["depth"], 2),
             "masks": tile(scene["masks"], 2)}
    assert scene["frames"].shape[2:4] == (96, 128)  # tiled 2x2: the pooled stage stays on an even latent grid
    full = prepare_sample(scene, [0, 3], PixelSpace())
    small = prepare_sample(scene, [0, 3], PixelSpace(), frames=1, downsample=2)
    assert full.frames.shape == (2, 9, 96, 128, 3) and small.frames.shape == (2, 1, 48, 64, 3)
    assert small.latents.shape[-3:] == (1, 6, 8)
    torch.testing.assert_close(small.K[0, 0, :2], full.K[0, 0, :2] / 2)
    block = full.frames[0, 0, :2, :2].reshape(-1, 3).mean(0)
    torch.testing.assert_close(small.frames[0, 0, 0, 0], block)
    with pytest.raises(ValueError, match="1 \\+ 8k"):
        prepare_sample(scene, [0], PixelSpace(), frames=4)
    with pytest.raises(ValueError, match="even latent grid"):
        prepare_sample(SceneDataset(dataset)[0], [0], PixelSpace(), downsample=2)
    config = tiny_config(dataset, tmp_path / "prog", stages=[Stage("short", 2, views=(2, 2), frames=1),
                                                            Stage("full", 2, views=(2, 2))])
    history = Trainer(config).train(progress=False)
    assert [row["stage"] for row in history] == ["short", "short", "full", "full"]
