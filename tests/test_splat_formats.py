"""Splat exchange formats: Niantic .spz, SuperSplat compressed .ply, antimatter15 .splat.

Each is checked three ways: a lyra_sim round trip, a file written by gsply directly (the other
library), and our file decoded here by hand from the format's spec (axes, quantisation, SH order).
"""

import gzip
import struct

import gsply
import numpy as np
import plyfile
import pytest
import torch
from conftest import random_world
from scipy.spatial import cKDTree

from lyra_sim.io import WorldFileError, load_world, save_world
from lyra_sim.rotations import quat_to_rotmat
from lyra_sim.world import SH_C0, GaussianWorld

RDF_TO_RUB = torch.diag(torch.tensor([1.0, -1.0, -1.0]))


def world_for_formats(n=700, degree=3, seed=0) -> GaussianWorld:
    """A random world whose SH terms lie inside the formats' quantisation ranges."""
    world = random_world(n=n, sh_degree=degree, seed=seed)
    world.sh[:, 1:] = world.sh[:, 1:].clamp(-0.9, 0.9)
    return world


def matched(reference: GaussianWorld, other: GaussianWorld) -> GaussianWorld:
    """``other`` reordered to ``reference``'s Gaussians (compressed PLY sorts them), by nearest centre."""
    distance, index = cKDTree(other.means.numpy()).query(reference.means.numpy())
    assert len(set(index.tolist())) == len(reference), "Gaussians merged or lost"
    assert distance.max() < 0.01
    return other.subset(torch.from_numpy(index))


def assert_close_worlds(a, b, pos, scale_rel, opacity, sh):
    assert len(a) == len(b)
    assert (a.means - b.means).abs().max() <= pos
    assert ((a.scales - b.scales).abs() / a.scales).max() <= scale_rel
    assert (a.opacities - b.opacities).abs().max() <= opacity
    assert (a.sh - b.sh).abs().max() <= sh
    # Orientation: compare rotation matrices (q and -q are the same Gaussian).
    assert (quat_to_rotmat(a.quats) - quat_to_rotmat(b.quats)).abs().max() <= 0.01


# --- SPZ ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [3, 4])
def test_spz_round_trip(tmp_path, version):
    world = world_for_formats()
    back = load_world(save_world(world, tmp_path / "w.spz", version=version))
    assert back.frame == "opencv" and back.meters_per_unit is None and back.sh_degree == 3
    assert_close_worlds(world, back, pos=2.5e-4, scale_rel=0.05, opacity=0.004, sh=0.02)


def _decode_spz_v3(path):
    """Our reading of Niantic's v3 layout: gzip(header, positions, alphas, colours, scales, rotations, SH)."""
    raw = gzip.decompress(path.read_bytes())
    magic, version, n, degree, fractional_bits, _flags, _ = struct.unpack_from("<IIIBBBB", raw)
    assert (magic, version) == (0x5053474E, 3)
    offset = 16
    pos = np.frombuffer(raw, np.uint8, 9 * n, offset).reshape(n, 3, 3).astype(np.int32)
    fixed = pos[..., 0] | (pos[..., 1] << 8) | (pos[..., 2] << 16)
    fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
    offset += 9 * n + n + 3 * n + 3 * n + 4 * n  # positions, alphas, colours, scales, rotations
    k = (degree + 1) ** 2 - 1
    sh = np.frombuffer(raw, np.uint8, n * k * 3, offset).reshape(n, k, 3)
    return fixed / (1 << fractional_bits), (sh.astype(np.float64) - 128) / 128


def test_spz_file_is_rub_with_sh_signs_flipped_as_the_spec_says(tmp_path):
    world = world_for_formats(degree=1)
    positions, sh_rest = _decode_spz_v3(save_world(world, tmp_path / "w.spz"))
    # RDF (opencv) -> RUB: y and z negated.
    np.testing.assert_allclose(positions, (world.means @ RDF_TO_RUB).numpy(), atol=2.5e-4)
    # Degree-1 basis (y, z, x): the y and z terms change sign, the x term does not.
    expected = world.sh[:, 1:4].numpy() * np.array([-1.0, -1.0, 1.0])[None, :, None]
    np.testing.assert_allclose(sh_rest, expected, atol=1 / 128 + 1e-6)


def test_our_spz_read_by_nvidias_independent_decoder(tmp_path, capsys):
    reader = pytest.importorskip("usd_convert_gsplat").read_spz
    world = world_for_formats(n=300, degree=0)
    data = reader(str(save_world(world, tmp_path / "w.spz")))
    capsys.readouterr()
    np.testing.assert_allclose(data.positions, (world.means @ RDF_TO_RUB).numpy(), atol=2.5e-4)
    np.testing.assert_allclose(np.exp(data.scales), world.scales.numpy(), rtol=0.05)
    np.testing.assert_allclose(1 / (1 + np.exp(-data.opacities)), world.opacities.numpy(), atol=0.004)
    np.testing.assert_allclose(data.f_dc, world.sh[:, 0].numpy(), atol=0.02)
    rotations = quat_to_rotmat(torch.from_numpy(np.asarray(data.rotations, np.float32)))
    # Niantic's convention: R -> F R F (F the RDF <-> RUB flip), not F R (same ellipsoid, another quaternion).
    assert (rotations - RDF_TO_RUB @ quat_to_rotmat(world.quats) @ RDF_TO_RUB).abs().max() < 0.01


