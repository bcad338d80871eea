"""The formats the field exchanges: glTF KHR_gaussian_splatting, PlayCanvas SOG, .splat writing, and the
PLY / compressed PLY / SPZ details other tools rely on.

Each format is checked against something other than our own reader: the file decoded here by hand from
its specification, a file built by hand from the specification, gsply, or PlayCanvas's splat-transform
(npm). The splat-transform tests run when ``LYRA_SPLAT_TRANSFORM`` names its ``bin/cli.mjs`` (or a
``splat-transform`` command is on PATH) and node is installed; they skip otherwise:

    npm install --prefix /tmp/st @playcanvas/splat-transform
    export LYRA_SPLAT_TRANSFORM=/tmp/st/node_modules/@playcanvas/splat-transform/bin/cli.mjs
    pytest tests/test_exchange_formats.py
"""

import base64
import io
import json
import math
import os
import shutil
import struct
import subprocess
import zipfile

import gsply
import numpy as np
import plyfile
import pytest
import torch
from conftest import random_world
from PIL import Image
from scipy.spatial import cKDTree

from lyra_sim.io import REGISTRY, WorldFileError, load_world, save_world
from lyra_sim.io.gltf import FRAME_TO_GLTF
from lyra_sim.rotations import quat_to_rotmat
from lyra_sim.world import SH_C0, GaussianWorld


def world_for_formats(n=600, degree=3, seed=0) -> GaussianWorld:
    world = random_world(n=n, sh_degree=degree, seed=seed)
    world.sh[:, 1:] = world.sh[:, 1:].clamp(-0.9, 0.9)
    return world


def matched(reference: GaussianWorld, other: GaussianWorld) -> GaussianWorld:
    """``other`` reordered to ``reference``'s Gaussians by nearest centre (SOG and .splat reorder them)."""
    distance, index = cKDTree(other.means.numpy()).query(reference.means.numpy())
    assert len(set(index.tolist())) == len(reference) and distance.max() < 0.01
    return other.subset(torch.from_numpy(index))


def rotation_error(a: GaussianWorld, b: GaussianWorld) -> float:
    return float((quat_to_rotmat(a.quats) - quat_to_rotmat(b.quats)).abs().max())


def splat_transform():
    """The command running PlayCanvas's splat-transform, or None (then the interop tests skip)."""
    cli = os.environ.get("LYRA_SPLAT_TRANSFORM")
    if cli and os.path.isfile(cli) and shutil.which("node"):
        return ["node", cli]
    found = shutil.which("splat-transform")
    return [found] if found else None


def run_splat_transform(*args):
    command = splat_transform()
    if command is None:
        pytest.skip("PlayCanvas splat-transform is not installed (set LYRA_SPLAT_TRANSFORM)")
    result = subprocess.run([*command, "-w", "-q", "-g", "cpu", *map(str, args)], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]


def test_new_formats_are_registered_for_reading_and_writing():
    writable = REGISTRY.suffixes(writable=True)
    for suffix in (".glb", ".gltf", ".sog", ".splat"):
        assert suffix in writable and suffix in REGISTRY.suffixes(readable=True)


# --- PLY: infinities other tools write -----------------------------------------------------------------------


def _ply_with(tmp_path, name, **columns):
    world = world_for_formats(n=4, degree=0)
    path = save_world(world, tmp_path / "base.ply")
    data = plyfile.PlyData.read(str(path))["vertex"].data.copy()
    for key, values in columns.items():
        data[key] = values
    out = tmp_path / name
    plyfile.PlyData([plyfile.PlyElement.describe(data, "vertex")]).write(str(out))
    return world, out


