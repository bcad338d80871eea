"""Issue 12 (hostile and broken inputs) and issue 11 item 7 (input sanity): one test per class of defect.

Each test builds the hostile input the issue describes and asserts the named LyraSimError (path in the
message), the bounded cost, or the correct value where the old code returned a silently wrong one.
"""

from __future__ import annotations

import errno
import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch
from conftest import random_world
from PIL import Image

from lyra_sim import GaussianWorld, load_world, save_world
from lyra_sim.errors import LyraSimError
from lyra_sim.generate import generate_world
from lyra_sim.inputs.images import InputError, load_depth, load_image, load_intrinsics, load_rgb
from lyra_sim.io import WorldFileError
from lyra_sim.io.atomic import OutputError, atomic_path
from lyra_sim.lyra.decoder import CheckpointError, LyraDecoder, LyraDecoderConfig
from lyra_sim.lyra.gen3c_dir import TeacherDataError, load_teacher_latent, read_teacher_dir
from lyra_sim.world import WorldError

ROOT = Path(__file__).resolve().parent.parent
K = [[30.0, 0, 16.0], [0, 30.0, 12.0], [0, 0, 1]]


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def _png_with_size(path: Path, width: int, height: int, rows: bytes | None = None) -> Path:
    """An RGB PNG whose IHDR says width x height (valid CRCs); its data is ``rows`` (zeros by default)."""
    ihdr = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    raw = rows if rows is not None else bytes(3 * width + 1) * height
    idat = _png_chunk(b"IDAT", zlib.compress(raw, 9))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + ihdr + idat + _png_chunk(b"IEND", b""))
    return path


# ------------------------------------------------------------------------------------------ 1. tiny files, huge costs
def test_ply_comment_end_header_cannot_hide_the_real_counts(tmp_path):
    good = save_world(random_world(n=20), tmp_path / "good.ply").read_bytes()
    lines = good.split(b"\n")
    lines.insert(2, b"comment end_header")
    bad = tmp_path / "hidden.ply"
    bad.write_bytes(b"\n".join(lines).replace(b"element vertex 20", b"element vertex 4000000000"))
    start = time.perf_counter()
    with pytest.raises(WorldFileError, match=rf"{bad}.*4000000000 vertex"):
        load_world(bad)
    assert time.perf_counter() - start < 1.0


def test_ply_unused_list_element_with_a_million_rows_is_refused_fast(tmp_path):
    good = save_world(random_world(n=5), tmp_path / "good.ply").read_bytes()
    rows = 1_000_000
    bad = tmp_path / "faces.ply"
    bad.write_bytes(good.replace(b"end_header\n", f"element face {rows}\nproperty list uchar int vertex_indices\n"
                                 "end_header\n".encode()) + bytes(rows))
    start = time.perf_counter()
    with pytest.raises(WorldFileError, match=rf"{bad}.*'face' has {rows} rows"):
        load_world(bad)
    assert time.perf_counter() - start < 1.0


def test_usd_references_that_double_each_level_are_refused_before_composing(tmp_path):
    levels = ['#usda 1.0\n', 'def "L0"\n{\n    def "leaf"\n    {\n    }\n}\n']
    for i in range(1, 22):  # 2^21 composed prims from a few KB
        levels.append(f'def "L{i}"\n{{\n    def "a" (\n        references = </L{i - 1}>\n    )\n    {{\n    }}\n'
                      f'    def "b" (\n        references = </L{i - 1}>\n    )\n    {{\n    }}\n}}\n')
    bomb = tmp_path / "bomb.usda"
    bomb.write_text("\n".join(levels))
    start = time.perf_counter()
    with pytest.raises(LyraSimError, match=rf"{bomb}.*more than 100,000 prims"):
        load_world(bomb)
    assert time.perf_counter() - start < 2.0


def test_huge_png_is_downscaled_to_the_pixel_budget_with_a_note(tmp_path):
    big = _png_with_size(tmp_path / "big.png", 6000, 6000)
    assert big.stat().st_size < 200_000
    loaded = load_image(big, max_pixels=1_000_000)
    h, w = loaded.rgb.shape[:2]
    assert h * w <= 1_000_000 and (w, h) == (1000, 1000) and loaded.source_size == (6000, 6000)
    assert "downscaled from 6000x6000 to 1000x1000" in loaded.notes[0] and str(big) in loaded.notes[0]


