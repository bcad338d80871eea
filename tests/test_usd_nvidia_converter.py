"""lyra_sim's USD splats against NVIDIA's own converter (usd-convert-gsplat) on the same PLY."""

import numpy as np
import pytest
import torch
from conftest import random_world

from lyra_sim.io import load_world, save_world

pytest.importorskip("pxr")
usd_convert_gsplat = pytest.importorskip("usd_convert_gsplat")
from pxr import Usd, UsdGeom, UsdVol  # noqa: E402

from usd_exporters import export_world  # noqa: E402

SH = "radiance:sphericalHarmonicsCoefficients"
PER_PARTICLE = ("positions", "orientations", "scales", "opacities", SH)


_open_stages = []  # a prim is only valid while its stage lives


def splat_prim(path) -> Usd.Prim:
    stage = Usd.Stage.Open(str(path))
    _open_stages.append(stage)
    prims = [p for p in stage.Traverse() if p.IsA(UsdVol.ParticleField3DGaussianSplat)]
    assert len(prims) == 1
    return prims[0]


def values(prim: Usd.Prim, name: str) -> np.ndarray:
    return np.asarray(prim.GetAttribute(name).Get(), dtype=np.float64)


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_same_ply_gives_the_same_splats_as_usd_convert_gsplat(tmp_path, degree, capsys):
    world = random_world(n=150, sh_degree=degree, seed=degree)
    world.frame, world.meters_per_unit = "z_up", 1.0  # a Z-up metric world: no frame change on export
    ply = save_world(world, tmp_path / "world.ply")
    ours = export_world(load_world(ply), tmp_path / "ours.usda")
    usd_convert_gsplat.convertPlyUSD(str(ply), str(tmp_path / "nvidia.usda"), up_axis="Z")
    capsys.readouterr()  # the converter prints its progress
    a, b = splat_prim(ours), splat_prim(tmp_path / "nvidia.usda")

    for stage_fact in (UsdGeom.GetStageUpAxis, UsdGeom.GetStageMetersPerUnit):
        assert stage_fact(a.GetStage()) == stage_fact(b.GetStage())
    assert a.GetAttribute("radiance:sphericalHarmonicsDegree").Get() == degree
    assert b.GetAttribute("radiance:sphericalHarmonicsDegree").Get() == degree
    for name in PER_PARTICLE:
        ours_attr, theirs_attr = a.GetAttribute(name), b.GetAttribute(name)
        assert ours_attr.GetTypeName() == theirs_attr.GetTypeName(), name
        np.testing.assert_allclose(values(a, name), values(b, name), rtol=2e-6, atol=1e-7, err_msg=name)
    # The SH array as a primvar: per particle ("vertex"), (deg + 1)^2 RGB coefficients each.
    ours_sh, theirs_sh = UsdGeom.Primvar(a.GetAttribute(SH)), UsdGeom.Primvar(b.GetAttribute(SH))
    assert ours_sh.GetInterpolation() == theirs_sh.GetInterpolation() == UsdGeom.Tokens.vertex
    assert ours_sh.GetElementSize() == theirs_sh.GetElementSize() == (degree + 1) ** 2
    assert len(values(a, SH)) == len(world) * (degree + 1) ** 2
    # displayColor: the DC colour clamped to [0, 1] in both.
    np.testing.assert_allclose(values(a, "primvars:displayColor"), values(b, "primvars:displayColor"), atol=1e-6)
    # Extent: NVIDIA's bounds the centres; ours also holds each particle's 3-sigma reach, so it contains theirs.
    ours_extent, theirs_extent = values(a, "extent"), values(b, "extent")
    assert (ours_extent[0] <= theirs_extent[0]).all() and (ours_extent[1] >= theirs_extent[1]).all()
    reach = 3 * world.scales.max(dim=1).values[:, None]
    np.testing.assert_allclose(ours_extent[0], (world.means - reach).min(0).values.numpy(), rtol=1e-5, atol=1e-6)


def test_half_precision_splats_carry_the_same_primvar_metadata(tmp_path):
    world = random_world(n=20, sh_degree=2)
    world.frame, world.meters_per_unit = "z_up", 1.0
    prim = splat_prim(export_world(world, tmp_path / "half.usda", half=True))
    primvar = UsdGeom.Primvar(prim.GetAttribute(SH + "h"))
    assert primvar.GetInterpolation() == UsdGeom.Tokens.vertex and primvar.GetElementSize() == 9
    back = load_world(tmp_path / "half.usda")
    torch.testing.assert_close(back.sh, world.sh, atol=2e-3, rtol=2e-3)