def test_spz_written_by_gsply_reads_in_opencv_and_z_up(tmp_path):
    rng = np.random.default_rng(1)
    n = 50
    quats = rng.normal(size=(n, 4)).astype(np.float32)
    quats /= np.linalg.norm(quats, axis=1, keepdims=True)
    rub = rng.normal(size=(n, 3)).astype(np.float32)
    data = gsply.GSData(means=rub, scales=rng.uniform(-4, -1, (n, 3)).astype(np.float32), quats=quats,
                        opacities=rng.uniform(-3, 3, n).astype(np.float32),
                        sh0=rng.normal(size=(n, 3)).astype(np.float32), shN=None)
    gsply.write_spz(tmp_path / "g.spz", data)
    opencv = load_world(tmp_path / "g.spz")
    np.testing.assert_allclose(opencv.means.numpy(), rub * [1, -1, -1], atol=2.5e-4)
    np.testing.assert_allclose(opencv.scales.numpy(), np.exp(data.scales), rtol=0.04)
    np.testing.assert_allclose(opencv.sh[:, 0].numpy(), data.sh0, atol=0.02)
    z_up = load_world(tmp_path / "g.spz", frame="z_up")  # RUB's up (+y) becomes +z, back (+z) becomes -x
    assert z_up.frame == "z_up"
    np.testing.assert_allclose(z_up.means.numpy(), np.stack([-rub[:, 2], -rub[:, 0], rub[:, 1]], 1), atol=2.5e-4)


def test_z_up_world_keeps_its_up_axis_through_spz(tmp_path):
    world = world_for_formats(degree=2).with_z_up_axes()
    back = load_world(save_world(world, tmp_path / "w.spz"), frame="z_up")
    assert_close_worlds(world, back, pos=2.5e-4, scale_rel=0.05, opacity=0.004, sh=0.02)


def test_spz_hostile_and_broken_files(tmp_path):
    bomb = tmp_path / "bomb.spz"
    bomb.write_bytes(gzip.compress(struct.pack("<IIIBBBB", 0x5053474E, 3, 10**9, 3, 12, 0, 0)))
    with pytest.raises(WorldFileError, match=r"bomb\.spz.*1,000,000,000 Gaussians"):
        load_world(bomb)
    path = save_world(world_for_formats(n=40), tmp_path / "w.spz")
    truncated = tmp_path / "truncated.spz"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(WorldFileError, match=r"truncated\.spz"):
        load_world(truncated)
    (tmp_path / "text.spz").write_text("hello")
    with pytest.raises(WorldFileError, match="not an SPZ file"):
        load_world(tmp_path / "text.spz")


# --- compressed PLY ----------------------------------------------------------------------------------


def test_compressed_ply_round_trip_keeps_frame_scale_and_info(tmp_path):
    world = world_for_formats().with_z_up_axes()
    world.meters_per_unit = 0.25
    world.info = {"depth_source": "given", "metric": True, "image_size": [64, 48]}
    path = save_world(world, tmp_path / "w.compressed.ply")
    assert plyfile.PlyData.read(str(path))["vertex"].data.dtype.names == (
        "packed_position", "packed_rotation", "packed_scale", "packed_color")
    back = load_world(path)
    assert back.frame == "z_up" and back.meters_per_unit == 0.25 and back.info == world.info
    extent = float((world.means.max(0).values - world.means.min(0).values).max())
    assert_close_worlds(world, matched(world, back), pos=extent / 1000, scale_rel=0.01, opacity=0.004, sh=0.04)


def test_compressed_ply_format_is_chosen_by_option_and_told_apart_by_header(tmp_path):
    world = world_for_formats(n=300, degree=0)
    plain = save_world(world, tmp_path / "plain.ply")
    packed = save_world(world, tmp_path / "packed.ply", format="compressed_ply")
    assert "packed_position" not in plain.read_bytes()[:2000].decode("latin-1")
    assert "packed_position" in packed.read_bytes()[:2000].decode("latin-1")
    assert packed.stat().st_size < plain.stat().st_size / 3
    assert torch.equal(load_world(plain).means, world.means)  # the plain reader, bit-exact
    assert len(load_world(packed)) == len(world)


