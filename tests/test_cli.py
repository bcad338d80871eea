import json
import shutil
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
from conftest import small_example

from lyra_sim import load_world
from lyra_sim.cli import main


@pytest.fixture
def example(tmp_path):
    """The bundled example, downsampled to keep the test quick."""
    small_example(tmp_path / "ex")
    return tmp_path / "ex"


def test_generate_info_render(tmp_path, example, capsys):
    world_path = tmp_path / "w.ply"
    assert main(["generate", str(example / "tabletop_rgb.png"), "--depth", str(example / "tabletop_depth.png"),
                 "--intrinsics", str(example / "tabletop_intrinsics.json"), "-o", str(world_path)]) == 0
    out = capsys.readouterr().out
    assert "depth source: given (metric)" in out and str(world_path) in out
    world = load_world(world_path)
    underlay = world.info["completion"]["underlay_gaussians"]  # seen floor/walls resampled behind themselves
    assert int(world.observed.sum()) == 80 * 60 + underlay  # every pixel kept
    assert (~world.observed).sum() > 0 and "completion: " in out  # plus what the camera could not see
    assert main(["info", str(world_path)]) == 0
    assert json.loads(capsys.readouterr().out)["num_gaussians"] == len(world)
    render_dir = tmp_path / "r"
    assert main(["render", str(world_path), "--frames", "4", "--width", "48", "--height", "36", "-o", str(render_dir),
                 "--path", "lyra:0", "--depth"]) == 0
    assert str(render_dir) in capsys.readouterr().out
    frames = sorted(render_dir.glob("frame_*.png"))
    assert len(frames) == 4 and len(list(render_dir.glob("depth_*.png"))) == 4
    assert iio.imread(frames[0]).shape == (36, 48, 3)
    assert iio.imread(render_dir / "flythrough.mp4").shape[0] == 4
    assert (render_dir / "contact_sheet.png").is_file()
    coarse_dir = tmp_path / "r_lod"  # a level of detail coarse enough to merge most of this small world
    assert main(["render", str(world_path), "--frames", "4", "--width", "48", "--height", "36", "-o", str(coarse_dir),
                 "--path", "lyra:0", "--lod", "50", "--no-mp4"]) == 0
    coarse = [iio.imread(coarse_dir / f.name).astype(int) for f in frames]
    difference = np.mean([np.abs(c - iio.imread(f)).mean() for c, f in zip(coarse, frames, strict=True)])
    assert 0 < difference < 40  # the same scene, drawn with merged Gaussians
    with pytest.raises(SystemExit) as refused:  # a usage error: one line, exit code 2
        main(["render", str(world_path), "--lod", "-1", "-o", str(tmp_path / "bad")])
    assert refused.value.code == 2 and "--lod" in capsys.readouterr().err


def test_demo_writes_ply_and_preview(tmp_path, example):
    assert main(["demo", "--out", str(tmp_path / "out"), "--frames", "3", "--example-dir", str(example)]) == 0
    for name in ("world.ply", "world.safetensors", "preview.png", "flythrough/contact_sheet.png"):
        assert (tmp_path / "out" / name).is_file(), name
    preview = iio.imread(tmp_path / "out" / "preview.png")
    source = iio.imread(example / "tabletop_rgb.png")
    assert np.median(np.abs(preview.astype(float) - source)) <= 2  # the input view comes back (holes aside)


def test_bad_input_exits_cleanly_without_output(tmp_path, example, capsys):
    bad_depth = tmp_path / "d.png"
    shutil.copy(example / "tabletop_rgb.png", bad_depth)  # a colour image is not a depth map
    target = tmp_path / "w.ply"
    code = main(["generate", str(example / "tabletop_rgb.png"), "--depth", str(bad_depth), "-o", str(target)])
    assert code == 2 and "depth" in capsys.readouterr().err
    assert not target.exists() and not any(Path(tmp_path).glob(".w.ply*"))
    assert main(["info", str(tmp_path / "missing.ply")]) == 2
