"""USD export/import: round trips, schema conventions on the stage itself, validators (OpenUSD and NVIDIA)."""

import math
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import torch
from conftest import random_world
from pxr import Gf, Usd, UsdGeom, UsdPhysics, UsdVol, Vt

from lyra_sim import DynamicGaussianWorld
from lyra_sim.cli import main
from lyra_sim.world import OPENCV_TO_Z_UP
from usd_exporters import UsdWorldError, export_world, import_world, validate_stage


def metric_world(n=150, sh_degree=0, seed=0, frame="z_up"):
    world = random_world(n, sh_degree=sh_degree, seed=seed)
    world.frame, world.meters_per_unit = frame, 1.0
    return world


def box_mesh():
    box = o3d.geometry.TriangleMesh.create_box(4.0, 3.0, 2.0)
    return np.asarray(box.vertices), np.asarray(box.triangles)


def assert_worlds_close(a, b, atol):
    assert len(a) == len(b) and a.sh_degree == b.sh_degree
    for field in ("means", "quats", "scales", "opacities", "sh"):
        torch.testing.assert_close(getattr(a, field), getattr(b, field), atol=atol, rtol=atol)


def nvidia_validate(path):
    """(failures, errors) reported by NVIDIA's validator from PyPI."""
    search_path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"  # the venv's bin first
    exe = shutil.which("nvidia_usd_validate", path=search_path)
    assert exe, "usd-validation-nvidia is part of the test extras"
    out = subprocess.run([exe, str(path)], capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    if "No issues found" in text:
        return 0, 0, text
    failures = int(re.search(r"Failures: (\d+)", text).group(1))
    errors = int(re.search(r"Errors: (\d+)", text).group(1))
    return failures, errors, text


@pytest.mark.parametrize("sh_degree", [0, 1, 2, 3])
@pytest.mark.parametrize("suffix", [".usda", ".usdc", ".usdz"])
def test_static_round_trip_float(tmp_path, sh_degree, suffix):
    world = metric_world(sh_degree=sh_degree, seed=sh_degree)
    path = export_world(world, tmp_path / f"w{suffix}")
    back = import_world(path)
    assert back.frame == "z_up" and back.meters_per_unit == 1.0
    assert_worlds_close(back, world, atol=1e-6)


def test_static_round_trip_half(tmp_path):
    world = metric_world(sh_degree=3)
    back = import_world(export_world(world, tmp_path / "w.usdc", half=True))
    assert_worlds_close(back, world, atol=4e-3)  # half: 11-bit mantissa, values here are O(1)
    stage = Usd.Stage.Open(str(tmp_path / "w.usdc"))
    prim = stage.GetPrimAtPath("/World/Gaussians")
    assert prim.GetAttribute("positionsh").HasAuthoredValue()
    assert not prim.GetAttribute("positions").HasAuthoredValue()


def test_dynamic_round_trip_with_changing_counts(tmp_path):
    worlds = [metric_world(n, sh_degree=d, seed=i) for i, (n, d) in enumerate([(120, 1), (90, 1), (150, 1)])]
    dynamic = DynamicGaussianWorld([0.0, 2.5, 5.0], worlds)
    path = export_world(dynamic, tmp_path / "d.usdc")
    back = import_world(path)
    assert isinstance(back, DynamicGaussianWorld)
    assert back.times == pytest.approx([0.0, 2.5, 5.0])
    for got, expected in zip(back.worlds, worlds, strict=True):
        assert_worlds_close(got, expected, atol=1e-6)

    stage = Usd.Stage.Open(str(path))
    assert stage.GetTimeCodesPerSecond() == 24 and stage.GetStartTimeCode() == 0 and stage.GetEndTimeCode() == 120
    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
    for attribute in (splat.GetPositionsAttr(), splat.GetOrientationsAttr(), splat.GetScalesAttr(),
                      splat.GetOpacitiesAttr(), splat.GetRadianceSphericalHarmonicsCoefficientsAttr(),
                      splat.GetExtentAttr()):
        assert attribute.GetTimeSamples() == [0.0, 60.0, 120.0], attribute.GetName()
    # Constant particle count across samples, padding at zero opacity so USD can interpolate.
    counts = {len(splat.GetPositionsAttr().Get(t)) for t in (0, 60, 120)}
    assert counts == {150}
    assert np.asarray(splat.GetOpacitiesAttr().Get(60))[90:].max() == 0.0
    # A time between samples interpolates (linear for float arrays of equal length).
    mid = np.asarray(splat.GetPositionsAttr().Get(30))
    np.testing.assert_allclose(mid[:90], 0.5 * (worlds[0].means[:90] + worlds[1].means[:90]).numpy(), atol=1e-5)


def test_stage_conventions(tmp_path):
    world = metric_world(sh_degree=1)
    path = export_world(world, tmp_path / "w.usda", collision_mesh=box_mesh(), points_fallback=True)
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.z
    assert UsdGeom.GetStageMetersPerUnit(stage) == 1.0 and UsdPhysics.GetStageKilogramsPerUnit(stage) == 1.0
    assert stage.GetDefaultPrim().GetPath() == "/World" and stage.GetDefaultPrim().IsA(UsdGeom.Xform)
    assert all(prim.GetTypeName() for prim in stage.Traverse())

    splat = UsdVol.ParticleField3DGaussianSplat(stage.GetPrimAtPath("/World/Gaussians"))
    # Linear scales and activated opacities, as the schema says (not log / logit as in PLY).
    np.testing.assert_allclose(np.asarray(splat.GetScalesAttr().Get()), world.scales.numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(splat.GetOpacitiesAttr().Get()), world.opacities.numpy(), rtol=1e-6)
    # Quaternion values are real-first: GfQuatf.GetReal() is our w.
    quat = splat.GetOrientationsAttr().Get()[7]
    assert isinstance(quat, Gf.Quatf)
    assert quat.GetReal() == pytest.approx(world.quats[7, 0].item())
    assert list(quat.GetImaginary()) == pytest.approx(world.quats[7, 1:].tolist())
    assert splat.GetOrientationAttr().Get() == "rightHanded"  # the gprim token is left alone
    assert splat.GetRadianceSphericalHarmonicsDegreeAttr().Get() == 1
    assert len(splat.GetRadianceSphericalHarmonicsCoefficientsAttr().Get()) == 4 * len(world)
    lo, hi = (np.asarray(v) for v in splat.GetExtentAttr().Get())
    assert (world.means.numpy() >= lo).all() and (world.means.numpy() <= hi).all()
    colors = np.asarray(UsdGeom.PrimvarsAPI(splat).GetPrimvar("displayColor").Get())
    np.testing.assert_allclose(colors, (world.sh[:, 0] * 0.28209479 + 0.5).clamp(0, 1).numpy(), atol=1e-6)

    collider = stage.GetPrimAtPath("/World/Collision")
    mesh = UsdGeom.Mesh(collider)
    assert collider.HasAPI(UsdPhysics.CollisionAPI) and collider.HasAPI(UsdPhysics.MeshCollisionAPI)
    assert not collider.HasAPI(UsdPhysics.RigidBodyAPI)
    assert UsdPhysics.MeshCollisionAPI(collider).GetApproximationAttr().Get() == "none"
    assert mesh.GetSubdivisionSchemeAttr().Get() == "none" and mesh.GetPurposeAttr().Get() == "guide"
    assert len(mesh.GetNormalsAttr().Get()) == len(mesh.GetPointsAttr().Get())
    scene = UsdPhysics.Scene(stage.GetPrimAtPath("/World/PhysicsScene"))
    assert tuple(scene.GetGravityDirectionAttr().Get()) == (0, 0, -1)
    assert scene.GetGravityMagnitudeAttr().Get() == pytest.approx(9.81)
    assert splat.GetProxyPrimRel().GetTargets() == ["/World/GaussianPoints"]
    assert UsdGeom.Points(stage.GetPrimAtPath("/World/GaussianPoints")).GetPurposeAttr().Get() == "proxy"


def test_opencv_world_is_turned_to_z_up_with_its_collider(tmp_path):
    world = metric_world(frame="opencv")
    vertices, faces = box_mesh()
    path = export_world(world, tmp_path / "w.usdc", collision_mesh=(vertices, faces))
    back = import_world(path)
    rotation = torch.tensor(OPENCV_TO_Z_UP)
    torch.testing.assert_close(back.means, world.means @ rotation.T, atol=1e-6, rtol=1e-6)
    # A point straight ahead of the camera (OpenCV +z) is ahead in REP-103 (+x); image-down (+y) is -z.
    torch.testing.assert_close(rotation @ torch.tensor([0.0, 1.0, 2.0]), torch.tensor([2.0, 0.0, -1.0]))
    stage = Usd.Stage.Open(str(path))
    points = np.asarray(UsdGeom.Mesh(stage.GetPrimAtPath("/World/Collision")).GetPointsAttr().Get())
    np.testing.assert_allclose(np.sort(points, axis=0), np.sort(vertices @ rotation.numpy().T, axis=0), atol=1e-6)
    with pytest.raises(UsdWorldError, match="align"):
        export_world(world, tmp_path / "x.usdc", convert_frame=False)


def test_scale_is_applied_or_recorded(tmp_path):
    world = metric_world()
    world.meters_per_unit = 0.5
    back = import_world(export_world(world, tmp_path / "half_metres.usdc"))
    torch.testing.assert_close(back.means, world.means * 0.5)
    torch.testing.assert_close(back.scales, world.scales * 0.5)
    world.meters_per_unit = None
    path = export_world(world, tmp_path / "unknown.usda")
    stage = Usd.Stage.Open(str(path))
    assert stage.GetRootLayer().customLayerData["lyra_sim:metric"] is False


def test_plain_particle_field_from_another_tool(tmp_path):
    """Y-up, half attributes only, a prim transform, no orientations: read the way the schema says."""
    path = tmp_path / "other.usda"
    stage = Usd.Stage.CreateNew(str(path))
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.y)
    UsdGeom.SetStageMetersPerUnit(stage, 0.01)
    splat = UsdVol.ParticleField3DGaussianSplat.Define(stage, "/Splats")
    positions = np.array([[1.0, 2.0, 3.0], [-1.0, 0.5, 0.0]], np.float16)
    splat.CreatePositionshAttr(Vt.Vec3hArray.FromNumpy(positions))
    splat.CreateScaleshAttr(Vt.Vec3hArray.FromNumpy(np.full((2, 3), 0.25, np.float16)))
    splat.CreateOpacitieshAttr(Vt.HalfArray.FromNumpy(np.array([0.5, 1.0], np.float16)))
    splat.CreateRadianceSphericalHarmonicsDegreeAttr(0)
    xform = UsdGeom.Xformable(splat.GetPrim())
    xform.AddTranslateOp().Set(Gf.Vec3d(10, 0, 0))
    xform.AddScaleOp().Set(Gf.Vec3f(2, 2, 2))
    stage.GetRootLayer().Save()

    world = import_world(path)
    assert world.meters_per_unit == pytest.approx(0.01) and world.frame == "z_up"
    expected_y_up = positions.astype(np.float32) * 2 + [10, 0, 0]
    expected = expected_y_up @ np.array([[1, 0, 0], [0, 0, -1], [0, 1, 0]], np.float32).T  # y-up -> z-up
    np.testing.assert_allclose(world.means.numpy(), expected, atol=1e-3)
    np.testing.assert_allclose(world.scales.numpy(), 0.5, atol=1e-3)
    assert world.sh.shape == (2, 1, 3) and world.sh.abs().max() == 0  # no coefficients: DC grey
    # Unauthored orientations are identity; the y-up -> z-up turn (+90 deg about x) rotates them.
    half_turn = math.sqrt(0.5)
    np.testing.assert_allclose(world.quats.numpy(), [[half_turn, half_turn, 0, 0]] * 2, atol=1e-6)


