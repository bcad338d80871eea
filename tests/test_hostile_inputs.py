"""Issue 12 (hostile and broken inputs) and issue 11 item 7 (input sanity): one test per class of defect.

Each test builds the hostile input the issue describes and asserts the named LyraSimError (path in the
message), the bounded cost, or the correct value where the old code returned a silently wrong one.
"""

from __future__ import annotations

import errno
import os
import re
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
from fuzzing import capture_images, make_capture_template  # the fuzzer's valid capture folders
from PIL import Image

from lyra_sim import GaussianWorld, load_world, save_world
from lyra_sim.errors import LyraSimError
from lyra_sim.generate import generate_world
from lyra_sim.inputs.images import InputError, load_depth, load_image, load_intrinsics, load_rgb
from lyra_sim.inputs.sequence import read_sequence
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
    from lyra_sim.views.paths import camera_path

    path = tmp_path / "cams.json"
    path.write_text(__import__("json").dumps(content))
    with pytest.raises(LyraSimError, match=rf"{path}.*{message}"):
        camera_path(str(path), torch.tensor(K), 32, 24, 4, 1.0)
    path.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(LyraSimError, match=rf"{path}.*nested too deeply"):
        camera_path(str(path), torch.tensor(K), 32, 24, 4, 1.0)


def test_world_info_with_zero_image_size_is_a_named_error_not_zero_division():
    from lyra_sim.views.paths import render_intrinsics

    world = random_world(n=3)
    world.info = {"intrinsics": K, "image_size": [0, 0]}
    with pytest.raises(LyraSimError, match="image_size"):
        render_intrinsics(world, 32, 24)


def test_render_writes_its_frame_set_atomically(tmp_path, monkeypatch):
    import lyra_sim.views.media as media
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


# ------------------------------------------------------------------------------------------ issue 22: round two
SECRET = "SECRET-LINE-DO-NOT-ECHO"


@pytest.fixture(scope="module")
def capture_sources(tmp_path_factory):
    """Valid 3-frame 32x24 captures in both layouts, and an outside folder a hostile capture could reach for."""
    root = tmp_path_factory.mktemp("captures")
    sources = {layout: make_capture_template(root / layout, layout) for layout in ("tum", "plain")}
    outside = make_capture_template(root / "outside", "plain")
    (outside / "secret.txt").write_text(f"{SECRET} 1 2 3\n")
    return sources, outside


def _copy_capture(capture_sources, tmp_path, layout):
    import shutil

    return Path(shutil.copytree(capture_sources[0][layout], tmp_path / f"cap_{layout}", symlinks=True))


def _escape_entry(cap, outside, kind):
    if kind in ("dotdot", "absolute"):
        lines = (cap / "rgb.txt").read_text().splitlines()
        entry = "../outside/rgb/0000.png" if kind == "dotdot" else str(outside / "rgb" / "0000.png")
        lines[1] = f"{lines[1].split()[0]} {entry}"
        (cap / "rgb.txt").write_text("\n".join(lines) + "\n")
    elif kind == "frame_link":
        (cap / "rgb" / "0000.png").unlink()
        (cap / "rgb" / "0000.png").symlink_to(outside / "rgb" / "0000.png")
    elif kind == "intrinsics_link":
        (cap / "intrinsics.json").unlink()
        (cap / "intrinsics.json").symlink_to(outside / "intrinsics.json")
    elif kind == "list_link":
        (cap / "rgb.txt").unlink()
        (cap / "rgb.txt").symlink_to(outside / "secret.txt")


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "frame_link", "intrinsics_link", "list_link"])
def test_capture_files_outside_the_folder_are_refused_without_echoing_them(capture_sources, tmp_path, kind):
    """Class 1: every path a capture names resolves inside it (symlinks followed); errors never echo outside bytes."""
    cap = _copy_capture(capture_sources, tmp_path, "tum")
    read_sequence(cap)  # the untouched copy loads
    _escape_entry(cap, capture_sources[1], kind)
    with pytest.raises(InputError, match="outside the folder") as caught:
        read_sequence(cap)
    assert str(cap) in str(caught.value) and SECRET not in str(caught.value)


def test_symlinked_frame_folder_is_refused(capture_sources, tmp_path):
    import shutil

    cap = _copy_capture(capture_sources, tmp_path, "plain")
    shutil.rmtree(cap / "rgb")
    (cap / "rgb").symlink_to(capture_sources[1] / "rgb")
    with pytest.raises(InputError, match=r"rgb/.*outside the folder"):
        read_sequence(cap)