def test_ply_infinite_opacity_logits_and_log_scales_are_their_limits(tmp_path):
    world, path = _ply_with(tmp_path, "inf.ply", opacity=[np.inf, -np.inf, 0.0, np.inf],
                            scale_0=[-np.inf, 0.0, np.log(0.5), -np.inf])
    back = load_world(path)
    np.testing.assert_allclose(back.opacities.numpy(), [1.0, 0.0, 0.5, 1.0])
    np.testing.assert_allclose(back.scales[:, 0].numpy(), [0.0, 1.0, 0.5, 0.0], rtol=1e-6)
    torch.testing.assert_close(back.scales[:, 1:], world.scales[:, 1:])


@pytest.mark.parametrize(("column", "value"), [("scale_1", np.inf), ("opacity", np.nan), ("x", -np.inf)])
def test_ply_other_non_finite_values_are_still_refused_by_name(tmp_path, column, value):
    _, path = _ply_with(tmp_path, "bad.ply", **{column: [0.0, value, 0.0, 0.0]})
    with pytest.raises(WorldFileError, match=rf"bad\.ply.*{column}.*vertex 1"):
        load_world(path)


# --- compressed PLY: the 12-property chunk layout and Morton-ordered chunks ----------------------------------


def test_compressed_ply_with_12_property_chunks_reads_colours_as_plain_bytes(tmp_path):
    """Built from the layout: the 18-property file rewritten without colour bounds, colours re-packed as 8-bit
    0.5 + SH_C0 * f_dc (what splat-transform and the PlayCanvas engine read when the bounds are absent)."""
    world = world_for_formats(n=700, degree=0)
    ply = plyfile.PlyData.read(str(save_world(world, tmp_path / "w.compressed.ply")))
    chunk, vertex = ply["chunk"].data, ply["vertex"].data
    packed = vertex["packed_color"].astype(np.int64)
    c = np.arange(len(vertex)) // 256
    old = []
    for shift, channel in zip((24, 16, 8), "rgb", strict=True):
        lo, hi = chunk[f"min_{channel}"][c], chunk[f"max_{channel}"][c]
        old.append(lo + ((packed >> shift) & 255) / 255 * (hi - lo))
    rgb = np.clip(np.round(np.stack(old, 1) * 255), 0, 255).astype(np.int64)
    new_vertex = vertex.copy()
    new_vertex["packed_color"] = (rgb[:, 0] << 24 | rgb[:, 1] << 16 | rgb[:, 2] << 8 | (packed & 255)).astype(np.uint32)
    names = [n for n in chunk.dtype.names if n[-1] not in "rgb" or "scale" in n]
    assert len(names) == 12
    short_chunk = np.empty(len(chunk), [(n, "<f4") for n in names])
    for n in names:
        short_chunk[n] = chunk[n]
    out = tmp_path / "twelve.ply"
    plyfile.PlyData([plyfile.PlyElement.describe(short_chunk, "chunk"),
                     plyfile.PlyElement.describe(new_vertex, "vertex")], comments=ply.comments).write(str(out))
    back = matched(world, load_world(out))
    assert (back.rgb - world.rgb).abs().max() < 2.5 / 255


def test_compressed_ply_chunks_are_spatially_coherent(tmp_path):
    world = world_for_formats(n=256 * 40, degree=0)
    ours = plyfile.PlyData.read(str(save_world(world, tmp_path / "w.compressed.ply")))["chunk"].data
    gsply.plywrite(tmp_path / "g.compressed.ply", world.means.numpy(), np.log(world.scales.numpy()),
                   world.quats.numpy(), np.zeros(len(world), np.float32), world.sh[:, 0].numpy(), None,
                   compressed=True)
    unsorted = plyfile.PlyData.read(str(tmp_path / "g.compressed.ply"))["chunk"].data

    def volume(chunk):
        return np.median(np.prod([chunk[f"max_{a}"] - chunk[f"min_{a}"] for a in "xyz"], axis=0))

    assert volume(ours) < volume(unsorted) / 20
    back = matched(world, load_world(tmp_path / "w.compressed.ply"))
    extent = float((world.means.max(0).values - world.means.min(0).values).max())
    assert float((back.means - world.means).norm(dim=1).median()) < extent * 2e-4