def test_generate_world_downscales_and_keeps_intrinsics_and_depth_consistent(tmp_path):
    rgb = np.zeros((120, 160, 3), np.uint8)
    depth = np.full((120, 160), 2.0)
    depth[:, 80:] = 4.0  # right half farther: must stay on the right after downscaling
    world = generate_world(rgb, depth=depth, intrinsics=[[100.0, 0, 80], [0, 100.0, 60], [0, 0, 1]], max_pixels=4800)
    assert world.info["image_size"] == [80, 60]
    np.testing.assert_allclose(world.info["intrinsics"], [[50, 0, 40], [0, 50, 30], [0, 0, 1]])
    assert "downscaled from 160x120 to 80x60" in world.info["input_notes"][0]
    assert int(world.observed.sum()) <= 4800  # one observed Gaussian per input pixel; completion adds the rest
    right = (world.means[:, 0] > 0.05 * world.means[:, 2]) & world.observed
    assert torch.allclose(world.means[right, 2], torch.tensor(4.0), atol=1e-4)


def test_absurd_png_is_refused_before_decoding(tmp_path):
    bomb = _png_with_size(tmp_path / "bomb.png", 50000, 50000, rows=b"")  # PIL's DecompressionBombError
    with pytest.raises(InputError, match=rf"{bomb}: too large"):
        load_rgb(bomb)
    over_our_limit = _png_with_size(tmp_path / "big.png", 10000, 6000, rows=b"")  # 60 MP: under PIL's limit
    with pytest.raises(InputError, match=rf"{over_our_limit}: 10000x6000 pixels \(60 MP\) is too large"):
        load_rgb(over_our_limit)


class _CallsNdarray:
    def __reduce__(self):
        return (np.ndarray, ((40000, 40000),))


def test_latent_pickle_cannot_call_ndarray_to_allocate(tmp_path):
    path = tmp_path / "alloc.pkl"
    torch.save(_CallsNdarray(), path)
    assert path.stat().st_size < 2000
    with pytest.raises(TeacherDataError, match=rf"{path}.*refused"):
        load_teacher_latent(path)


def test_latent_larger_than_its_file_is_refused(tmp_path):
    path = tmp_path / "stride0.pkl"
    torch.save(torch.zeros(1).expand(1, 16, 64, 64, 64), path)  # 16 MB claimed by a 1.5 KB file
    with pytest.raises(TeacherDataError, match=rf"{path}.*claims shape"):
        load_teacher_latent(path)
    real = tmp_path / "real.pkl"
    torch.save(np.ones((1, 16, 2, 4, 4), np.float32), real)
    assert load_teacher_latent(real).shape == (16, 2, 4, 4)


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    model = LyraDecoder(LyraDecoderConfig.small(width=32, depth=2, num_heads=2, headdim=8, d_state=8))
    return model.official_checkpoint()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"depth": 100000}, r"depth must be an integer in \[1, 256\], got 100000"),
        ({"bogus_key": 1}, r"unknown keys \['bogus_key'\]"),
        ({"width": "64"}, "width must be an integer"),
        ({"dynamic": "yes"}, "dynamic must be true or false"),
    ],
)
def test_checkpoint_config_is_validated(tmp_path, small_checkpoint, change, message):
    payload = {"module": small_checkpoint["module"], "config": {**small_checkpoint["config"], **change}}
    path = tmp_path / "bad.pt"
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"{path}.*{message}"):
        LyraDecoder.from_checkpoint(path)


def test_checkpoint_with_nan_weights_is_refused(tmp_path, small_checkpoint):
    state = {k: v.clone() for k, v in small_checkpoint["module"].items()}
    name = next(k for k, v in state.items() if v.is_floating_point())
    state[name].view(-1)[0] = float("nan")
    path = tmp_path / "nan.pt"
    torch.save({"module": state, "config": small_checkpoint["config"]}, path)
    with pytest.raises(CheckpointError, match=rf"{path}.*NaN or infinite.*{name}"):
        LyraDecoder.from_checkpoint(path)
    good = tmp_path / "good.pt"
    torch.save(small_checkpoint, good)
    assert LyraDecoder.from_checkpoint(good).config.depth == 2


def test_depth_npy_whose_header_claims_75_gib_is_refused(tmp_path):
    path = tmp_path / "depth.npy"
    np.save(path, np.ones((24, 32), np.float32))
    data = path.read_bytes().replace(b"(24, 32)", b"(140000, 140000)")
    path.write_bytes(data)
    with pytest.raises(InputError, match=rf"{path}.*header claims shape \(140000, 140000\)"):
        load_depth(path, (24, 32))


