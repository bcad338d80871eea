"""The first hour with ``lyra-sim``: one-line errors with exit code 2, --version, --help with defaults,
camera-path specs as documented, and .ply worlds that render their input view like .safetensors ones."""

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import small_example
from PIL import Image

import lyra_sim
from lyra_sim import Camera
from lyra_sim.cli import build_parser, main
from lyra_sim.demo import EXAMPLE_RGB
from lyra_sim.rendering.gsplat_backend import gsplat_available
from lyra_sim.views.paths import camera_path

README = Path(__file__).resolve().parent.parent / "README.md"


@pytest.fixture(scope="module")
def example_worlds(tmp_path_factory):
    """The bundled example at 80 x 60 (not the CLI's 320 x 240 fallback), generated to .ply and .safetensors."""
    root = tmp_path_factory.mktemp("example")
    rgb, depth, intrinsics = small_example(root, rgb_resample=Image.BILINEAR)
    for name in ("world.ply", "world.safetensors"):
        assert main(["generate", str(rgb), "--depth", str(depth), "--intrinsics", str(intrinsics), "-o",
                     str(root / name)]) == 0
    return root


def one_line_error(capsys, command: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"lyra-sim {command}: error: ") and "Traceback" not in captured.err
    return lines[0]


def test_eval_of_a_missing_checkpoint_is_one_line_and_exit_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path / "missing.pt")]) == 2
    assert "missing.pt" in one_line_error(capsys, "eval")


@pytest.mark.skipif(gsplat_available(), reason="needs a machine without CUDA/gsplat")
def test_gsplat_backend_without_cuda_is_one_line_and_writes_nothing(example_worlds, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["render", str(example_worlds / "world.ply"), "--backend", "gsplat", "-o", str(out)]) == 2
    assert "gsplat" in one_line_error(capsys, "render")
    assert not out.exists()


@pytest.mark.parametrize("option", [["--frames", "0"], ["--width", "-5"], ["--fov", "nan"], ["--frames", "x"]])
def test_bad_numbers_are_one_line_usage_errors_with_exit_2(example_worlds, capsys, option):
    with pytest.raises(SystemExit) as stop:
        main(["render", str(example_worlds / "world.ply"), *option])
    assert stop.value.code == 2
    assert option[0] in one_line_error(capsys, "render")


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"lyra-sim {lyra_sim.__version__}"


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_help_describes_every_positional_and_shows_defaults():
    for name, parser in _subcommands().items():
        text = parser.format_help()
        for action in parser._actions:
            if not action.option_strings:
                assert action.help, f"{name}: positional {action.dest} has no description"
            elif action.default not in (None, argparse.SUPPRESS) and not isinstance(action.default, bool) \
                    and action.help:
                assert f"(default: {action.default})" in " ".join(text.split()), f"{name} {action.dest}"
    assert "(default: 48)" in _subcommands()["render"].format_help()


def _options_classes(verb: str) -> tuple[tuple[type, tuple[str, ...]], ...]:
    """The options dataclasses a verb's flags come from, each with the fields another one already gave a flag."""
    from lyra_sim.capture.options import CaptureOptions
    from lyra_sim.demo.options import DemoOptions
    from lyra_sim.lyra.options import DecodeOptions
    from lyra_sim.ros.options import BagOptions
    from lyra_sim.single_view.options import SingleViewOptions
    from lyra_sim.splat_import.options import SimReadyOptions
    from lyra_sim.train.options import DatasetOptions
    from lyra_sim.views.options import CameraPathOptions, RenderOptions

    return {
        "generate": ((SingleViewOptions, ()), (CaptureOptions, ("depth_scale",))),  # one --depth-scale for both
        "decode": ((DecodeOptions, ()),),
        "make-dataset": ((DatasetOptions, ()),),
        "render": ((CameraPathOptions, ()), (RenderOptions, ())),
        "record-bag": ((CameraPathOptions, ()), (BagOptions, ())),
        "demo": ((DemoOptions, ()),),
        "simready": ((SimReadyOptions, ()),),
    }[verb]


@pytest.mark.parametrize("verb", ["generate", "decode", "make-dataset", "render", "record-bag", "demo", "simready"])
def test_verb_options_come_from_the_options_dataclasses_with_their_help_and_defaults(verb):
    from dataclasses import fields

    parser = _subcommands()[verb]
    help_text = "".join(parser.format_help().split())  # argparse wraps lines, also at hyphens
    by_dest = {a.dest: a for a in parser._actions}
    for cls, shared in _options_classes(verb):
        for f in fields(cls):
            if f.name in shared:
                continue
            if not f.metadata["cli"]:
                assert f.name not in by_dest
                continue
            assert "".join(f.metadata["help"].split()) in help_text, f.name
            assert by_dest[f.name].default == f.default, f.name  # the dataclass's default, not a second copy


