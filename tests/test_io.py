import time
from pathlib import Path

import numpy as np
import plyfile
import pytest
import torch
from conftest import random_world

from lyra_sim import DynamicGaussianWorld, GaussianWorld, load_world, save_world
from lyra_sim.io import WorldFileError
from lyra_sim.io.atomic import OutputError
from lyra_sim.io.ply import world_to_ply_array

FIELDS = ("means", "quats", "scales", "opacities", "sh")


def assert_worlds_close(a, b, atol=1e-6, rtol=1e-5):
    for field in FIELDS:
        torch.testing.assert_close(getattr(a, field), getattr(b, field), atol=atol, rtol=rtol)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_world_file_world_round_trip(tmp_path, degree):
    world = random_world(n=50, sh_degree=degree, seed=degree)
    world.meters_per_unit = 0.5
    path = save_world(world, tmp_path / "w.ply")
    back = load_world(path)
    assert back.sh_degree == degree and back.meters_per_unit == 0.5 and back.frame == "opencv"
    assert_worlds_close(world, back)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ply_file_world_file_keeps_every_value(tmp_path, degree, rng):
    n, k = 40, (degree + 1) ** 2
    names = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
    names += [f"f_rest_{i}" for i in range(3 * (k - 1))]
    names += ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
    data = np.empty(n, dtype=[(name, "<f4") for name in names])
    for name in names:
        data[name] = rng.uniform(-4, 4, n).astype(np.float32)
    data["nx"] = data["ny"] = data["nz"] = 0
    quats = rng.normal(size=(n, 4))
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    for i in range(4):
        data[f"rot_{i}"] = quats[:, i]
    src = tmp_path / "src.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(src))
    again = save_world(load_world(src), tmp_path / "again.ply")
    out = plyfile.PlyData.read(str(again))["vertex"].data
    assert list(out.dtype.names) == names
    for name in names:
        # logit(sigmoid(x)) and log(exp(x)) through float32 activations: float32 rounding only
        np.testing.assert_allclose(out[name], data[name], rtol=2e-6, atol=2e-5, err_msg=name)


def test_ply_written_by_another_writer_loads_right(tmp_path):
    """Hand-written binary PLY (raw bytes, big-endian, shuffled property order, double x)."""
    header = (
        "ply\nformat binary_big_endian 1.0\ncomment written by hand\nelement vertex 2\n"
        "property float opacity\nproperty double x\nproperty float y\nproperty float z\n"
        "property float rot_0\nproperty float rot_1\nproperty float rot_2\nproperty float rot_3\n"
        "property float scale_0\nproperty float scale_1\nproperty float scale_2\n"
        "property float f_dc_0\nproperty float f_dc_1\nproperty float f_dc_2\nend_header\n"
    )
    rows = [(0.0, 1.5, -2.0, 3.0, 2.0, 0.0, 0.0, 0.0, np.log(0.1), np.log(0.2), np.log(0.3), 0.5, -0.5, 1.0),
            (2.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)]  # fmt: skip
    dtype = np.dtype([("o", ">f4"), ("x", ">f8")] + [(f"p{i}", ">f4") for i in range(12)])
    body = np.array(rows, dtype=dtype).tobytes()
    path = tmp_path / "hand.ply"
    path.write_bytes(header.encode() + body)
    world = load_world(path)
    torch.testing.assert_close(world.means[0], torch.tensor([1.5, -2.0, 3.0]))
    torch.testing.assert_close(world.opacities, torch.tensor([0.5, 1 / (1 + np.exp(-2.0))]).float())
    torch.testing.assert_close(world.quats[0], torch.tensor([1.0, 0, 0, 0]))  # (2,0,0,0) normalised
    torch.testing.assert_close(world.quats[1], torch.tensor([0.0, 0, 0, 1]))
    torch.testing.assert_close(world.scales[0], torch.tensor([0.1, 0.2, 0.3]))
    torch.testing.assert_close(world.rgb[0], torch.tensor([0.5 + 0.5 * 0.28209479, 0.5 - 0.5 * 0.28209479, 0.78209479]))