def test_tum_pairing_matches_the_nearest_unused_depth_frame_like_a_brute_force_search(tmp_path):
    """Class 2: the sorted-search pairing gives what the quadratic nearest-unused search gave."""
    from lyra_sim.inputs.sequence import MAX_PAIR_GAP_S, _tum_pairs

    rng = np.random.default_rng(3)
    rgb_t = np.sort(rng.uniform(0, 20, 600)).round(4)
    depth_t = rng.permutation(np.concatenate([rgb_t[::2] + rng.uniform(-0.03, 0.03, 300), rng.uniform(0, 20, 200)]))
    depth_t = depth_t.round(4)
    (tmp_path / "rgb.txt").write_text("".join(f"{t} rgb/{i}.png\n" for i, t in enumerate(rgb_t)))
    (tmp_path / "depth.txt").write_text("".join(f"{t} depth/{j}.png\n" for j, t in enumerate(depth_t)))
    expected, used = [], set()
    for i, t in enumerate(rgb_t):
        gaps = np.abs(depth_t - t)
        j = int(np.flatnonzero(gaps == gaps.min())[0])
        if gaps[j] <= MAX_PAIR_GAP_S and j not in used:
            used.add(j)
            expected.append((t, f"rgb/{i}.png", f"depth/{j}.png"))
    assert _tum_pairs(tmp_path) == expected


def test_capture_frame_count_and_list_length_are_bounded_before_any_image_is_read(capture_sources, tmp_path,
                                                                                    monkeypatch):
    """Class 2: too many frames (or list lines) is one clear error saying how to proceed."""
    import lyra_sim.inputs.sequence as sequence

    cap = _copy_capture(capture_sources, tmp_path, "tum")
    (cap / "rgb" / "0000.png").write_bytes(b"not decoded: the frame count is checked first")
    with pytest.raises(InputError, match=r"frames to fuse: 3 is more than the limit of 2.*--frame-limit"):
        read_sequence(cap, frame_limit=2)
    monkeypatch.setattr(sequence, "MAX_LIST_ENTRIES", 2)
    with pytest.raises(InputError, match=r"rgb.txt: lines: 4 is more than the limit of 2"):
        read_sequence(cap)


@pytest.mark.parametrize("change, message", [
    ("depth_scale {}", "depth_scale: expected a positive number"),
    ("depth_scale 400 digits", "depth_scale: expected a positive number"),
    ("binary rgb.txt", "rgb.txt is not a text file"),
    ("pose {}", r"poses.json\[1\]: expected a 4x4 matrix of numbers"),
    ("pose bottom row", r"bottom row must be \(0, 0, 0, 1\)"),
    ("duplicate stamps", "two poses share the timestamp"),
])
def test_bad_capture_fields_are_named_errors(capture_sources, tmp_path, change, message):
    """Class 3: each of these was a TypeError, OverflowError, Slerp ValueError or UnicodeDecodeError."""
    layout = "plain" if change.startswith("pose ") else "tum"
    cap = _copy_capture(capture_sources, tmp_path, layout)
    poses = cap / ("poses.json" if layout == "plain" else "groundtruth.txt")
    intrinsics = '{"fx": 30, "fy": 30, "cx": 16, "cy": 12, "depth_scale": %s}'
    if change == "depth_scale {}":
        (cap / "intrinsics.json").write_text(intrinsics % "{}")
    elif change == "depth_scale 400 digits":
        (cap / "intrinsics.json").write_text(intrinsics % ("9" * 400))
    elif change == "binary rgb.txt":
        (cap / "rgb.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe")
    elif change == "pose {}":
        rows = __import__("json").loads(poses.read_text())
        rows[1] = {}
        poses.write_text(__import__("json").dumps(rows))
    elif change == "pose bottom row":
        rows = __import__("json").loads(poses.read_text())
        rows[1][3] = [0.0, 0.0, 0.5, 1.0]
        poses.write_text(__import__("json").dumps(rows))
    else:
        lines = poses.read_text().splitlines()
        poses.write_text("\n".join([lines[0], lines[0], *lines[2:]]) + "\n")
    with pytest.raises(InputError, match=message) as caught:
        read_sequence(cap, poses=poses)
    assert str(cap) in str(caught.value)