# --- SPZ: Niantic's own reference values ---------------------------------------------------------------------


def test_spz_rotation_matches_niantics_reference_conversion(tmp_path):
    """Niantic's test_coordinate_system.py: RUB (1, 2, 3), quaternion xyzw (0.1, 0.2, 0.3, 0.9) is RDF
    (1, -2, -3), (0.1, -0.2, -0.3, 0.9): y and z of the quaternion change sign, w and x stay."""
    q_rub = np.array([0.9, 0.1, 0.2, 0.3]) / np.linalg.norm([0.9, 0.1, 0.2, 0.3])  # real-first
    q_rdf = q_rub * [1, 1, -1, -1]
    world = GaussianWorld(means=torch.tensor([[1.0, -2.0, -3.0]]), quats=torch.from_numpy(q_rdf[None]).float(),
                          scales=torch.full((1, 3), 0.1), opacities=torch.tensor([0.5]), sh=torch.zeros(1, 1, 3))
    data = gsply.read_spz(save_world(world, tmp_path / "w.spz"))
    np.testing.assert_allclose(data.means[0], [1.0, 2.0, 3.0], atol=2.5e-4)
    stored = np.asarray(data.quats[0], np.float64) * np.sign(data.quats[0][0])
    np.testing.assert_allclose(stored, q_rub, atol=3e-3)
    gsply.write_spz(tmp_path / "niantic.spz", gsply.GSData(
        means=np.array([[1.0, 2.0, 3.0]], np.float32), scales=np.full((1, 3), np.log(0.1), np.float32),
        quats=q_rub[None].astype(np.float32), opacities=np.zeros(1, np.float32), sh0=np.zeros((1, 3), np.float32),
        shN=None))
    back = load_world(tmp_path / "niantic.spz")
    np.testing.assert_allclose(back.means[0].numpy(), [1.0, -2.0, -3.0], atol=2.5e-4)
    np.testing.assert_allclose(back.quats[0].numpy() * np.sign(float(back.quats[0, 0])), q_rdf, atol=3e-3)


# --- .splat writing -------------------------------------------------------------------------------------------


