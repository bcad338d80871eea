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
    assert lyra_sim.train.__name__ == "lyra_sim.train" and lyra_sim.views.paths.camera_path
    assert callable(lyra_sim.render) and lyra_sim.rendering.render is lyra_sim.render  # the function, not the package
    for missing in ("no_such_thing", "_private"):
        try:
            getattr(lyra_sim, missing)
        except AttributeError as exc:
            assert missing in str(exc)
        else:
            raise AssertionError(f"lyra_sim.{missing} must raise AttributeError")


def test_plain_import_loads_the_heavy_subpackages_only_on_use():
    code = ("import sys, lyra_sim; lazy = ['lyra_sim.physics', 'lyra_sim.train', 'pybullet'];"
            "print([m for m in lazy if m in sys.modules]); lyra_sim.physics.build_collision_proxy;"
            "print('lyra_sim.physics' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.split("\n")[:2] == ["[]", "True"]


HEAVY = ("open3d", "cv2", "pybullet", "pxr")


def _loaded_after(code: str, modules: tuple[str, ...]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``code``."""
    probe = f"import sys; {code}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return [m for m in out.strip().split(",") if m]


def test_import_and_world_types_load_no_heavy_library():
    assert _loaded_after("import lyra_sim; lyra_sim.GaussianWorld; lyra_sim.generate_world; lyra_sim.render",
                         HEAVY) == []


def test_the_command_line_parser_loads_neither_torch_nor_any_heavy_library():
    code = "import lyra_sim.cli as c; c.build_parser().format_help()"
    assert _loaded_after(code, ("torch", "numba", "scipy", *HEAVY)) == []


def test_no_formatter_markers():
    """The project is formatted by hand to ruff's line length and never runs ``ruff format``, so formatter
    markers (``marker`` below) mark nothing; they would only suggest a formatter that is not there."""
    marker = "# fmt: " + "skip"  # spelled in two parts so that this file does not match itself
    files = subprocess.run(["git", "ls-files", "*.py"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    marked = [f"{name}:{number}" for name in files.split() if (ROOT / name).is_file()
              for number, line in enumerate((ROOT / name).read_text().splitlines(), 1) if marker in line]
    assert not marked, (f"drop the markers: git ls-files '*.py' | xargs sed -i -E 's/[[:space:]]*{marker}$//' "
                        f"(found at {', '.join(marked[:10])})")


def test_every_path_in_the_readme_table_of_folders_exists():
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Where things live", 1)[1]
    table = next(block for block in section.split("\n\n") if block.startswith("| Folder"))
    named = 0
    for row in table.splitlines()[2:]:
        cell = row.split("|")[1]
        paths = re.findall(r"`([^`]+)`", cell)
        folder = Path(paths[0]).parent if paths[0].endswith(".py") else Path(paths[0])
        for path in paths:
            target = ROOT / path if "/" in path.rstrip("/") or path.endswith("/") else ROOT / folder / path
            assert target.exists(), f"README names {path}, which does not exist"
            named += 1
    assert named >= 20