def test_all_invalid_depth_and_a_single_frame_capture(capture_sources, tmp_path, capsys):
    """Class 3: depth that is all 65535 (no return) is named before odometry; one frame without poses generates a
    world and prints its summary."""
    from lyra_sim.capture.pipeline import reconstruct_sequence
    from lyra_sim.cli import main

    cap = _copy_capture(capture_sources, tmp_path, "tum")
    (cap / "groundtruth.txt").unlink()
    capture_images(cap, ["0000", "0001", "0002"], 65535)
    with pytest.raises(InputError, match=rf"{cap}: frame 0000 has no valid depth within 5.0 m"):
        reconstruct_sequence(read_sequence(cap), progress=False)
    one = _copy_capture(capture_sources, tmp_path, "plain")
    (one / "poses.json").unlink()
    (one / "timestamps.txt").unlink(missing_ok=True)
    for sub in ("rgb", "depth"):
        for p in sorted((one / sub).iterdir())[1:]:
            p.unlink()
    assert main(["generate", str(one), "-o", str(tmp_path / "one.ply")]) == 0
    out = capsys.readouterr().out
    assert "1 frames; poses: one frame" in out and (tmp_path / "one.ply").is_file()


def _spz_v4_bomb(path: Path, count: int) -> Path:
    import zstandard

    sizes = [9 * count, count, 3 * count, 3 * count, 4 * count]
    parts = [zstandard.ZstdCompressor(level=19).compress(bytes(1 << 16)) for _ in sizes]
    head = struct.pack("<IIIBBBBI", 0x5053474E, 4, count, 0, 12, 0, len(sizes), 32) + bytes(12)
    table = b"".join(struct.pack("<QQ", len(c), size) for c, size in zip(parts, sizes, strict=True))
    path.write_bytes(head + table + b"".join(parts))
    return path


def test_spz_bombs_trailing_data_and_corrupt_zstd_are_refused(tmp_path):
    """Class 4: decompression bounded by the header (streamed), trailing data refused, corrupt zstd named."""
    import gzip

    world = random_world(n=40)
    v3, v4 = save_world(world, tmp_path / "v3.spz"), save_world(world, tmp_path / "v4.spz", version=4)
    assert len(load_world(v3)) == len(load_world(v4)) == 40
    _spz_v4_bomb(tmp_path / "bomb.spz", 200_000_000)  # 12 KB that would inflate to 4 GB
    zero = tmp_path / "zero.spz"
    zero.write_bytes(gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 3, 0, 0, 12, 0, 0) + bytes(16 << 20)))
    trailing = tmp_path / "trailing.spz"
    trailing.write_bytes(gzip.compress(gzip.decompress(v3.read_bytes()) + bytes(1 << 20)))
    corrupt = bytearray(v4.read_bytes())
    toc = struct.unpack_from("<I", corrupt, 16)[0]
    corrupt[toc + 16 * 5: toc + 16 * 5 + 12] = b"\xff" * 12  # the first stream's zstd frame header
    (tmp_path / "corrupt.spz").write_bytes(bytes(corrupt))
    for name, message in [("bomb", "more than a .*-byte file can hold"), ("zero", "0 Gaussians"),
                          ("trailing", "more than the .* bytes its header declares"), ("corrupt", "corrupt zstd")]:
        start = time.perf_counter()
        with pytest.raises(WorldFileError, match=rf"{tmp_path / name}.spz.*{message}"):
            load_world(tmp_path / f"{name}.spz")
        assert time.perf_counter() - start < 5.0  # was: 4 GB inflated, or 256 MB of trailing zeros


def test_huge_splat_is_refused_by_size_and_chunked_reading_matches_one_read(tmp_path, monkeypatch):
    """Class 5: the size is checked before reading; reading in chunks gives exactly what one read gives."""
    import lyra_sim.io.splat as splat

    huge = tmp_path / "huge.splat"
    with huge.open("wb") as f:
        f.truncate(512 << 20)  # sparse: nothing is written
    with pytest.raises(WorldFileError, match=rf"{huge}: 536,870,912 bytes .* over the .splat limit"):
        load_world(huge)
    rng = np.random.default_rng(0)
    rows = np.zeros(37, dtype=splat.RECORD)
    rows["position"], rows["scale"] = rng.normal(size=(37, 3)), rng.uniform(0.01, 0.1, (37, 3))
    rows["rgba"], rows["rotation"] = rng.integers(0, 256, (37, 4)), rng.integers(0, 256, (37, 4))
    rows["rotation"][:, 0] = 255
    path = tmp_path / "w.splat"
    path.write_bytes(rows.tobytes())
    whole = load_world(path)
    monkeypatch.setattr(splat, "_CHUNK_RECORDS", 5)
    chunked = load_world(path)
    np.testing.assert_array_equal(chunked.means.numpy(), rows["position"])
    for name in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=0, atol=0)
    monkeypatch.setattr(splat, "MAX_SPLAT_BYTES", 32 * 36)
    with pytest.raises(WorldFileError, match=r"over the \.splat limit"):
        load_world(path)


