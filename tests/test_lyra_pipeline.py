"""Teacher folders, the Cosmos tokenizer wrapper (both formats) and decode_teacher_dir end to end."""

import json
import os
import pickle

import numpy as np
import plyfile
import pytest
import torch
from lyra_fixtures import FRAMES, HEIGHT, INTRINSICS, WIDTH, tiny_cosmos, write_teacher_dir, write_tiny_tokenizer

from lyra_sim.cli import main
from lyra_sim.io import load_world
from lyra_sim.lyra import (
    CosmosTokenizer,
    LyraDecoder,
    LyraDecoderConfig,
    TeacherDataError,
    TokenizerError,
    decode_teacher_dir,
    load_teacher_latent,
    read_teacher_dir,
)
from lyra_sim.world import DynamicGaussianWorld

PIXELS_PER_VIEW = FRAMES * (HEIGHT // 8) * (WIDTH // 8)


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    return write_tiny_tokenizer(tmp_path_factory.mktemp("cosmos"))


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return write_teacher_dir(tmp_path_factory.mktemp("teacher"))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(3)
    model = LyraDecoder(LyraDecoderConfig.small())
    path = tmp_path_factory.mktemp("ckpt") / "lyra_static_small.pt"
    torch.save(model.official_checkpoint(), path)
    return path


class _RunsCode:
    """Unpickling this calls os.system: a latent file must never get that far."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --- safe latent loading ----------------------------------------------------------------------------------


def test_latent_written_like_gen3c_loads_without_batch_axis(tmp_path):
    array = np.random.default_rng(0).normal(size=(1, 16, 2, 4, 6)).astype(np.float32)
    torch.save(array, tmp_path / "a.pkl")
    latent = load_teacher_latent(tmp_path / "a.pkl")
    assert latent.shape == (16, 2, 4, 6) and latent.dtype == torch.float32
    np.testing.assert_array_equal(latent.numpy(), array[0])


def test_malicious_latent_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"latent": _RunsCode(marker)}, tmp_path / "evil.pkl")
    with pytest.raises(TeacherDataError, match=r"evil.pkl: refused .*posix.system"):
        load_teacher_latent(tmp_path / "evil.pkl")
    with open(tmp_path / "plain.pkl", "wb") as handle:  # plain pickle, not torch.save: refused the same way
        pickle.dump(_RunsCode(marker), handle)
    with pytest.raises(TeacherDataError, match=r"plain\.pkl: refused"):
        load_teacher_latent(tmp_path / "plain.pkl")
    assert not marker.exists()


def test_non_array_and_bad_arrays_are_refused(tmp_path):
    torch.save({"a": 1}, tmp_path / "dict.pkl")
    torch.save(np.zeros((1, 16, 2, 4, 6), dtype=np.int32), tmp_path / "int.pkl")
    torch.save(np.full((1, 16, 2, 4, 6), np.nan, dtype=np.float32), tmp_path / "nan.pkl")
    torch.save(np.zeros((16, 4, 6), dtype=np.float32), tmp_path / "flat.pkl")
    for name, message in [("dict", "holds dict"), ("int", "Int32DType"), ("nan", "NaN"), ("flat", "shape")]:
        with pytest.raises(TeacherDataError, match=message):
            load_teacher_latent(tmp_path / f"{name}.pkl")


def test_teacher_dir_reader_indexes_every_trajectory(teacher_dir):
    scene = read_teacher_dir(teacher_dir)
    assert scene.name == "scene" and sorted(scene.views) == [0, 1, 2, 3, 4, 5]
    view = scene.views[3]
    assert view.num_frames == FRAMES and view.cam_to_world.shape == (FRAMES, 4, 4)
    assert view.K()[0].tolist() == [[INTRINSICS[0], 0, INTRINSICS[2]], [0, INTRINSICS[1], INTRINSICS[3]], [0, 0, 1]]
    assert view.latent().shape == (16, 2, 4, 6)
    with pytest.raises(TeacherDataError, match="trajectories \\[7\\] missing"):
        scene.ordered((0, 7))
    with pytest.raises(TeacherDataError, match="not found"):
        read_teacher_dir(teacher_dir, name="other")


def test_teacher_dir_with_broken_pose_file_names_it(tmp_path):
    root = write_teacher_dir(tmp_path / "t")
    np.savez(root / "2" / "pose" / "scene.npz", data=np.zeros((FRAMES, 3, 4)), inds=np.arange(FRAMES))
    with pytest.raises(TeacherDataError, match=r"2/pose/scene.npz: data shape"):
        read_teacher_dir(root)


# --- tokenizer ----------------------------------------------------------------------------------------------


def test_tokenizer_compression_and_latent_space_round_trip(tokenizer_dir):
    tokenizer = CosmosTokenizer.from_dir(tokenizer_dir)
    video = torch.rand(1, 3, 17, 32, 48) * 2 - 1
    latents = tokenizer.encode(video)
    assert latents.shape == (1, 16, 3, 4, 6)
    assert tokenizer.decode(latents).shape == video.shape
    torch.testing.assert_close(tokenizer.to_diffusion_space(tokenizer.to_tokenizer_space(latents)), latents)
    # x / 0.5 * std + mean, per channel and latent frame, with the statistics laid out as diffusers stores them.
    config = json.loads(tokenizer_dir.joinpath("config.json").read_text())
    mean = torch.tensor(config["latents_mean"]).view(16, -1)[:, :2]
    std = torch.tensor(config["latents_std"]).view(16, -1)[:, :2]
    x = torch.randn(1, 16, 2, 3, 5)
    expected = x / 0.5 * std[None, :, :, None, None] + mean[None, :, :, None, None]
    torch.testing.assert_close(tokenizer.to_tokenizer_space(x), expected)
    with pytest.raises(ValueError, match="frames"):
        tokenizer.encode(torch.zeros(1, 3, 10, 32, 48))


def test_torchscript_release_format_matches_diffusers_format(tmp_path, tokenizer_dir):
    """The official layout (encoder.jit, decoder.jit, mean_std.pt) gives the same latents and statistics."""
    vae = tiny_cosmos()

    class Encoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, x):
            return (self.vae._encode(x),)  # the release's encoder returns a tuple

    class Decoder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.vae = vae

        def forward(self, z):
            return self.vae._decode(z).sample

    example = torch.rand(1, 3, 9, 32, 48)
    with torch.no_grad():
        torch.jit.trace(Encoder(), example).save(str(tmp_path / "encoder.jit"))
        torch.jit.trace(Decoder(), vae._encode(example)).save(str(tmp_path / "decoder.jit"))
    mean = torch.tensor(vae.config.latents_mean)
    std = torch.tensor(vae.config.latents_std)
    torch.save((mean, std), tmp_path / "mean_std.pt")

    jit = CosmosTokenizer.from_dir(tmp_path)
    ref = CosmosTokenizer.from_dir(tokenizer_dir)
    assert jit.source.startswith("torchscript:")
    video = torch.rand(1, 3, 17, 40, 56) * 2 - 1  # another size than traced
    torch.testing.assert_close(jit.encode(video), ref.encode(video), atol=1e-5, rtol=1e-5)
    latents = torch.randn(1, 16, 3, 5, 7)
    torch.testing.assert_close(jit.to_tokenizer_space(latents), ref.to_tokenizer_space(latents))
    torch.testing.assert_close(jit.decode(latents), ref.decode(latents), atol=1e-5, rtol=1e-5)


def test_tokenizer_dir_errors(tmp_path):
    with pytest.raises(TokenizerError, match="not found"):
        CosmosTokenizer.from_dir(tmp_path / "none")
    with pytest.raises(TokenizerError, match="neither"):
        CosmosTokenizer.from_dir(tmp_path)
    (tmp_path / "encoder.jit").write_bytes(b"junk")
    with pytest.raises(TokenizerError, match=r"mean_std\.pt is missing"):
        CosmosTokenizer.from_dir(tmp_path)


# --- decoding -----------------------------------------------------------------------------------------------


def test_decode_teacher_dir_end_to_end(teacher_dir, checkpoint, tokenizer_dir):
    world = decode_teacher_dir(teacher_dir, checkpoint, tokenizer_dir, device="cpu", progress=False)
    assert len(world) == int(0.2 * 6 * PIXELS_PER_VIEW)
    assert world.frame == "opencv" and world.sh_degree == 0
    assert world.info["views"] == [5, 0, 1, 2, 3, 4]
    assert world.opacities.min() > 0 and world.scales.max() <= 0.3

    unpruned = decode_teacher_dir(teacher_dir, checkpoint, tokenizer_dir, device="cpu", prune=0.0, progress=False)
    assert len(unpruned) == 6 * PIXELS_PER_VIEW
    # The kept Gaussians are exactly the most opaque 20 % of the unpruned set.
    top = torch.topk(unpruned.opacities, len(world)).values
    torch.testing.assert_close(world.opacities, top)
    # The first Gaussians belong to view 5, frame 0: the reference camera, identity pose in the output frame.
    first = unpruned.means[: (HEIGHT // 8) * (WIDTH // 8)].view(HEIGHT // 8, WIDTH // 8, 3)
    fx, fy, cx, cy = (v / 8 for v in INTRINSICS)
    u = fx * first[..., 0] / first[..., 2] + cx
    v = fy * first[..., 1] / first[..., 2] + cy
    torch.testing.assert_close(u, (torch.arange(WIDTH // 8) + 0.5).float().expand_as(u), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, (torch.arange(HEIGHT // 8) + 0.5).float()[:, None].expand_as(v), atol=1e-3, rtol=0)


def test_decoding_uses_the_teacher_latents_and_view_order(teacher_dir, checkpoint, tokenizer_dir):
    a = decode_teacher_dir(teacher_dir, checkpoint, tokenizer_dir, views=(0, 1), device="cpu", progress=False)
    b = decode_teacher_dir(teacher_dir, checkpoint, tokenizer_dir, views=(1, 0), device="cpu", progress=False)
    assert len(a) == len(b) == int(0.2 * 2 * PIXELS_PER_VIEW)
    assert not torch.allclose(a.means, b.means)  # the token sequence (and the reference camera) changed


def test_dynamic_decoding_gives_one_keyframe_per_target_time(tmp_path, teacher_dir, tokenizer_dir):
    torch.manual_seed(5)
    model = LyraDecoder(LyraDecoderConfig.small(dynamic=True))
    with torch.no_grad():  # trained-like time embeddings (zero-initialised ones would ignore time)
        model.patch_time_embed.proj.weight.normal_(0, 0.5)
        model.patch_time_embed_tgt.proj.weight.normal_(0, 0.5)
    world = decode_teacher_dir(teacher_dir, model, tokenizer_dir, device="cpu", progress=False, times=(0, 4, 8),
                               fps=4.0)
    assert isinstance(world, DynamicGaussianWorld)
    assert world.times == [0.0, 1.0, 2.0]
    assert [w.info["target_frame"] for w in world.worlds] == [0.0, 4.0, 8.0]
    assert not torch.allclose(world.worlds[0].means, world.worlds[2].means)
    with pytest.raises(ValueError, match="target frames"):
        decode_teacher_dir(teacher_dir, model, tokenizer_dir, device="cpu", progress=False, times=(0, 60))


def _causal_stand_in_tokenizer() -> CosmosTokenizer:
    """A causal 8x8x8 'encoder': latent frame k sums the pooled input frames 0 .. 8k (a constant clip's later
    latent frames therefore differ from its first, as with the real causal tokenizer)."""
    mix = torch.randn(16, 3, generator=torch.Generator().manual_seed(0))

    def encode(video: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.avg_pool3d(video, (1, 8, 8))  # (B, 3, F, h, w)
        summed = pooled.cumsum(dim=2)[:, :, ::8]  # latent frame k sees input frames 0 .. 8k
        return torch.einsum("oc,bcthw->bothw", mix, summed)

    return CosmosTokenizer(encode, None, torch.zeros(16, 1), torch.ones(16, 1), "causal stand-in")


def test_target_time_latent_is_one_encoded_frame_repeated_like_the_official_code(teacher_dir):
    from tqdm import tqdm

    from lyra_sim.lyra.pipeline import _Inputs

    tokenizer = _causal_stand_in_tokenizer()
    views = read_teacher_dir(teacher_dir).ordered((0, 1))
    with tqdm(disable=True) as bar:
        inputs = _Inputs(views, tokenizer, torch.device("cpu"), bar)
    target_frame = 6.0
    t = target_frame / (FRAMES - 1)
    # One frame of Lyra's time image [t, cos t, sin t] * 2 - 1, built here by hand, through the tokenizer.
    frame = (torch.tensor([t, np.cos(t), np.sin(t)], dtype=torch.float32) * 2 - 1)[None, :, None, None, None]
    expected = tokenizer.encode(frame.expand(1, 3, 1, HEIGHT, WIDTH).contiguous())
    latent_frames = (FRAMES - 1) // 8 + 1
    input_times, target = inputs.time_latents(target_frame)
    assert target.shape == input_times.shape == (1, 2, 16, latent_frames, HEIGHT // 8, WIDTH // 8)
    for view in range(2):
        for k in range(latent_frames):
            torch.testing.assert_close(target[0, view, :, k], expected[0, :, 0])
    # Encoding the whole constant clip instead (the old way) differs after latent frame 0.
    clip = tokenizer.encode(frame.expand(1, 3, FRAMES, HEIGHT, WIDTH).contiguous())
    torch.testing.assert_close(clip[0, :, 0], expected[0, :, 0])
    assert not torch.allclose(clip[0, :, 1], expected[0, :, 0], atol=1e-3)


def test_malicious_latent_in_teacher_dir_stops_decoding(tmp_path, checkpoint, tokenizer_dir):
    root = write_teacher_dir(tmp_path / "t")
    marker = tmp_path / "pwned"
    torch.save(_RunsCode(marker), root / "4" / "latent" / "scene.pkl")
    with pytest.raises(TeacherDataError, match=r"4/latent/scene\.pkl: refused"):
        decode_teacher_dir(root, checkpoint, tokenizer_dir, device="cpu", progress=False)
    out = tmp_path / "world.ply"
    code = main(["decode", str(root), "--checkpoint", str(checkpoint), "--tokenizer", str(tokenizer_dir),
                 "--device", "cpu", "-o", str(out)])
    assert code == 2 and not out.exists() and not marker.exists()


def test_cli_decode_writes_the_official_gaussians_orig_layout(tmp_path, teacher_dir, checkpoint, tokenizer_dir, capsys):
    out = tmp_path / "gaussians_0.ply"
    code = main(["decode", str(teacher_dir), "--checkpoint", str(checkpoint), "--tokenizer", str(tokenizer_dir),
                 "--device", "cpu", "--layout", "lyra", "-o", str(out)])
    assert code == 0 and str(out) in capsys.readouterr().out
    vertex = plyfile.PlyData.read(out)["vertex"]
    assert [p.name for p in vertex.properties] == ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity",
                                                   "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2",
                                                   "rot_3"]
    assert all(p.val_dtype in ("f4", "float32", "float") for p in vertex.properties)
    expected = decode_teacher_dir(teacher_dir, checkpoint, tokenizer_dir, device="cpu", progress=False)
    data = vertex.data
    # Pre-activation values as the official writer stores them.
    np.testing.assert_allclose(data["opacity"], torch.logit(expected.opacities).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(data["scale_0"], torch.log(expected.scales[:, 0]).numpy(), rtol=1e-5, atol=1e-5)
    rgb = expected.sh[:, 0] * 0.28209479 + 0.5
    np.testing.assert_allclose(data["f_dc_1"], ((rgb[:, 1] - 0.5) / 0.28209479).numpy(), rtol=1e-4, atol=1e-4)
    world = load_world(out)
    torch.testing.assert_close(world.means, expected.means)
    torch.testing.assert_close(world.quats, expected.quats, atol=1e-6, rtol=1e-6)
