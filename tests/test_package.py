"""The package's top level: what a plain ``import lyra_sim`` offers, and what it does not load."""

import subprocess
import sys
from pathlib import Path

import lyra_sim

ROOT = Path(__file__).resolve().parent.parent


def test_submodules_are_attributes_of_the_package():
    on_disk = {p.stem for p in (ROOT / "lyra_sim").glob("*.py")} | {
        p.parent.name for p in (ROOT / "lyra_sim").glob("*/__init__.py")}
    assert on_disk - {"__init__"} <= set(dir(lyra_sim))
    assert lyra_sim.align.align_world and lyra_sim.physics.BulletScene and lyra_sim.envs.prepare_scene
    assert lyra_sim.train.__name__ == "lyra_sim.train" and lyra_sim.camera_paths.camera_path
    assert callable(lyra_sim.render) and lyra_sim.rendering.render is lyra_sim.render  # the function, not the package
    for missing in ("no_such_thing", "_private"):
        try:
            getattr(lyra_sim, missing)
        except AttributeError as exc:
            assert missing in str(exc)
        else:
            raise AssertionError(f"lyra_sim.{missing} must raise AttributeError")


def test_plain_import_loads_the_heavy_subpackages_only_on_use():
    code = ("import sys, lyra_sim; lazy = ['lyra_sim.physics', 'lyra_sim.align', 'lyra_sim.train', 'pybullet'];"
            "print([m for m in lazy if m in sys.modules]); lyra_sim.physics.build_collision_proxy;"
            "print('lyra_sim.physics' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split("\n")[:2] == ["[]", "True"]