def test_generate_flags_parse_into_option_fields():
    args = _subcommands()["generate"].parse_args(["in.png", "-o", "w.ply", "--fov", "75", "--no-complete",
                                                  "--voxel-size", "0.05"])
    assert (args.fov_deg, args.complete, args.voxel_size) == (75.0, False, 0.05)
    args = _subcommands()["render"].parse_args(["w.ply", "--no-mp4", "--depth", "--lod", "1.5"])
    assert (args.mp4, args.depth_frames, args.lod) == (False, True, 1.5)


@pytest.mark.parametrize(("function", "options"), [
    ("lyra_sim.views.media:render_path", "lyra_sim.views.options:RenderOptions"),
    ("lyra_sim.views.paths:world_camera_path", "lyra_sim.views.options:CameraPathOptions"),
    ("lyra_sim.ros.bag:record_bag", "lyra_sim.ros.options:BagOptions"),
    ("lyra_sim.demo.run:run_demo", "lyra_sim.demo.options:DemoOptions"),
    ("lyra_sim.envs.scene:prepare_scene", "lyra_sim.envs.options:SceneOptions"),
    ("lyra_sim.train.data_engine:make_dataset", "lyra_sim.train.options:DatasetOptions"),
])
def test_library_functions_take_every_option_with_the_dataclass_default(function, options):
    """The function's keyword arguments are the options' fields (names and defaults): the CLI and make_env pass
    ``as_kwargs(options)`` straight in."""
    import importlib
    import inspect
    from dataclasses import fields

    def resolve(spec: str):
        module, name = spec.split(":")
        return getattr(importlib.import_module(module), name)

    parameters = inspect.signature(resolve(function)).parameters
    for f in fields(resolve(options)):
        assert f.name in parameters, f"{function} has no {f.name}"
        assert parameters[f.name].default == f.default, f"{function}({f.name}=...)"


def test_lyra_range_renders_all_six_trajectories(example_worlds, tmp_path):
    K = Camera.intrinsics_from_fov(64, 48, 60.0)
    all_six = camera_path("lyra:0..5", K, 64, 48, 3, 2.0)
    assert len(all_six) == 18
    for k in range(6):
        single = camera_path(f"lyra:{k}", K, 64, 48, 3, 2.0)
        torch.testing.assert_close(all_six.world_to_cam[3 * k : 3 * k + 3], single.world_to_cam)
    out = tmp_path / "six"
    assert main(["render", str(example_worlds / "world.ply"), "--path", "lyra:0..5", "--frames", "2", "--no-mp4",
                 "-o", str(out)]) == 0
    assert len(list(out.glob("frame_*.png"))) == 12


def test_documented_json_camera_format_renders(example_worlds, tmp_path):
    """A camera file written exactly as the --help text and the README describe it."""
    help_text = " ".join(_subcommands()["render"].format_help().split())
    readme = README.read_text()
    for key in ('"K"', '"world_to_cam"', '"width"', '"height"'):
        assert key in help_text and key in readme
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[1, 0, 3] = -0.1  # the second camera 10 cm to the right
    cams = {"K": [[60, 0, 20], [0, 60, 15], [0, 0, 1]], "world_to_cam": poses.tolist(), "width": 40, "height": 30}
    (tmp_path / "cams.json").write_text(json.dumps(cams))
    out = tmp_path / "json"
    assert main(["render", str(example_worlds / "world.ply"), "--path", str(tmp_path / "cams.json"), "--no-mp4",
                 "-o", str(out)]) == 0
    frames = sorted(out.glob("frame_*.png"))
    assert len(frames) == 2 and Image.open(frames[0]).size == (40, 30)


def test_ply_world_renders_its_input_view_like_the_safetensors_one(example_worlds, tmp_path):
    images = {}
    for name in ("world.ply", "world.safetensors"):
        out = tmp_path / name
        assert main(["render", str(example_worlds / name), "--frames", "1", "--no-mp4", "-o", str(out)]) == 0
        images[name] = np.asarray(Image.open(out / "frame_0000.png"))
    assert images["world.ply"].shape == (60, 80, 3)  # the input's size, not the 320 x 240 fallback
    # PLY keeps log scales and its reader normalises the quaternions (3DGS's convention): the float32 round trip moves a
    # value by ~1e-8, which may flip the rounding of a few pixels by one level, never more.
    difference = np.abs(images["world.ply"].astype(int) - images["world.safetensors"].astype(int))
    assert difference.max() <= 1 and (difference > 0).mean() < 1e-3
    source = np.asarray(Image.open(example_worlds / EXAMPLE_RGB).convert("RGB")).astype(np.float64)
    mse = ((images["world.ply"].astype(np.float64) - source) ** 2).mean()
    assert 10 * np.log10(255**2 / mse) > 18  # the input view (the first fly-through frame) reproduces the photo