def _ply_with_info(path: Path, info_text: str, scale: str = "1.0") -> Path:
    world = random_world(n=4)
    world.info = {"intrinsics": K, "image_size": [32, 24]}
    save_world(world, path)
    data = path.read_bytes()
    data = re.sub(rb"comment lyra_sim_info .*\n", b"comment lyra_sim_info " + info_text.encode() + b"\n", data)
    path.write_bytes(re.sub(rb"meters_per_unit=\S+", b"meters_per_unit=" + scale.encode(), data))
    return path


@pytest.mark.parametrize("image_size", ["5", "[0, 0]", '["a", "b"]', "[[32], 24]", "[Infinity, 24]", "[32]"])
def test_world_info_fields_are_checked_naming_the_file_and_field(tmp_path, image_size):
    """Class 6: each of these was a TypeError / KeyError / IndexError / OverflowError / ZeroDivisionError."""
    path = _ply_with_info(tmp_path / "w.ply", f'{{"intrinsics": {K}, "image_size": {image_size}}}')
    with pytest.raises(WorldFileError, match=rf"{path}: world info field 'image_size' must be"):
        load_world(path)


def test_header_cannot_choose_an_8k_render_or_an_unnamed_scale(tmp_path):
    """Class 6: a 27-byte comment asking for 7680x4320 renders at most 1920x1080 unless width/height are given;
    meters_per_unit "abc" names the file; an empty compressed PLY names the file."""
    from lyra_sim.views.paths import MAX_RECORDED_RENDER_PIXELS, render_size

    path = _ply_with_info(tmp_path / "big.ply", '{"image_size":[7680,4320]}')
    world = load_world(path)
    w, h = render_size(world)
    assert w * h <= MAX_RECORDED_RENDER_PIXELS and abs(w / h - 16 / 9) < 0.01
    assert render_size(world, 7680, 4320) == (7680, 4320)  # asked for explicitly
    bad_scale = _ply_with_info(tmp_path / "scale.ply", '{"image_size":[32,24]}', scale="abc")
    with pytest.raises(WorldFileError, match=rf"{bad_scale}: header comment meters_per_unit='abc'"):
        load_world(bad_scale)
    compressed = save_world(random_world(n=3), tmp_path / "w.compressed.ply")
    data = compressed.read_bytes()
    end = data.index(b"end_header\n") + len(b"end_header\n")
    header = re.sub(rb"element chunk \d+", b"element chunk 0", re.sub(rb"element vertex \d+", b"element vertex 0",
                                                                     data[:end]))
    empty = tmp_path / "empty.compressed.ply"
    empty.write_bytes(header)
    with pytest.raises(WorldFileError, match=rf"{empty}: compressed PLY with 0 Gaussians"):
        load_world(empty)


def test_native_times_and_info_are_checked(tmp_path):
    """Class 6 / 11: non-finite keyframe times and bad info in a native file are named errors."""
    import json

    path = save_world(random_world(n=3), tmp_path / "w.safetensors")
    data = path.read_bytes()
    (size,) = struct.unpack("<Q", data[:8])
    for key, value, message in [("times", "[Infinity]", "'times' must be finite"),
                                ("info", '[{"image_size": [0, 0]}]', "world info field 'image_size'")]:
        header = json.loads(data[8:8 + size])
        header["__metadata__"][key] = value
        text = json.dumps(header).encode()
        text += b" " * ((8 - len(text) % 8) % 8)
        bad = tmp_path / f"bad_{key}.safetensors"
        bad.write_bytes(struct.pack("<Q", len(text)) + text + data[8 + size:])
        with pytest.raises(WorldFileError, match=rf"{bad}.*{message}"):
            load_world(bad)