def test_splat_written_matches_its_spec_and_reads_back(tmp_path, caplog):
    world = world_for_formats(n=64, degree=1)
    with caplog.at_level("WARNING"):
        path = save_world(world, tmp_path / "w.splat")
    assert "SH degree 1" in caplog.text
    raw = path.read_bytes()
    assert len(raw) == 32 * len(world)
    records = [struct.unpack_from("<3f3f4B4B", raw, 32 * i) for i in range(len(world))]
    order = torch.argsort(world.scales.double().prod(1) * world.opacities, descending=True)
    # Most visible (scale product x opacity) first, as antimatter15's converter writes.
    np.testing.assert_allclose([r[:3] for r in records], world.means[order].numpy())
    first = int(order[0])
    np.testing.assert_allclose(records[0][:3], world.means[first].numpy())
    expected_rgb = np.round((world.sh[first, 0].numpy() * SH_C0 + 0.5).clip(0, 1) * 255)
    np.testing.assert_array_equal(records[0][6:9], expected_rgb)
    np.testing.assert_allclose((np.array(records[0][10:14]) - 128) / 128, world.quats[first].numpy(), atol=1 / 128)
    back = matched(world, load_world(path))
    torch.testing.assert_close(back.scales, world.scales)
    assert (back.opacities - world.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert rotation_error(back, world) < 0.05


# --- glTF KHR_gaussian_splatting ------------------------------------------------------------------------------


def decode_glb(path):
    """GLB by hand from the glTF 2.0 specification: header, JSON chunk, BIN chunk, accessors."""
    raw = path.read_bytes()
    magic, version, length = struct.unpack_from("<III", raw)
    assert (magic, version, length) == (0x46546C67, 2, len(raw))
    json_len, json_type = struct.unpack_from("<II", raw, 12)
    assert json_type == 0x4E4F534A
    gltf = json.loads(raw[20:20 + json_len])
    bin_len, bin_type = struct.unpack_from("<II", raw, 20 + json_len)
    assert bin_type == 0x004E4942
    blob = raw[28 + json_len:28 + json_len + bin_len]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4}
    dtype = {5126: "<f4", 5121: "u1"}

    def attribute(index):
        acc = gltf["accessors"][index]
        view = gltf["bufferViews"][acc["bufferView"]]
        values = np.frombuffer(blob, dtype[acc["componentType"]], acc["count"] * width[acc["type"]],
                               view.get("byteOffset", 0) + acc.get("byteOffset", 0))
        return values.reshape(acc["count"], width[acc["type"]])

    primitive = gltf["meshes"][0]["primitives"][0]
    return gltf, primitive, {name: attribute(i) for name, i in primitive["attributes"].items()}


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_glb_decoded_by_hand_from_the_khronos_spec(tmp_path, degree):
    world = world_for_formats(n=200, degree=degree)
    gltf, primitive, attributes = decode_glb(save_world(world, tmp_path / "w.glb"))
    assert gltf["extensionsUsed"] == ["KHR_gaussian_splatting"] and primitive["mode"] == 0
    ext = primitive["extensions"]["KHR_gaussian_splatting"]
    assert ext["kernel"] == "ellipse" and ext["colorSpace"] == "srgb_rec709_display"
    # glTF axes (+Y up, +Z front, +X left): a camera-made world turns a half turn about z.
    np.testing.assert_allclose(attributes["POSITION"], world.means.numpy() * [-1, -1, 1], atol=1e-6)
    xyzw = attributes["KHR_gaussian_splatting:ROTATION"]
    np.testing.assert_allclose(np.linalg.norm(xyzw, axis=1), 1.0, atol=1e-6)
    turn = torch.tensor(FRAME_TO_GLTF["opencv"])
    rotations = quat_to_rotmat(torch.from_numpy(xyzw[:, [3, 0, 1, 2]].copy()))
    assert (rotations - turn @ quat_to_rotmat(world.quats)).abs().max() < 1e-5
    np.testing.assert_allclose(attributes["KHR_gaussian_splatting:SCALE"], world.scales.numpy(), rtol=1e-6)  # linear
    np.testing.assert_allclose(attributes["KHR_gaussian_splatting:OPACITY"][:, 0], world.opacities.numpy())
    np.testing.assert_allclose(attributes["KHR_gaussian_splatting:SH_DEGREE_0_COEF_0"], world.sh[:, 0].numpy())
    names = [k for k in attributes if "SH_DEGREE" in k]
    assert len(names) == (degree + 1) ** 2
    if degree >= 1:  # degree 1 basis (y, z, x) under the half turn about z: the y and x terms change sign
        for n, sign in zip(range(3), (-1, 1, -1), strict=True):
            np.testing.assert_allclose(attributes[f"KHR_gaussian_splatting:SH_DEGREE_1_COEF_{n}"],
                                       sign * world.sh[:, 1 + n].numpy(), atol=1e-5)
    linear = np.where(world.rgb.numpy() <= 0.04045, world.rgb.numpy() / 12.92,
                      ((world.rgb.numpy() + 0.055) / 1.055) ** 2.4)
    np.testing.assert_allclose(attributes["COLOR_0"][:, :3] / 255, linear, atol=0.5 / 255 + 1e-6)
    back = load_world(tmp_path / "w.glb", frame="opencv")
    assert (back.means - world.means).abs().max() < 1e-6 and (back.sh - world.sh).abs().max() < 1e-5
    assert rotation_error(back, world) < 1e-5


def test_gltf_keeps_scale_info_observed_flags_and_gives_z_up_by_default(tmp_path):
    world = world_for_formats(n=100, degree=1)
    world.meters_per_unit, world.info = 0.5, {"depth_source": "given"}
    world.observed = torch.arange(100) < 60
    back = load_world(save_world(world, tmp_path / "w.gltf"))
    assert back.frame == "z_up" and back.meters_per_unit == 1.0 and back.info == world.info
    assert torch.equal(back.observed, world.observed)
    metric = world.with_z_up_axes().transformed(scale=0.5)
    assert (back.means - metric.means).abs().max() < 1e-5 and (back.scales - metric.scales).abs().max() < 1e-6


