"""The demo's pieces, and its example data shipping inside the wheel."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from lyra_sim.demo import EXAMPLE_DIR, example_paths, scripted_action

ROOT = Path(__file__).resolve().parent.parent


def test_scripted_controller_turns_towards_the_goal_then_drives():
    np.testing.assert_allclose(scripted_action(np.array([2.0, 0.0, 0.0])), [1.0, 0.0])  # straight ahead: full speed
    forward, turn = scripted_action(np.array([0.0, 1.0, 0.0]))  # 90 degrees left: turn on the spot
    assert forward == 0.0 and turn == 1.0
    forward, turn = scripted_action(np.array([1.0, -0.2, 0.0]))  # slightly right
    heading = np.arctan2(-0.2, 1.0)
    assert forward == pytest.approx(1 - abs(heading)) and turn == pytest.approx(2 * heading)


def test_example_lives_in_the_package_and_examples_links_to_it():
    assert EXAMPLE_DIR == ROOT / "lyra_sim" / "data"
    assert all(p.is_file() for p in example_paths())
    assert (ROOT / "examples" / "data" / "tabletop_rgb.png").resolve() == example_paths()[0]


def test_wheel_ships_the_example_and_the_installed_demo_finds_it(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "lyra_sim", "usd_exporters"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, source / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                            if (ROOT / name).is_dir() else {}))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(source),
                    "-w", str(tmp_path / "dist")], check=True, cwd=tmp_path, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("lyra_sim-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for path in example_paths():
        assert f"lyra_sim/data/{path.name}" in names
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    check = ("import lyra_sim.demo as d; from lyra_sim.inputs.images import load_rgb, load_intrinsics; "
             "rgb, _, intr = d.example_paths(); img = load_rgb(rgb); "
             "load_intrinsics(intr, img.shape[1], img.shape[0]); print(d.__file__, img.shape)")
    result = subprocess.run([sys.executable, "-c", check], env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
                            check=True, capture_output=True, text=True, cwd=tmp_path)
    installed, shape = result.stdout.split(" ", 1)
    assert Path(installed).is_relative_to(site) and shape.strip() == "(240, 320, 3)"