def test_compressed_ply_decoded_from_the_spec(tmp_path):
    """Positions from the chunk bounds and 11-10-11 bits; f_rest as uchar in PLY's channel-major order."""
    world = world_for_formats(n=600, degree=1)
    ply = plyfile.PlyData.read(str(save_world(world, tmp_path / "w.compressed.ply")))
    chunk, vertex, sh = ply["chunk"].data, ply["vertex"].data, ply["sh"].data
    packed = vertex["packed_position"].astype(np.int64)
    fractions = np.stack([(packed >> 21) & 2047, (packed >> 11) & 1023, packed & 2047], 1) / [2047, 1023, 2047]
    c = np.arange(len(vertex)) // 256
    lo = np.stack([chunk["min_x"][c], chunk["min_y"][c], chunk["min_z"][c]], 1)
    hi = np.stack([chunk["max_x"][c], chunk["max_y"][c], chunk["max_z"][c]], 1)
    positions = lo + fractions * (hi - lo)
    distance, index = cKDTree(positions).query(world.means.numpy())
    assert distance.max() < 0.01 and len(set(index.tolist())) == len(world)
    rest = np.stack([sh[f"f_rest_{i}"] for i in range(9)], 1)[index].astype(np.float64)
    decoded = (rest - 128) / 32  # 8 bits over [-4, 4]
    expected = world.sh[:, 1:].permute(0, 2, 1).reshape(len(world), 9).numpy()  # R0 R1 R2 G0 G1 G2 B0 B1 B2
    np.testing.assert_allclose(decoded, expected, atol=1 / 32 + 1e-6)


def test_compressed_ply_written_by_gsply_loads(tmp_path):
    world = world_for_formats(n=300, degree=2)
    path = tmp_path / "g.compressed.ply"
    gsply.plywrite(path, world.means.numpy(), np.log(world.scales.numpy()), world.quats.numpy(),
                   torch.log(world.opacities / (1 - world.opacities)).numpy(), world.sh[:, 0].numpy(),
                   world.sh[:, 1:].numpy(), compressed=True)
    back = load_world(path)
    assert back.frame == "opencv" and back.meters_per_unit is None and back.sh_degree == 2
    extent = float((world.means.max(0).values - world.means.min(0).values).max())
    assert_close_worlds(world, matched(world, back), pos=extent / 1000, scale_rel=0.01, opacity=0.004, sh=0.04)


def test_truncated_compressed_ply_names_the_file(tmp_path):
    path = save_world(world_for_formats(n=300, degree=0), tmp_path / "w.compressed.ply")
    broken = tmp_path / "broken.ply"
    broken.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(WorldFileError, match=r"broken\.ply.*body has"):
        load_world(broken)


# --- .splat ------------------------------------------------------------------------------------------


def test_splat_file_written_from_its_spec_reads_back(tmp_path):
    world = world_for_formats(n=64, degree=0)
    rgb = (world.sh[:, 0] * SH_C0 + 0.5).clamp(0, 1)
    records = b"".join(
        struct.pack(
            "<3f3f4B4B",
            *world.means[i].tolist(),
            *world.scales[i].tolist(),
            *[round(float(v) * 255) for v in (*rgb[i], world.opacities[i])],
            *[int(np.clip(float(q) * 128 + 128, 0, 255)) for q in world.quats[i]],
        )
        for i in range(len(world))
    )
    (tmp_path / "w.splat").write_bytes(records)
    back = load_world(tmp_path / "w.splat")
    assert back.frame == "opencv" and back.sh_degree == 0 and len(back) == len(world)
    torch.testing.assert_close(back.means, world.means)
    torch.testing.assert_close(back.scales, world.scales)
    assert (back.rgb - rgb).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.opacities - world.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert (quat_to_rotmat(back.quats) - quat_to_rotmat(world.quats)).abs().max() < 0.05


def test_splat_of_the_wrong_size_is_named(tmp_path):
    (tmp_path / "w.splat").write_bytes(b"\0" * 33)
    with pytest.raises(WorldFileError, match=r"w\.splat.*32-byte"):
        load_world(tmp_path / "w.splat")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda h: h.replace(b"property float min_r\n", b""), "element 'chunk' has properties"),
        (lambda h: h.replace(b"property uint packed_color\n", b"property float packed_color\n"), "'vertex'"),
        (lambda h: h.replace(b"property uchar f_rest_8\n", b""), "'sh' element"),
        (lambda h: h.replace(b"format binary_little_endian", b"format binary_big_endian"), "little_endian"),
    ],
)
def test_compressed_ply_with_another_layout_is_refused_by_name(tmp_path, edit, message):
    data = save_world(world_for_formats(n=10, degree=1), tmp_path / "w.compressed.ply").read_bytes()
    end = data.index(b"end_header\n")
    (tmp_path / "odd.ply").write_bytes(edit(data[:end]) + data[end:])
    with pytest.raises(WorldFileError, match=r"odd\.ply.*" + message):
        load_world(tmp_path / "odd.ply")


@pytest.mark.parametrize("name", ["w.spz", "w.compressed.ply"])
def test_formats_without_an_observed_flag_say_they_drop_it(tmp_path, caplog, name):
    world = world_for_formats(n=50, degree=0)
    world.observed = torch.arange(50) < 30  # 20 completed Gaussians
    with caplog.at_level("WARNING"):
        back = load_world(save_world(world, tmp_path / name))
    assert "20 completed (unobserved) Gaussians" in caplog.text and name in caplog.text
    assert len(back) == 50 and bool(back.observed.all())
