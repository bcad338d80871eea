"""Gaussians <-> ``UsdVol.ParticleField3DGaussianSplat`` attributes (static or time-sampled).

Conventions of the schema (usd-core 26.x): linear scales, opacities in [0, 1], quaternions whose
*value* is (real, imaginary) -- in memory a GfQuatf is (x, y, z, w) --, SH coefficients grouped per
particle in the usual 3DGS order (DC first, then degree 1 m = -1..1, ...), DC such that a zero
coefficient is grey 0.5 like ours. Arrays move through ``Vt.*Array.FromNumpy`` (no Python loops).
"""

from __future__ import annotations

import numpy as np
import torch
from pxr import Gf, Sdf, Usd, UsdGeom, UsdVol, Vt

from lyra_sim.errors import LyraSimError
from lyra_sim.world import GaussianWorld

SPLAT_FIELDS = ("positions", "orientations", "scales", "opacities", "radiance:sphericalHarmonicsCoefficients")
OBSERVED_PRIMVAR = "lyra_sim:observed"  # per particle: seen by a camera (True) or invented by completion
COUNTS_KEY = "lyra_sim:particleCounts"  # per-time real particle counts (the rest is zero-opacity padding)


class UsdWorldError(LyraSimError):
    """A stage or prim that cannot be read as (or written from) a Gaussian world."""


def _np(t: torch.Tensor, dtype) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(dtype, copy=False))


def _splat_arrays(world: GaussianWorld, half: bool) -> dict[str, object]:
    """Vt arrays of one world for the splat attributes (float or half precision)."""
    dtype = np.float16 if half else np.float32
    vec3, quat, scalar = (Vt.Vec3hArray, Vt.QuathArray, Vt.HalfArray) if half else (
        Vt.Vec3fArray, Vt.QuatfArray, Vt.FloatArray)
    xyzw = world.quats[:, [1, 2, 3, 0]]  # GfQuat memory order
    return {
        "positions": vec3.FromNumpy(_np(world.means, dtype)),
        "orientations": quat.FromNumpy(_np(xyzw, dtype)),
        "scales": vec3.FromNumpy(_np(world.scales, dtype)),
        "opacities": scalar.FromNumpy(_np(world.opacities, dtype)),
        "radiance:sphericalHarmonicsCoefficients": vec3.FromNumpy(_np(world.sh.reshape(-1, 3), dtype)),
    }


def splat_extent(world: GaussianWorld) -> Vt.Vec3fArray:
    """Bounds of the particle centres grown by each particle's 3-sigma kernel support."""
    reach = 3.0 * world.scales.max(dim=1).values[:, None]
    lo = (world.means - reach).min(dim=0).values
    hi = (world.means + reach).max(dim=0).values
    return Vt.Vec3fArray([Gf.Vec3f(*map(float, lo)), Gf.Vec3f(*map(float, hi))])


def display_colors(world: GaussianWorld) -> Vt.Vec3fArray:
    return Vt.Vec3fArray.FromNumpy(_np(world.rgb, np.float32))


def _attributes(splat: UsdVol.ParticleField3DGaussianSplat, half: bool) -> dict[str, Usd.Attribute]:
    if half:
        return {
            "positions": splat.CreatePositionshAttr(),
            "orientations": splat.CreateOrientationshAttr(),
            "scales": splat.CreateScaleshAttr(),
            "opacities": splat.CreateOpacitieshAttr(),
            "radiance:sphericalHarmonicsCoefficients": splat.CreateRadianceSphericalHarmonicsCoefficientshAttr(),
        }
    return {
        "positions": splat.CreatePositionsAttr(),
        "orientations": splat.CreateOrientationsAttr(),  # NOT CreateOrientationAttr (gprim handedness)
        "scales": splat.CreateScalesAttr(),
        "opacities": splat.CreateOpacitiesAttr(),
        "radiance:sphericalHarmonicsCoefficients": splat.CreateRadianceSphericalHarmonicsCoefficientsAttr(),
    }


def sh_as_primvar(attribute: Usd.Attribute, degree: int) -> None:
    """Describe the SH array as NVIDIA's ``usd-convert-gsplat`` does: a per-particle ("vertex") primvar of
    (degree + 1)^2 RGB coefficients each, so primvar-aware tools split it into particles correctly."""
    primvar = UsdGeom.Primvar(attribute)
    primvar.SetInterpolation(UsdGeom.Tokens.vertex)
    primvar.SetElementSize((degree + 1) ** 2)