def test_import_errors(tmp_path):
    with pytest.raises(UsdWorldError, match="not found"):
        import_world(tmp_path / "none.usda")
    empty = tmp_path / "empty.usda"
    empty_stage = Usd.Stage.CreateNew(str(empty))
    empty_stage.GetRootLayer().Save()
    with pytest.raises(UsdWorldError, match="no ParticleField3DGaussianSplat"):
        import_world(empty)
    with pytest.raises(UsdWorldError, match="expected one of"):
        export_world(metric_world(), tmp_path / "w.obj")
    with pytest.raises(ValueError, match="face indices"):
        export_world(metric_world(), tmp_path / "w.usda", collision_mesh=(np.zeros((3, 3)), [[0, 1, 5]]))
    assert not (tmp_path / "w.usda").exists() and not list(tmp_path.glob(".w.usda.*.usd-export"))


def test_openusd_validators_report_no_errors(tmp_path):
    static = export_world(metric_world(sh_degree=2), tmp_path / "s.usdc", collision_mesh=box_mesh(),
                          points_fallback=True)
    dynamic = export_world(DynamicGaussianWorld([0, 1], [metric_world(80, seed=1), metric_world(60, seed=2)]),
                           tmp_path / "d.usda", collision_mesh=box_mesh())
    assert validate_stage(static) == []
    assert validate_stage(dynamic) == []