def _hand_built_gltf(tmp_path, node):
    """A .gltf written from the spec: normalised short rotations, u8 normalised opacity, one node transform."""
    rotation = np.array([[0, 0, 0, 32767], [0, 0, 23170, 23170]], "<i2")  # identity; 90 degrees about z (xyzw)
    blob = (np.array([[1, 2, 3], [0, 0, 0]], "<f4").tobytes() + rotation.tobytes()
            + np.array([[0.1, 0.2, 0.3]] * 2, "<f4").tobytes() + np.array([255, 128, 0, 0], "u1").tobytes()
            + np.zeros((2, 3), "<f4").tobytes())
    offsets = [0, 24, 40, 64, 68]
    kinds = [(5126, "VEC3", False), (5122, "VEC4", True), (5126, "VEC3", False), (5121, "SCALAR", True),
             (5126, "VEC3", False)]
    names = ["POSITION", "KHR_gaussian_splatting:ROTATION", "KHR_gaussian_splatting:SCALE",
             "KHR_gaussian_splatting:OPACITY", "KHR_gaussian_splatting:SH_DEGREE_0_COEF_0"]
    sizes = [24, 16, 24, 2, 24]
    gltf = {
        "asset": {"version": "2.0"}, "extensionsUsed": ["KHR_gaussian_splatting"], "scene": 0,
        "scenes": [{"nodes": [0]}], "nodes": [{"mesh": 0, **node}],
        "buffers": [{"byteLength": len(blob),
                     "uri": "data:application/octet-stream;base64," + base64.b64encode(blob).decode()}],
        "bufferViews": [{"buffer": 0, "byteOffset": o, "byteLength": s} for o, s in zip(offsets, sizes, strict=True)],
        "accessors": [{"bufferView": i, "componentType": c, "type": t, "count": 2, "normalized": n}
                      for i, (c, t, n) in enumerate(kinds)],
        "meshes": [{"primitives": [{"mode": 0, "attributes": {name: i for i, name in enumerate(names)},
                                    "extensions": {"KHR_gaussian_splatting": {"kernel": "ellipse",
                                                                              "colorSpace": "srgb_rec709_display"}}}]}],
    }
    path = tmp_path / "hand.gltf"
    path.write_text(json.dumps(gltf))
    return path


def test_hand_built_gltf_with_quantised_attributes_and_a_node_transform(tmp_path):
    path = _hand_built_gltf(tmp_path, {"translation": [10.0, 0.0, 0.0], "scale": [2.0, 2.0, 2.0]})
    world = load_world(path, frame="opencv")  # undo glTF's axes: x = -x_gltf, y = -y_gltf
    np.testing.assert_allclose(world.means.numpy(), [[-12, -4, 6], [-10, 0, 0]], atol=1e-6)
    np.testing.assert_allclose(world.scales.numpy(), [[0.2, 0.4, 0.6]] * 2, rtol=1e-6)
    np.testing.assert_allclose(world.opacities.numpy(), [1.0, 128 / 255], atol=1e-6)
    assert world.meters_per_unit is None  # other tools copy their trainer's units
    turned = quat_to_rotmat(world.quats[1:])[0]  # 90 degrees about glTF's z, then the half turn to our axes
    np.testing.assert_allclose(turned.numpy(), [[0, 1, 0], [-1, 0, 0], [0, 0, 1]], atol=1e-4)
    mirrored = _hand_built_gltf(tmp_path, {"scale": [1.0, 1.0, -1.0]})
    with pytest.raises(WorldFileError, match=r"hand\.gltf.*non-uniform, mirrored"):
        load_world(mirrored)


