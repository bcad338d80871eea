"""Files lyra_sim writes get the permissions ``open()`` would give them: 0666 minus the umask."""

import os
import stat

import numpy as np
import pytest
from conftest import random_world

from lyra_sim.io import save_world
from lyra_sim.io.atomic import atomic_path
from lyra_sim.views.media import save_png


@pytest.fixture
def umask():
    """Set a umask for one test and restore the previous one."""
    previous = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(previous)


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_written_files_respect_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    world = random_world(n=20)
    written = [
        save_world(world, tmp_path / "w.ply"),
        save_world(world, tmp_path / "w.safetensors"),
        save_world(world, tmp_path / "w.usda"),
        save_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "p.png"),
    ]
    plain = tmp_path / "plain"
    plain.write_bytes(b"")  # what open() gives under this umask: the reference
    assert mode(plain) == expected
    for path in written:
        assert mode(path) == expected, f"{path.name}: {oct(mode(path))}"


def test_rewriting_a_file_keeps_its_permissions(tmp_path, umask):
    umask(0o022)
    target = tmp_path / "w.ply"
    save_world(random_world(n=5), target)
    target.chmod(0o640)
    save_world(random_world(n=6), target)
    assert mode(target) == 0o640


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "x.bin") as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_rendered_frame_sets_respect_the_umask(tmp_path, umask):
    from lyra_sim import Camera
    from lyra_sim.views.media import render_path

    umask(0o027)
    cams = Camera.from_fov(16, 12, 60.0)
    cams = Camera(cams.K.expand(2, 3, 3), cams.world_to_cam.expand(2, 4, 4), 16, 12)
    written = render_path(random_world(n=10), cams, tmp_path / "frames")
    files = [*map(str, written["frames"]), written["contact_sheet"], written["mp4"]]
    assert {oct(mode(f)) for f in files} == {oct(0o640)}
    assert mode(tmp_path / "frames") == 0o750