def write_splats(stage: Usd.Stage, path: str, keyframes: list[tuple[float | None, GaussianWorld]],
                 half: bool = False) -> UsdVol.ParticleField3DGaussianSplat:
    """Author a splat prim. ``keyframes``: [(None, world)] for a static world, else [(time code, world), ...].

    Keyframes must share the SH degree and particle count (the caller pads), so USD can interpolate.
    """
    splat = UsdVol.ParticleField3DGaussianSplat.Define(stage, path)
    degree = keyframes[0][1].sh_degree
    splat.CreateRadianceSphericalHarmonicsDegreeAttr().Set(degree)
    attributes = _attributes(splat, half)
    sh_as_primvar(attributes["radiance:sphericalHarmonicsCoefficients"], degree)
    extent = splat.CreateExtentAttr()
    color = splat.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
    observed = None
    if any(not bool(world.observed.all()) for _, world in keyframes):  # only completed worlds carry the primvar
        observed = UsdGeom.PrimvarsAPI(splat).CreatePrimvar(OBSERVED_PRIMVAR, Sdf.ValueTypeNames.BoolArray,
                                                            UsdGeom.Tokens.vertex)  # fmt: skip
    for code, world in keyframes:
        time = Usd.TimeCode.Default() if code is None else Usd.TimeCode(code)
        for name, array in _splat_arrays(world, half).items():
            attributes[name].Set(array, time)
        extent.Set(splat_extent(world), time)
        color.Set(display_colors(world), time)
        if observed is not None:
            observed.Set(Vt.BoolArray.FromNumpy(world.observed.cpu().numpy()), time)
    return splat


def _first_authored(prim: Usd.Prim, names: tuple[str, ...]) -> Usd.Attribute | None:
    for name in names:
        attribute = prim.GetAttribute(name)
        if attribute and attribute.HasAuthoredValue():
            return attribute
    return None


def read_splats(prim: Usd.Prim, time: Usd.TimeCode, frame: str, meters_per_unit: float | None) -> GaussianWorld:
    """One time of a ParticleField3DGaussianSplat prim as a GaussianWorld (local space of the prim)."""
    def values(field: str, width: int, required: bool = True) -> np.ndarray | None:
        attribute = _first_authored(prim, (field, field + "h"))
        if attribute is None:
            if required:
                raise UsdWorldError(f"{prim.GetPath()}: attribute {field} is not authored")
            return None
        try:
            data = np.asarray(attribute.Get(time), dtype=np.float32)
            return data.reshape(-1, width) if width > 1 else data.reshape(-1)
        except (TypeError, ValueError) as exc:
            raise UsdWorldError(f"{prim.GetPath()}: attribute {attribute.GetName()} of type "
                                f"{attribute.GetTypeName()} is not an array of {width}-vectors ({exc})") from exc

    positions = values("positions", 3)
    n = len(positions)

    def per_particle(data: np.ndarray | None, fill: np.ndarray) -> np.ndarray:
        if data is None or len(data) < n:  # the schema: too short means ignored
            return np.broadcast_to(fill, (n, *fill.shape)).copy()
        if len(data) > n:  # the schema: too long is truncated
            data = data[:n]
        return data

    xyzw = per_particle(values("orientations", 4, required=False), np.array([0, 0, 0, 1], np.float32))
    scales = per_particle(values("scales", 3, required=False), np.ones(3, np.float32))
    opacities = per_particle(values("opacities", 1, required=False), np.ones((), np.float32))
    observed_primvar = UsdGeom.PrimvarsAPI(prim).GetPrimvar(OBSERVED_PRIMVAR)
    observed = None
    if observed_primvar and observed_primvar.HasAuthoredValue():
        observed = per_particle(np.asarray(observed_primvar.Get(time), dtype=bool), np.ones((), bool))
    degree_attr = prim.GetAttribute("radiance:sphericalHarmonicsDegree")
    degree = degree_attr.Get() if degree_attr else None
    degree = 3 if degree is None else degree
    if not isinstance(degree, int) or not 0 <= degree <= 3:
        raise UsdWorldError(f"{prim.GetPath()}: radiance:sphericalHarmonicsDegree must be 0..3, got {degree!r}")
    k = (degree + 1) ** 2
    coefficients = values("radiance:sphericalHarmonicsCoefficients", 3, required=False)
    if coefficients is None or len(coefficients) < n * k:
        sh = np.zeros((n, 1, 3), np.float32)  # schema default: DC grey 0.5, degree 0
    else:
        sh = coefficients[: n * k].reshape(n, k, 3)
    return GaussianWorld(
        means=torch.from_numpy(positions.copy()), quats=torch.from_numpy(xyzw[:, [3, 0, 1, 2]].copy()),
        scales=torch.from_numpy(scales.copy()), opacities=torch.from_numpy(opacities.copy()),
        sh=torch.from_numpy(sh.copy()), frame=frame, meters_per_unit=meters_per_unit,
        observed=None if observed is None else torch.from_numpy(observed.copy()),
        info={"source": f"usd:{prim.GetStage().GetRootLayer().identifier}{prim.GetPath()}"},
    )


def time_codes(prim: Usd.Prim) -> list[float]:
    """Union of the time samples of the per-particle attributes (empty for a static prim)."""
    codes: set[float] = set()
    for field in SPLAT_FIELDS:
        for name in (field, field + "h"):
            attribute = prim.GetAttribute(name)
            if attribute:
                codes.update(attribute.GetTimeSamples())
    return sorted(codes)


def set_particle_counts(prim: Usd.Prim, counts: list[int]) -> None:
    prim.SetCustomDataByKey(COUNTS_KEY, Vt.IntArray(counts))


def particle_counts(prim: Usd.Prim) -> list[int] | None:
    counts = prim.GetCustomDataByKey(COUNTS_KEY)
    return None if counts is None else [int(c) for c in counts]