def test_lyra_gaussians_orig_layout(tmp_path):
    world = random_world(n=30)
    path = save_world(world, tmp_path / "gaussians_0.ply", layout="lyra")
    names = plyfile.PlyData.read(str(path))["vertex"].data.dtype.names
    assert names == ("x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
                     "rot_0", "rot_1", "rot_2", "rot_3")  # fmt: skip
    arr = world_to_ply_array(world, "lyra")
    np.testing.assert_allclose(arr["f_dc_0"], (world.rgb[:, 0].numpy() - 0.5) / 0.28209479, rtol=1e-5, atol=1e-5)
    assert_worlds_close(world, load_world(path))
    with pytest.raises(ValueError, match="degree"):
        save_world(random_world(sh_degree=1), tmp_path / "x.ply", layout="lyra")


def _good_ply_bytes(tmp_path) -> bytes:
    return save_world(random_world(n=20), tmp_path / "good.ply").read_bytes()


def test_truncated_ply_fails_cleanly(tmp_path):
    data = _good_ply_bytes(tmp_path)
    bad = tmp_path / "truncated.ply"
    bad.write_bytes(data[: len(data) - 37])
    with pytest.raises(WorldFileError, match="truncated"):
        load_world(bad)


def test_header_claiming_a_billion_vertices_fails_fast(tmp_path):
    data = _good_ply_bytes(tmp_path)
    bad = tmp_path / "liar.ply"
    bad.write_bytes(data.replace(b"element vertex 20", b"element vertex 2000000000"))
    start = time.perf_counter()
    with pytest.raises(WorldFileError, match="2000000000 vertex"):
        load_world(bad)
    assert time.perf_counter() - start < 1.0


def test_ascii_header_claiming_too_much_fails_fast(tmp_path):
    bad = tmp_path / "ascii.ply"
    bad.write_text(
        "ply\nformat ascii 1.0\nelement vertex 999999999\nproperty float x\nproperty float y\nend_header\n1 2\n"
    )
    with pytest.raises(WorldFileError, match="999999999"):
        load_world(bad)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a ply at all", "magic"),
        (b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\n", "end_header"),
        (
            b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
            b"property float z\nend_header\n" + np.zeros(3, "<f4").tobytes(),
            "missing properties",
        ),
        (b"ply\nformat weird 1.0\nelement vertex 0\nend_header\n", "format"),
    ],
)
def test_malformed_ply_files(tmp_path, content, message):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(content)
    with pytest.raises(WorldFileError, match=message):
        load_world(bad)


def test_nan_in_ply_names_the_property(tmp_path):
    world = random_world(n=5)
    arr = world_to_ply_array(world)
    arr["scale_1"][3] = np.nan
    path = tmp_path / "nan.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(arr, "vertex")]).write(str(path))
    with pytest.raises(WorldFileError, match=r"scale_1.*vertex 3"):
        load_world(path)


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    target = tmp_path / "out.ply"

    def explode(self, stream):
        Path(stream).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(plyfile.PlyData, "write", explode)
    with pytest.raises(OutputError, match=f"{target}.*disk full"):
        save_world(random_world(n=3), target)
    assert list(tmp_path.iterdir()) == []


def test_native_static_and_dynamic_round_trip(tmp_path):
    static = random_world(n=20, sh_degree=2)
    static.info = {"depth_source": "given"}
    back = load_world(save_world(static, tmp_path / "s.safetensors"))
    assert isinstance(back, GaussianWorld) and back.info == {"depth_source": "given"}
    assert_worlds_close(static, back, atol=0, rtol=0)
    dyn = DynamicGaussianWorld([0.0, 0.5, 1.0], [random_world(n=10 + i, seed=i) for i in range(3)])
    back = load_world(save_world(dyn, tmp_path / "d.safetensors"))
    assert isinstance(back, DynamicGaussianWorld) and back.times == [0.0, 0.5, 1.0]
    for a, b in zip(dyn.worlds, back.worlds, strict=True):
        assert_worlds_close(a, b, atol=0, rtol=0)
    with pytest.raises(WorldFileError, match="PLY holds one static world"):
        save_world(dyn, tmp_path / "d.ply")


def test_native_file_that_is_not_a_world(tmp_path):
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(WorldFileError, match="not a lyra_sim world"):
        load_world(tmp_path / "other.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(WorldFileError, match="corrupt"):
        load_world(tmp_path / "junk.safetensors")
    with pytest.raises(WorldFileError, match="unknown world file type"):
        load_world(tmp_path / "w.obj")
