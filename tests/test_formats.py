"""The world-format registry: built-in suffixes, plug-ins through entry points, no adapter import in the core."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lyra_sim.io import REGISTRY, WorldFileError, load_world, save_world, world_suffixes
from lyra_sim.io.formats import FormatRegistry, WorldFormat
from lyra_sim.world import GaussianWorld


def _world() -> GaussianWorld:
    return GaussianWorld(
        means=torch.tensor([[0.0, 0, 0], [1.0, 2, 3]]), quats=torch.tensor([[1.0, 0, 0, 0]] * 2),
        scales=torch.full((2, 3), 0.1), opacities=torch.full((2,), 0.5), sh=torch.zeros(2, 1, 3),
        frame="z_up", meters_per_unit=1.0,
    )


def test_core_io_does_not_import_the_usd_adapter():
    code = "import sys, lyra_sim.io; print('usd_exporters' in sys.modules, 'pxr' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_usd_registers_through_the_entry_point_without_importing_pxr():
    code = (
        "import sys, lyra_sim.io as io; s = io.world_suffixes(); "
        "print('.usdz' in s, '.ply' in s, 'pxr' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "False"]


def test_unknown_suffix_names_the_file_and_the_known_suffixes(tmp_path: Path):
    path = tmp_path / "world.xyz"
    path.write_bytes(b"x")
    with pytest.raises(WorldFileError, match=r"world\.xyz.*\.ply"):
        load_world(path)
    with pytest.raises(WorldFileError, match=r"cannot save a world as '\.xyz'"):
        save_world(_world(), path)


def test_sniffing_format_wins_over_the_plain_one_only_when_it_recognises_the_file(tmp_path: Path):
    registry = FormatRegistry()
    registry._plugins_loaded = True  # an isolated registry: no entry points
    registry.add(WorldFormat("plain", (".dat",), reader=lambda p: "plain"))
    registry.add(WorldFormat("special", (".dat",), reader=lambda p: "special", sniff=lambda p: p.read_bytes() == b"S"))
    special, plain = tmp_path / "a.dat", tmp_path / "b.dat"
    special.write_bytes(b"S")
    plain.write_bytes(b"P")
    assert registry.reader_for(special).name == "special"
    assert registry.reader_for(plain).name == "plain"


def test_save_world_dispatches_usd_through_the_registry(tmp_path: Path):
    world = _world()
    out = save_world(world, tmp_path / "w.usda")
    back = load_world(out)
    assert torch.allclose(back.means, world.means) and len(back.means) == 2
    assert ".usda" in world_suffixes() and REGISTRY.writer_for(out).name == "usd"