# ------------------------------------------------------------------------------------ 3. one line naming the input
@pytest.mark.parametrize("content", [b"", b"not usd at all\x00\x01", b"#usda 1.0\ndef \"x\" {{{\n"])
def test_unreadable_usd_is_a_named_error(tmp_path, content):
    path = tmp_path / "bad.usda"
    path.write_bytes(content)
    with pytest.raises(LyraSimError, match=str(path)):
        load_world(path)


def test_deflated_usdz_is_a_named_error(tmp_path):
    import zipfile

    path = tmp_path / "deflated.usdz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("w.usda", "#usda 1.0\n" * 50)
    with pytest.raises(LyraSimError, match=str(path)):
        load_world(path)


def test_usd_time_codes_per_second_zero_is_a_named_error(tmp_path):
    path = tmp_path / "tcps.usda"
    path.write_text(textwrap.dedent("""\
        #usda 1.0
        (
            timeCodesPerSecond = 0
        )
        def ParticleField3DGaussianSplat "G"
        {
            point3f[] positions.timeSamples = { 0: [(0, 0, 1)], 1: [(0, 0, 2)] }
        }
        """))
    with pytest.raises(LyraSimError, match=rf"{path}.*timeCodesPerSecond"):
        load_world(path)


def test_empty_npy_and_dict_k_and_deep_json_are_named(tmp_path):
    empty = tmp_path / "empty.npy"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=str(empty)):
        load_depth(empty, (2, 2))
    with pytest.raises(InputError, match="3x3 matrix"):
        load_intrinsics({"K": {"a": 1}}, 32, 24)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(InputError, match=rf"{deep}.*nested too deeply"):
        load_intrinsics(deep, 32, 24)
    huge = tmp_path / "huge.json"
    with huge.open("wb") as f:
        f.truncate(20 << 20)
    with pytest.raises(InputError, match=rf"{huge}.*limited"):
        load_intrinsics(huge, 32, 24)


def test_native_file_with_deep_info_is_named_and_f8_tensors_load(tmp_path):
    from safetensors.torch import save_file

    path = save_world(random_world(n=4), tmp_path / "w.safetensors")
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata()
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - safe_open has no __iter__
    deep = tmp_path / "deep.safetensors"
    save_file(tensors, str(deep), metadata={**meta, "info": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(WorldFileError, match=rf"{deep}.*nested too deeply"):
        load_world(deep)
    f8 = tmp_path / "f8.safetensors"  # float8 has no isfinite in torch: read as float32, not NotImplementedError
    means8 = tensors["k0.means"].to(torch.float8_e4m3fn)
    save_file({**tensors, "k0.means": means8}, str(f8), metadata=meta)
    assert torch.equal(load_world(f8).means, means8.float())


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_full_or_read_only_disk_is_one_named_error(tmp_path, monkeypatch, code):
    target = tmp_path / "out.ply"

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OutputError, match=rf"{target}: cannot write \({os.strerror(code)}\)"):
        save_world(random_world(n=3), target)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ 4. silently wrong results
def test_quaternions_with_huge_components_normalise_in_float64(tmp_path):
    quats = torch.tensor([[3e38, 3e38, 0.0, 0.0], [1e-30, 0.0, 0.0, 1e-30]], dtype=torch.float32)
    world = GaussianWorld(torch.zeros(2, 3), quats, torch.ones(2, 3), torch.ones(2), torch.zeros(2, 1, 3))
    expected = torch.tensor([[0.70710678, 0.70710678, 0, 0], [0.70710678, 0, 0, 0.70710678]])
    torch.testing.assert_close(world.quats, expected)
    arr = plyfile.PlyData.read(str(save_world(random_world(n=2), tmp_path / "q.ply")))["vertex"].data.copy()
    arr["rot_0"], arr["rot_1"], arr["rot_2"], arr["rot_3"] = 3e38, 3e38, 0, 0
    path = tmp_path / "huge_q.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")]).write(str(path))
    torch.testing.assert_close(load_world(path).quats, expected[:1].expand(2, 4))


def test_transformed_validates_its_result():
    world = random_world(n=3)
    with pytest.raises(WorldError, match="means"):
        world.transformed(translation=[1e39, 0, 0])