def test_camera_counts_are_capped_before_anything_is_built(tmp_path, monkeypatch):
    """Class 7: --frames 1e9 (was an 8 GB allocation), lyra:0..<20 digits> (OverflowError), lyra:0..999999999
    (MemoryError) and a camera file with too many entries (counted before numpy converts them)."""
    import json

    import lyra_sim.views.paths as camera_paths
    from lyra_sim.camera import CameraError

    Kt = torch.tensor(K)
    with pytest.raises(CameraError, match="cameras on the path: 1,000,000,000 is more than the limit"):
        camera_paths.camera_path("fly", Kt, 32, 24, 1_000_000_000, 1.0)
    for spec in ("lyra:0..99999999999999999999", "lyra:0..999999999"):
        with pytest.raises(CameraError, match=r"lyra:0 \.\. lyra:5|expected lyra:K"):
            camera_paths.camera_path(spec, Kt, 32, 24, 4, 1.0)
    monkeypatch.setattr(camera_paths, "MAX_PATH_CAMERAS", 10)
    cams = tmp_path / "cams.json"
    cams.write_text(json.dumps({"K": K, "world_to_cam": [[[1]]] * 11}))  # ragged: numpy would refuse it differently
    with pytest.raises(CameraError, match=rf"{cams}: 'world_to_cam' entries: 11 is more than the limit of 10"):
        camera_paths.load_camera_file(cams, 32, 24)


@pytest.mark.parametrize("start, rate", [("2038-01-19T03:14:08", 10.0), ("1e12", 10.0), (None, 1e-9),
                                         (None, 1e-300)])
def test_bag_stamps_beyond_ros_time_are_refused_before_rendering(start, rate):
    """Class 8: each was a raw struct.error (or an OverflowError after 5 s of rendering)."""
    from lyra_sim.ros.bag import BagError, check_stamps, parse_start_time

    with pytest.raises(BagError, match="ROS time"):
        check_stamps(1.7e9 if start is None else parse_start_time(start), 48, rate)
    check_stamps(parse_start_time("2038-01-19T03:14:00"), 5, 1.0)  # just before the end of int32 seconds: fine