def test_broken_gltf_files_are_named(tmp_path):
    path = save_world(world_for_formats(n=50, degree=0), tmp_path / "w.glb")
    (tmp_path / "cut.glb").write_bytes(path.read_bytes()[: path.stat().st_size - 400])
    with pytest.raises(WorldFileError, match=r"cut\.glb"):
        load_world(tmp_path / "cut.glb")
    (tmp_path / "text.gltf").write_text("{not json")
    with pytest.raises(WorldFileError, match=r"text\.gltf.*not a readable glTF"):
        load_world(tmp_path / "text.gltf")
    (tmp_path / "mesh.gltf").write_text(json.dumps({"asset": {"version": "2.0"}, "meshes": []}))
    with pytest.raises(WorldFileError, match="no KHR_gaussian_splatting primitive"):
        load_world(tmp_path / "mesh.gltf")


def test_glb_written_by_splat_transform_loads(tmp_path):
    world = world_for_formats(n=500, degree=3)
    run_splat_transform(save_world(world, tmp_path / "w.ply"), tmp_path / "st.glb")
    back = load_world(tmp_path / "st.glb", frame="opencv")
    assert back.sh_degree == 3
    assert (back.means - world.means).abs().max() < 1e-5 and (back.sh - world.sh).abs().max() < 1e-5
    assert ((back.scales - world.scales).abs() / world.scales).max() < 1e-5 and rotation_error(back, world) < 1e-5


# --- SOG -----------------------------------------------------------------------------------------------------


def decode_sog_by_hand(path):
    """Positions, quaternions (real-first) and opacities of a SOG v2 bundle, from PlayCanvas's specification."""
    with zipfile.ZipFile(path) as bundle:
        meta = json.loads(bundle.read("meta.json"))

        def pixels(name):
            return np.asarray(Image.open(io.BytesIO(bundle.read(name))).convert("RGBA")).reshape(-1, 4)[:meta["count"]]

        lo, hi = pixels("means_l.webp").astype(float), pixels("means_u.webp").astype(float)
        quats, colour = pixels("quats.webp").astype(float), pixels("sh0.webp")
    mins, maxs = np.array(meta["means"]["mins"]), np.array(meta["means"]["maxs"])
    v = mins + (maxs - mins) * (lo[:, :3] + 256 * hi[:, :3]) / 65535
    means = np.sign(v) * (np.exp(np.abs(v)) - 1)
    out = np.zeros((len(quats), 4))
    for i, (r, g, b, a) in enumerate(quats):
        largest = int(a) - 252
        others = [j for j in range(4) if j != largest]
        small = (np.array([r, g, b]) / 255 * 2 - 1) / math.sqrt(2)
        out[i, others] = small
        out[i, largest] = math.sqrt(max(0.0, 1 - (small**2).sum()))
    return meta, means, out, colour[:, 3] / 255


def test_sog_decoded_by_hand_from_the_playcanvas_spec(tmp_path):
    world = world_for_formats(n=500, degree=0)
    meta, means, quats, opacity = decode_sog_by_hand(save_world(world, tmp_path / "w.sog"))
    assert meta["version"] == 2 and meta["count"] == 500 and len(meta["scales"]["codebook"]) == 256
    index = cKDTree(means).query(world.means.numpy())[1]
    extent = float((world.means.max(0).values - world.means.min(0).values).max())
    np.testing.assert_allclose(means[index], world.means.numpy(), atol=extent * 1e-4)
    hand = GaussianWorld(torch.from_numpy(means[index]).float(), torch.from_numpy(quats[index]).float(),
                         world.scales, world.opacities, world.sh)
    assert rotation_error(hand, world) < 0.02
    np.testing.assert_allclose(opacity[index], world.opacities.numpy(), atol=0.5 / 255 + 1e-6)