def test_projective_usd_transform_is_refused(tmp_path):
    path = tmp_path / "projective.usda"
    path.write_text(textwrap.dedent("""\
        #usda 1.0
        def ParticleField3DGaussianSplat "G"
        {
            point3f[] positions = [(0, 0, 1)]
            matrix4d xformOp:transform = ( (1, 0, 0, 0.5), (0, 1, 0, 0), (0, 0, 1, 0), (0, 0, 0, 1) )
            uniform token[] xformOpOrder = ["xformOp:transform"]
        }
        """))
    with pytest.raises(LyraSimError, match=rf"{path}.*projective"):
        load_world(path)


def test_ascii_ply_with_more_rows_than_declared_is_refused(tmp_path):
    world_ply = save_world(random_world(n=4), tmp_path / "w.ply")
    ply = plyfile.PlyData.read(str(world_ply))
    ascii_path = tmp_path / "ascii.ply"
    plyfile.PlyData(ply.elements, text=True).write(str(ascii_path))
    assert len(load_world(ascii_path)) == 4
    text = ascii_path.read_bytes().replace(b"element vertex 4", b"element vertex 3")
    ascii_path.write_bytes(text)
    with pytest.raises(WorldFileError, match=rf"{ascii_path}.*3 vertex.*4 rows"):
        load_world(ascii_path)


def test_16_bit_grayscale_png_is_scaled_not_saturated(tmp_path):
    path = tmp_path / "gray16.png"
    Image.fromarray(np.array([[0, 30000], [65535, 1000]], np.uint16)).save(path)
    rgb = load_rgb(path)
    np.testing.assert_allclose(rgb[..., 0], np.array([[0, 30000], [65535, 1000]]) / 65535, atol=1e-6)
    assert np.array_equal(rgb[..., 0], rgb[..., 2])


# ------------------------------------------------------------------------------------------ 5. files outside the input
def _splat_stage(path: Path, z: float) -> Path:
    path.write_text(f'#usda 1.0\n(\n    defaultPrim = "G"\n)\ndef ParticleField3DGaussianSplat "G"\n{{\n'
                    f"    point3f[] positions = [(0, 0, {z})]\n}}\n")
    return path


@pytest.mark.parametrize("arc", ["references", "payload", "subLayers"])
def test_usd_arcs_to_files_outside_the_stage_folder_are_refused(tmp_path, arc):
    outside = _splat_stage(tmp_path / "outside.usda", 7.0)
    stage_dir = tmp_path / "stage"
    stage_dir.mkdir()
    path = stage_dir / "scene.usda"
    for asset in ("../outside.usda", str(outside)):
        if arc == "subLayers":
            path.write_text(f"#usda 1.0\n(\n    subLayers = [@{asset}@]\n)\n")
        else:
            path.write_text(f'#usda 1.0\ndef "W" (\n    {arc} = @{asset}@\n)\n{{\n}}\n')
        with pytest.raises(LyraSimError, match=rf"{path}.*outside the stage's folder"):
            load_world(path)
        from usd_exporters import import_world

        world = import_world(path, allow_external_composition=True)  # the explicit opt-in reads it
        assert float(world.means.norm()) == 7.0  # the Gaussian of the other file (axes: Y-up by default)


def test_usd_reference_inside_the_folder_still_composes(tmp_path):
    _splat_stage(tmp_path / "part.usda", 3.0)
    path = tmp_path / "scene.usda"
    path.write_text('#usda 1.0\ndef "W" (\n    references = @./part.usda@\n)\n{\n}\n')
    assert float(load_world(path).means.norm()) == 3.0


def test_teacher_dir_symlink_leaving_the_folder_is_refused(tmp_path):
    from lyra_fixtures import write_teacher_dir

    root = write_teacher_dir(tmp_path / "teacher")
    secret = tmp_path / "elsewhere.pkl"
    latent = root / "0" / "latent" / "scene.pkl"
    secret.write_bytes(latent.read_bytes())
    latent.unlink()
    latent.symlink_to(secret)
    with pytest.raises(TeacherDataError, match=rf"{latent}.*outside the teacher directory"):
        read_teacher_dir(root)