_SIGKILL_SCRIPT = """
import os, signal, sys
from lyra_sim.io.atomic import atomic_dir, atomic_path
kind, target = sys.argv[1], sys.argv[2]
with (atomic_path if kind == "file" else atomic_dir)(target) as tmp:
    if kind == "file":
        tmp.write_bytes(b"half")
    else:
        (tmp / "frame_0000.png").write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("kind", ["file", "dir"])
def test_temporaries_left_by_sigkill_are_removed_by_the_next_write_of_that_output(tmp_path, kind):
    """Class 9: only stale temporaries of the same output go (not a running writer's, not another output's)."""
    target = tmp_path / ("world.ply" if kind == "file" else "frames")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _SIGKILL_SCRIPT, kind, str(target)], env=env, timeout=120)
    assert done.returncode == -signal.SIGKILL
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(f".{target.name}.")]
    assert len(stale) == 1
    suffix = ".tmp.ply" if kind == "file" else ".partial"
    live = tmp_path / f".{target.name}.{os.getppid()}.abcdefgh{suffix}"  # a writer that still runs
    other = tmp_path / f".other.ply.{stale[0].name.split('.')[-3 if kind == 'file' else -2]}.abcdefgh{suffix}"
    live.write_bytes(b"")
    other.write_bytes(b"")
    if kind == "file":
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"whole")
    else:
        from lyra_sim.io.atomic import atomic_dir

        with atomic_dir(target) as tmp:
            (tmp / "frame_0000.png").write_bytes(b"whole")
    assert not stale[0].exists() and live.exists() and other.exists()


def test_usd_that_crashes_the_parser_is_refused_from_a_child_process(tmp_path, monkeypatch):
    """Class 11: a crash (or bad_alloc) of usd-core while parsing ends the child, and the caller gets a named error.
    The child is replaced here by scripts that die the way usd-core does on a mutated crate file."""
    from usd_exporters import probe
    from usd_exporters.stage_io import export_world

    stage = export_world(random_world(n=3).with_z_up_axes(), tmp_path / "w.usdc")
    assert len(load_world(stage)) == 3  # the real child parses it and says nothing
    crash = "import os, signal, sys\nsys.stdin.readline()\nos.kill(os.getpid(), signal.SIGSEGV)\n"
    out_of_memory = "import sys\nfor line in sys.stdin:\n    print(4, flush=True)\n"
    for code, message in [(crash, "crashed \\(SIGSEGV\\)"), (out_of_memory, "needs more than")]:
        script = tmp_path / "child.py"
        script.write_text(code)
        monkeypatch.setattr(probe, "__file__", str(script))
        monkeypatch.setattr(probe, "_PROBER", probe._Prober())
        with pytest.raises(LyraSimError, match=rf"{stage}: .*{message}"):
            load_world(stage)
    monkeypatch.undo()
    assert len(load_world(stage)) == 3  # a fresh child after the crash


def test_usd_transform_scale_and_prim_count_are_bounded(tmp_path):
    """Class 11: a huge transform scale (infinite means downstream) and thousands of splat prims are refused."""
    from usd_exporters.stage_io import DEFAULT_MAX_SPLAT_PRIMS

    prim = ('    def ParticleField3DGaussianSplat "G{i}"\n    {{\n        point3f[] positions = [(0, 0, 1)]\n'
            '        float[] opacities = [0.5]\n        float3[] scales = [(0.1, 0.1, 0.1)]\n{extra}    }}\n')
    head = '#usda 1.0\n(\n    metersPerUnit = 1\n    upAxis = "Z"\n)\ndef Xform "World"\n{\n'
    scaled = tmp_path / "scaled.usda"
    extra = ('        double3 xformOp:scale = (1e30, 1e30, 1e30)\n'
             '        uniform token[] xformOpOrder = ["xformOp:scale"]\n')
    scaled.write_text(head + prim.format(i=0, extra=extra) + "}\n")
    with pytest.raises(LyraSimError, match="transform scale 1e\\+30"):
        load_world(scaled)
    many = tmp_path / "many.usda"
    many.write_text(head + "".join(prim.format(i=i, extra="") for i in range(DEFAULT_MAX_SPLAT_PRIMS + 1)) + "}\n")
    with pytest.raises(LyraSimError, match=rf"{many}: 1,001 splat prims"):
        load_world(many)


def test_inputs_that_are_proc_files_or_symlink_loops_are_refused(tmp_path):
    """Class 11: a link to /proc and a symlink loop were accepted as input files."""
    proc = tmp_path / "status.ply"
    proc.symlink_to("/proc/self/status")
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    with pytest.raises(WorldFileError, match=rf"{proc}: refers to a kernel or device file"):
        load_world(proc)
    with pytest.raises(InputError, match=rf"{loop}: cannot resolve the path \(symlink loop\)"):
        load_image(loop)


def test_tiny_focal_lengths_and_hostile_npz_are_named(tmp_path):
    """Class 11: fx = 1e-300 (LinAlgError downstream), an .npz header claiming 1.16 TiB (MemoryError), a truncated
    .npz (BadZipFile)."""
    import io
    import zipfile

    from lyra_sim.lyra.gen3c_dir import _load_npz

    with pytest.raises(InputError, match=r"focal lengths must lie in \[1, 1e\+07\] pixels"):
        load_intrinsics({"fx": 1e-300, "fy": 1e-300, "cx": 16, "cy": 12}, 32, 24)
    good = tmp_path / "pose.npz"
    np.savez(good, data=np.repeat(np.eye(4)[None], 2, axis=0), inds=np.arange(2))
    data, inds = _load_npz(good, "data", (4, 4))
    assert data.shape == (2, 4, 4) and inds.tolist() == [0, 1]
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.zeros((2, 4, 4)))
    lying = buffer.getvalue().replace(b"'shape': (2, 4, 4), ", b"'shape': (10000000000, 4, 4), ", 1)
    huge = tmp_path / "huge.npz"
    with zipfile.ZipFile(huge, "w") as archive:
        archive.writestr("data.npy", lying)
    with pytest.raises(TeacherDataError, match=rf"{huge}.*header claims shape \(10000000000, 4, 4\)"):
        _load_npz(huge, "data", (4, 4))
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(TeacherDataError, match=rf"{truncated} is not a readable .npz archive"):
        _load_npz(truncated, "data", (4, 4))


def test_capture_frames_too_large_to_fuse_are_refused_from_the_header(capture_sources, tmp_path):
    """Class 11: a 105 KB 6000x6000 PNG frame cost seconds and gigabytes before anything checked it."""
    cap = _copy_capture(capture_sources, tmp_path, "plain")
    _png_with_size(cap / "rgb" / "0001.png", 6000, 6000)
    with pytest.raises(InputError, match=r"0001.png: 6000x6000 is larger than capture frames may be"):
        read_sequence(cap, poses=cap / "poses.json")