@pytest.mark.parametrize("degree", [0, 3])
def test_sog_round_trip_within_its_precision(tmp_path, degree):
    world = world_for_formats(n=1500, degree=degree)
    world.meters_per_unit, world.info = 0.25, {"metric": True}
    back = load_world(save_world(world, tmp_path / "w.sog"))
    assert back.meters_per_unit == 0.25 and back.info == {"metric": True} and back.sh_degree == degree
    back = matched(world, back)
    assert rotation_error(back, world) < 0.03
    assert ((back.scales - world.scales).abs() / world.scales).max() < 0.03  # 256-entry log-scale codebook
    assert (back.opacities - world.opacities).abs().max() <= 0.5 / 255 + 1e-6
    assert (back.sh[:, 0] - world.sh[:, 0]).abs().max() < 0.03
    if degree:  # a palette of SH sets: small on average, not per Gaussian
        assert float((back.sh[:, 1:] - world.sh[:, 1:]).abs().mean()) < 0.2


def test_sog_folder_with_meta_json_reads_like_the_bundle(tmp_path):
    path = save_world(world_for_formats(n=300, degree=1), tmp_path / "w.sog")
    folder = tmp_path / "folder"
    zipfile.ZipFile(path).extractall(folder)
    a, b = load_world(path), load_world(folder / "meta.json")
    assert torch.equal(a.means, b.means) and torch.equal(a.sh, b.sh)


def test_broken_sog_files_are_named(tmp_path):
    path = save_world(world_for_formats(n=300, degree=1), tmp_path / "w.sog")
    (tmp_path / "cut.sog").write_bytes(path.read_bytes()[:-500])
    with pytest.raises(WorldFileError, match=r"cut\.sog"):
        load_world(tmp_path / "cut.sog")
    folder = tmp_path / "folder"
    zipfile.ZipFile(path).extractall(folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["shN"]["count"] = 1
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(WorldFileError, match=r"meta\.json.*labels point past"):
        load_world(folder / "meta.json")
    meta["version"] = 3
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(WorldFileError, match="SOG version 3 is not supported"):
        load_world(folder / "meta.json")
    meta.update(version=2, means={"files": ["../../etc/passwd", "x"], "mins": [0, 0, 0], "maxs": [1, 1, 1]})
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(WorldFileError, match="not a file beside it"):
        load_world(folder / "meta.json")


def test_our_sog_read_by_splat_transform_and_theirs_by_us(tmp_path):
    world = world_for_formats(n=800, degree=3)
    run_splat_transform(save_world(world, tmp_path / "ours.sog"), tmp_path / "ours_via_st.ply")
    ours = load_world(tmp_path / "ours.sog")
    theirs_reading = load_world(tmp_path / "ours_via_st.ply")
    assert (theirs_reading.means - ours.means).abs().max() < 1e-5  # same decode of the same file
    assert (theirs_reading.sh - ours.sh).abs().max() < 1e-5 and rotation_error(theirs_reading, ours) < 1e-4
    run_splat_transform(tmp_path / "ours_via_st.ply", tmp_path / "st.sog")
    back = matched(world, load_world(tmp_path / "st.sog"))
    assert rotation_error(back, world) < 0.05 and (back.opacities - world.opacities).abs().max() < 0.01
    assert (back.sh[:, 0] - world.sh[:, 0]).abs().max() < 0.05


@pytest.mark.parametrize("name", ["w.spz", "w.compressed.ply"])
def test_our_spz_and_compressed_ply_read_by_splat_transform(tmp_path, name):
    """splat-transform decodes SPZ with Niantic's own library (compiled to WebAssembly): the rotations it gets
    back are the world's only under Niantic's F R F convention."""
    world = world_for_formats(n=700, degree=1)
    run_splat_transform(save_world(world, tmp_path / name), tmp_path / "back.ply")
    back = matched(world, load_world(tmp_path / "back.ply"))
    assert rotation_error(back, world) < 0.01
    assert (back.sh[:, 0] - world.sh[:, 0]).abs().max() < 0.05
    assert ((back.scales - world.scales).abs() / world.scales).max() < 0.05