# ------------------------------------------------------------------------------------------ 6. interrupted writes
_SIGTERM_SCRIPT = """
import sys, time
from pathlib import Path
out = Path(sys.argv[2])
if sys.argv[1] == "atomic":
    from lyra_sim.io.atomic import atomic_path
    with atomic_path(out / "world.ply") as tmp:
        tmp.write_bytes(b"partial")
        print("ready", flush=True)
        time.sleep(60)
else:
    import usd_exporters.stage_io as stage_io
    from conftest import random_world
    def slow(stage, *args):
        stage.DefinePrim("/World")
        stage.GetRootLayer().Save()
        print("ready", flush=True)
        time.sleep(60)
    stage_io._author_stage = slow
    stage_io.export_world(random_world(n=3), out / "world.usdz")
"""


@pytest.mark.parametrize("writer", ["atomic", "usd"])
def test_sigterm_leaves_no_temporary_files(tmp_path, writer):
    out = tmp_path / "out"
    out.mkdir()
    paths = [str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    proc = subprocess.Popen([sys.executable, "-c", _SIGTERM_SCRIPT, writer, str(out)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert any(out.iterdir())  # the temporary exists while writing
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM  # still ends "terminated by SIGTERM"
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(out.iterdir()) == []


def test_atomic_path_cleans_up_and_names_the_target_on_error(tmp_path):
    target = tmp_path / "x.bin"
    with pytest.raises(OutputError, match=str(target)), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ issue 11.7: input sanity
def test_millimetre_depth_given_as_metres_is_refused_naming_the_unit(tmp_path):
    path = tmp_path / "mm.npy"
    np.save(path, np.full((24, 32), 1500.0, np.float32))
    with pytest.raises(InputError, match=rf"{path}.*median depth 1500 m.*millimetres"):
        load_depth(path, (24, 32))
    np.testing.assert_allclose(load_depth(path, (24, 32), depth_scale=1000), 1.5)


def test_depth_scale_is_units_per_metre(tmp_path):
    path = tmp_path / "tum.png"
    Image.fromarray(np.full((24, 32), 5000 * 2, np.uint16)).save(path)  # TUM RGB-D: 5000 units per metre
    np.testing.assert_allclose(load_depth(path, (24, 32), depth_scale=5000), 2.0)
    Image.fromarray(np.full((24, 32), 2500, np.uint16)).save(path)
    np.testing.assert_allclose(load_depth(path, (24, 32)), 2.5)  # 16-bit PNG default: millimetres
    with pytest.raises(InputError, match="depth_scale"):
        load_depth(path, (24, 32), depth_scale=0)


def test_8_bit_depth_png_is_refused(tmp_path):
    path = tmp_path / "depth8.png"
    Image.fromarray(np.full((24, 32), 100, np.uint8)).save(path)
    with pytest.raises(InputError, match=rf"{path}.*8-bit.*cannot hold metric depth"):
        load_depth(path, (24, 32))


def test_exif_orientation_is_applied(tmp_path):
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)  # left half red as stored
    img = Image.fromarray(pixels)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    path = tmp_path / "rotated.jpg"
    img.save(path, exif=exif, quality=95)
    rgb = load_rgb(path)
    assert rgb.shape == (40, 20, 3)  # displayed upright: portrait
    assert rgb[5, 10, 0] > 0.8 and rgb[35, 10, 0] < 0.2  # the stored left half is now on top


def test_gray_palette_and_rgba_images_convert_and_alpha_marks_invalid_pixels(tmp_path):
    Image.fromarray(np.full((4, 6), 128, np.uint8)).save(tmp_path / "gray.png")
    np.testing.assert_allclose(load_rgb(tmp_path / "gray.png"), 128 / 255)
    Image.fromarray(np.full((4, 6, 3), 200, np.uint8)).convert("P").save(tmp_path / "pal.png")
    assert load_rgb(tmp_path / "pal.png").shape == (4, 6, 3)
    rgba = np.full((4, 6, 4), 255, np.uint8)
    rgba[:, :2, 3] = 0  # two transparent columns
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert loaded.valid is not None and not loaded.valid[:, :2].any() and loaded.valid[:, 2:].all()
    assert "8 transparent pixels" in loaded.notes[0]
    depth = load_depth(np.ones((4, 6)), (4, 6), valid=loaded.valid)
    assert (depth[:, :2] == 0).all() and (depth[:, 2:] == 1).all()


def test_cli_generate_takes_depth_scale_and_reports_downscaling(tmp_path, capsys):
    from lyra_sim.cli import main

    Image.fromarray(np.zeros((60, 80, 3), np.uint8)).save(tmp_path / "rgb.png")
    Image.fromarray(np.full((60, 80), 10000, np.uint16)).save(tmp_path / "tum.png")  # 2 m at 5000 units/m
    out = tmp_path / "w.ply"
    assert main(["generate", str(tmp_path / "rgb.png"), "--depth", str(tmp_path / "tum.png"), "--depth-scale", "5000",
                 "--max-pixels", "1200", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "downscaled from 80x60 to 40x30" in printed and f"to {out}" in printed
    assert torch.allclose(load_world(out).means[:, 2], torch.tensor(2.0), atol=1e-4)
    np.save(tmp_path / "mm.npy", np.full((60, 80), 2000.0, np.float32))
    assert main(["generate", str(tmp_path / "rgb.png"), "--depth", str(tmp_path / "mm.npy"), "-o", str(out)]) == 2
    assert "millimetres" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ camera paths and frame sets
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"K": K, "world_to_cam": np.eye(4).tolist(), "width": 100000, "height": 100000}, "exceed the limit"),
        ({"K": {"a": 1}, "world_to_cam": np.eye(4).tolist()}, "arrays of numbers"),
        ({"K": K, "world_to_cam": np.eye(4).tolist(), "width": 0}, "positive integers"),
        ({"world_to_cam": np.eye(4).tolist()}, "missing 'K'"),
    ],
)
def test_hostile_camera_path_files_are_named(tmp_path, content, message):
    from lyra_sim.camera_paths import camera_path

    path = tmp_path / "cams.json"
    path.write_text(__import__("json").dumps(content))
    with pytest.raises(LyraSimError, match=rf"{path}.*{message}"):
        camera_path(str(path), torch.tensor(K), 32, 24, 4, 1.0)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LyraSimError, match=rf"{path}.*nested too deeply"):
        camera_path(str(path), torch.tensor(K), 32, 24, 4, 1.0)