def test_nvidia_validator_reports_no_failures_or_errors(tmp_path):
    static = export_world(metric_world(sh_degree=3), tmp_path / "s.usdc", collision_mesh=box_mesh(),
                          points_fallback=True)
    dynamic = export_world(DynamicGaussianWorld([0, 1], [metric_world(80, seed=1), metric_world(60, seed=2)]),
                           tmp_path / "d.usdc", collision_mesh=box_mesh())
    for path in (static, dynamic):
        failures, errors, text = nvidia_validate(path)
        assert (failures, errors) == (0, 0), text


def test_usdz_package_opens_and_validates(tmp_path):
    world = metric_world(sh_degree=1)
    path = export_world(world, tmp_path / "w.usdz", collision_mesh=box_mesh())
    with zipfile.ZipFile(path) as package:
        names = package.namelist()
    assert names == ["w.usdc"]
    assert validate_stage(path) == []
    failures, errors, text = nvidia_validate(path)
    assert (failures, errors) == (0, 0), text
    assert_worlds_close(import_world(path), world, atol=1e-6)


def test_cli_export_usd(tmp_path, capsys):
    world_file = tmp_path / "w.ply"
    from lyra_sim.io import save_world

    save_world(metric_world(sh_degree=1), world_file)
    mesh_file = tmp_path / "box.obj"
    box = o3d.geometry.TriangleMesh.create_box(4.0, 3.0, 2.0)
    o3d.io.write_triangle_mesh(str(mesh_file), box)
    out = tmp_path / "w.usdz"
    assert main(["export-usd", str(world_file), str(out), "--collision", str(mesh_file), "--half"]) == 0
    assert str(out) in capsys.readouterr().out
    stage = Usd.Stage.Open(str(out))
    assert stage.GetPrimAtPath("/World/Collision").HasAPI(UsdPhysics.CollisionAPI)
    assert main(["export-usd", str(world_file), str(tmp_path / "w.txt")]) == 2
    assert not (tmp_path / "w.txt").exists()
    assert len(import_world(out)) == 150