def test_world_info_with_zero_image_size_is_a_named_error_not_zero_division():
    from lyra_sim.camera_paths import render_intrinsics

    world = random_world(n=3)
    world.info = {"intrinsics": K, "image_size": [0, 0]}
    with pytest.raises(LyraSimError, match="image_size"):
        render_intrinsics(world, 32, 24)


def test_render_writes_its_frame_set_atomically(tmp_path, monkeypatch):
    import lyra_sim.media as media
    from lyra_sim.camera import Camera

    world = random_world(n=30)
    cams = Camera(torch.tensor(K).expand(3, 3, 3), torch.eye(4).expand(3, 4, 4), 32, 24)
    out = tmp_path / "render"
    written = media.render_path(world, cams, out, mp4=False)
    assert sorted(p.name for p in out.iterdir()) == ["contact_sheet.png", "frame_0000.png", "frame_0001.png",
                                                     "frame_0002.png"]
    assert written["frames"][2] == str(out / "frame_0002.png")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    real_save_png, calls = media.save_png, []

    def disk_full_on_third(image, path):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save_png(image, path)

    monkeypatch.setattr(media, "save_png", disk_full_on_third)
    with pytest.raises(OutputError, match=rf"{out}.*No space left"):
        media.render_path(random_world(n=30, seed=5), cams, out, mp4=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old set, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["render"]  # no partial folder left


def test_usdc_whose_token_count_lies_is_refused_before_the_crate_reader_allocates(tmp_path):
    from usd_exporters import export_world

    path = export_world(random_world(n=5).with_z_up_axes(), tmp_path / "w.usdc")
    data = bytearray(path.read_bytes())
    (toc,) = struct.unpack_from("<q", data, 16)
    (count,) = struct.unpack_from("<Q", data, toc)
    sections = [struct.unpack_from("<16sqq", data, toc + 8 + 32 * i) for i in range(count)]
    start = next(s for name, s, _ in sections if name.rstrip(b"\0") == b"TOKENS")
    struct.pack_into("<Q", data, start, 67_108_907)  # the 512 MB claim one flipped bit made in the fuzzer
    path.write_bytes(bytes(data))
    with pytest.raises(LyraSimError, match=rf"{path}.*claims 67108907 tokens"):
        load_world(path)


def test_ply_info_comment_that_is_not_json_or_nested_too_deeply_is_ignored():
    from lyra_sim.io.header_metadata import info_from_comments

    assert info_from_comments(["lyra_sim_info " + "[" * 100_000]) == {}
    assert info_from_comments(["lyra_sim_info {not json"]) == {}
    assert info_from_comments(['lyra_sim_info {"metric": true}']) == {"metric": True}
