"""export_world / import_world: Gaussian worlds as OpenUSD stages (.usda, .usdc, .usdz) and back."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from pxr import Gf, Sdf, Tf, Usd, UsdGeom, UsdPhysics, UsdUtils, UsdVol, Vt

from lyra_sim.errors import LyraSimError
from lyra_sim.io.atomic import OutputError
from lyra_sim.io.cleanup import remove_stale, temporary, temporary_prefix
from lyra_sim.world import OPENCV_TO_Z_UP, DynamicGaussianWorld, GaussianWorld
from usd_exporters.collision import mesh_arrays, write_collision_mesh, write_physics_scene
from usd_exporters.composition import DEFAULT_MAX_PRIMS, check_composition, check_crate
from usd_exporters.probe import probe_layers, tf_message
from usd_exporters.splats import (
    UsdWorldError,
    particle_counts,
    read_splats,
    set_particle_counts,
    time_codes,
    write_splats,
)

SUFFIXES = (".usda", ".usdc", ".usdz")
ROOT = "/World"
DEFAULT_TIME_CODES_PER_SECOND = 24.0
Y_UP_TO_Z_UP = ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0))
#: Particles summed over prims and time samples that import_world reads (about 250 bytes each in memory).
DEFAULT_MAX_PARTICLES = 20_000_000
MAX_KEYFRAMES = 10_000
#: Splat prims one stage may hold (each becomes a world that is transformed and concatenated: ~1 ms apiece).
DEFAULT_MAX_SPLAT_PRIMS = 1_000
#: Prim transforms applied to splats: a similarity scale within these bounds, translations below 1e9 units.
MIN_TRANSFORM_SCALE, MAX_TRANSFORM_SCALE, MAX_TRANSLATION = 1e-6, 1e6, 1e9


def _prepare(world, collision_mesh, convert_frame: bool):
    """World and mesh in Z-up metres (as far as the scale is known), plus notes for the stage."""
    notes = {}
    vertices_faces = None if collision_mesh is None else mesh_arrays(collision_mesh)
    agreement = getattr(collision_mesh, "info", {}).get("agreement")  # lyra_sim.physics.agreement's figures
    if agreement:
        notes["lyra_sim:colliderAgreement"] = {key: float(value) for key, value in agreement.items()}
    if world.frame != "z_up":
        if not convert_frame:
            raise UsdWorldError(f"world frame is {world.frame!r}; USD stages here are Z-up: run "
                                "lyra_sim.align.align_world first or pass convert_frame=True")
        world = world.with_z_up_axes()
        if vertices_faces is not None:
            vertices_faces = (vertices_faces[0] @ np.asarray(OPENCV_TO_Z_UP).T, vertices_faces[1])
        notes["lyra_sim:frameConversion"] = "opencv axes -> z_up axes (fixed rotation, not levelled)"
    mpu = world.meters_per_unit
    if mpu is None:
        notes["lyra_sim:metric"] = False
    else:
        notes["lyra_sim:metric"] = True
        if mpu != 1.0:
            world = world.transformed(scale=mpu, meters_per_unit=1.0)
            if vertices_faces is not None:
                vertices_faces = (vertices_faces[0] * mpu, vertices_faces[1])
    return world, vertices_faces, notes


def _pad_to(world: GaussianWorld, count: int, degree: int) -> GaussianWorld:
    """Zero-opacity, zero-size padding particles at the first centre, and SH padded to ``degree``."""
    world = world.with_sh_degree(degree)
    missing = count - len(world)
    if missing == 0:
        return world
    anchor = world.means[:1] if len(world) else torch.zeros(1, 3)
    pad = GaussianWorld(
        means=anchor.expand(missing, 3).clone(), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(missing, 4).clone(),
        scales=torch.full((missing, 3), 1e-6), opacities=torch.zeros(missing),
        sh=torch.zeros(missing, world.sh.shape[1], 3), frame=world.frame, meters_per_unit=world.meters_per_unit,
    )
    return GaussianWorld.concatenate([world, pad])


def _write_points_fallback(stage: Usd.Stage, path: str, keyframes, splat: UsdVol.ParticleField3DGaussianSplat):
    """A UsdGeom.Points proxy (centres, widths, colours) for viewers without the splat schema."""
    from usd_exporters.splats import display_colors

    points = UsdGeom.Points.Define(stage, path)
    points.CreatePurposeAttr(UsdGeom.Tokens.proxy)
    color = points.CreateDisplayColorPrimvar(UsdGeom.Tokens.vertex)
    for code, world in keyframes:
        time = Usd.TimeCode.Default() if code is None else Usd.TimeCode(code)
        centres = Vt.Vec3fArray.FromNumpy(np.ascontiguousarray(world.means.numpy(), np.float32))
        widths = Vt.FloatArray.FromNumpy((2.0 * world.scales.max(dim=1).values).numpy().astype(np.float32))
        points.CreatePointsAttr().Set(centres, time)
        points.CreateWidthsAttr().Set(widths, time)
        color.Set(display_colors(world), time)
        points.CreateExtentAttr().Set(UsdGeom.Points.ComputeExtent(centres, widths), time)
    splat.CreateProxyPrimRel().SetTargets([points.GetPath()])


def _author_stage(stage: Usd.Stage, world, vertices_faces, notes: dict, half: bool, points_fallback: bool,
                  time_codes_per_second: float) -> None:
    UsdGeom.SetStageUpAxis(stage, UsdGeom.Tokens.z)
    UsdGeom.SetStageMetersPerUnit(stage, 1.0)
    UsdPhysics.SetStageKilogramsPerUnit(stage, 1.0)
    root = UsdGeom.Xform.Define(stage, ROOT)
    stage.SetDefaultPrim(root.GetPrim())
    layer_data = {"generator": "lyra_sim usd_exporters", **notes}

    if isinstance(world, DynamicGaussianWorld):
        count = max(len(w) for w in world.worlds)
        degree = max(w.sh_degree for w in world.worlds)
        codes = [t * time_codes_per_second for t in world.times]
        keyframes = [(code, _pad_to(w, count, degree)) for code, w in zip(codes, world.worlds, strict=True)]
        stage.SetTimeCodesPerSecond(time_codes_per_second)
        stage.SetFramesPerSecond(time_codes_per_second)
        stage.SetStartTimeCode(codes[0])
        stage.SetEndTimeCode(codes[-1])
    else:
        keyframes = [(None, world)]
    splat = write_splats(stage, f"{ROOT}/Gaussians", keyframes, half=half)
    if isinstance(world, DynamicGaussianWorld):
        set_particle_counts(splat.GetPrim(), [len(w) for w in world.worlds])
    if points_fallback:
        _write_points_fallback(stage, f"{ROOT}/GaussianPoints", keyframes, splat)
    if vertices_faces is not None:
        write_collision_mesh(stage, f"{ROOT}/Collision", *vertices_faces)
    write_physics_scene(stage, f"{ROOT}/PhysicsScene")
    stage.GetRootLayer().customLayerData = layer_data


def export_world(
    world: GaussianWorld | DynamicGaussianWorld,
    path: str | os.PathLike,
    collision_mesh=None,
    half: bool = False,
    points_fallback: bool = False,
    convert_frame: bool = True,
    time_codes_per_second: float = DEFAULT_TIME_CODES_PER_SECOND,
) -> Path:
    """Write a world as a USD stage (.usda, .usdc or .usdz), atomically.

    - Gaussians: ``/World/Gaussians``, a ParticleField3DGaussianSplat (``half`` writes the half attributes).
    - ``collision_mesh`` (in the world's frame: an object with .vertices/.faces, a (vertices, faces) pair,
      or a mesh file): ``/World/Collision``, a guide-purpose UsdGeom.Mesh with CollisionAPI and
      MeshCollisionAPI (approximation "none"), no rigid body. A ``/World/PhysicsScene`` has gravity -Z 9.81.
    - Frames: the stage is Z-up in metres. A world in "opencv" gets the fixed axis rotation OpenCV ->
      REP-103 (use ``lyra_sim.align`` first for a levelled floor), or with ``convert_frame=False`` raises.
      A known ``meters_per_unit`` is applied; an unknown one is kept as is and recorded in the layer's
      customLayerData (``lyra_sim:metric = False``). A collider that carries ``info["agreement"]``
      (lyra_sim.physics.agreement) records those figures there too (``lyra_sim:colliderAgreement``).
    - Dynamic worlds: keyframe time t (seconds) becomes time code ``t * time_codes_per_second``; every
      per-particle attribute and the extent are time-sampled with a constant count (zero-opacity padding).
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise UsdWorldError(f"{path}: expected one of {SUFFIXES}")
    world, vertices_faces, notes = _prepare(world, collision_mesh, convert_frame)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path, ".usd-export")  # what a writer killed with SIGKILL left of this output
        with tempfile.TemporaryDirectory(dir=path.parent, prefix=temporary_prefix(path), suffix=".usd-export") as tmp, \
                temporary(tmp):
            layer_path = Path(tmp) / (path.stem + (".usdc" if suffix == ".usdz" else suffix))
            try:
                stage = Usd.Stage.CreateNew(str(layer_path))
                _author_stage(stage, world, vertices_faces, notes, half, points_fallback, time_codes_per_second)
                stage.GetRootLayer().Save()
            except Tf.ErrorException as exc:
                raise UsdWorldError(f"{path}: cannot write the stage ({tf_message(exc)})") from exc
            del stage
            written = layer_path
            if suffix == ".usdz":
                written = Path(tmp) / path.name
                if not UsdUtils.CreateNewUsdzPackage(Sdf.AssetPath(str(layer_path)), str(written)):
                    raise UsdWorldError(f"{path}: USDZ packaging failed")
            shutil.move(str(written), path)  # same directory: an atomic rename
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc}); nothing was written") from exc
    return path


def _similarity(matrix: Gf.Matrix4d, where: str) -> tuple[np.ndarray, np.ndarray, float] | None:
    """Decompose a row-vector USD transform into (rotation, translation, uniform scale); None if identity."""
    m = np.array(matrix, dtype=np.float64).T  # column-vector convention: p' = m @ p
    if not np.isfinite(m).all():
        raise UsdWorldError(f"{where}: transform has non-finite entries")
    if np.allclose(m, np.eye(4)):
        return None
    if not np.array_equal(m[3], [0.0, 0.0, 0.0, 1.0]):
        raise UsdWorldError(f"{where}: projective transform (last column {m[3].tolist()}) cannot be applied to splats")
    linear, translation = m[:3, :3], m[:3, 3]
    scales = np.linalg.norm(linear, axis=0)
    if not np.allclose(scales, scales[0], rtol=1e-5) or np.linalg.det(linear) <= 0:
        raise UsdWorldError(f"{where}: only rotations, translations and uniform scales can be applied to splats")
    if not (MIN_TRANSFORM_SCALE <= scales[0] <= MAX_TRANSFORM_SCALE) or np.abs(translation).max() > MAX_TRANSLATION:
        raise UsdWorldError(f"{where}: transform scale {scales[0]:.3g} or translation {np.abs(translation).max():.3g} "
                            f"is outside [{MIN_TRANSFORM_SCALE:g}, {MAX_TRANSFORM_SCALE:g}] / {MAX_TRANSLATION:g}")
    return linear / scales[0], translation, float(scales[0])


def _open_stage(path: Path, allow_external_composition: bool, max_prims: int) -> Usd.Stage:
    """Open a stage after checking its layers (see usd_exporters.composition); errors name ``path``."""
    check_composition(path, allow_external_composition, max_prims)
    try:
        stage = Usd.Stage.Open(str(path))
    except (Tf.ErrorException, UnicodeDecodeError) as exc:
        raise UsdWorldError(f"{path}: not a readable USD stage ({tf_message(exc)})") from exc
    if stage is None:
        raise UsdWorldError(f"{path}: not a readable USD stage")
    return stage


def _check_sizes(path: Path, prims: list[Usd.Prim], codes: list[float], max_particles: int) -> None:
    """Refuse stages whose composed particle arrays (all prims, all times) exceed ``max_particles``."""
    if len(codes) > MAX_KEYFRAMES:
        raise UsdWorldError(f"{path}: {len(codes)} time samples (at most {MAX_KEYFRAMES} keyframes are read)")
    total = 0
    for prim in prims:
        attribute = prim.GetAttribute("positions") or prim.GetAttribute("positionsh")
        if not attribute:
            continue
        for code in codes or [None]:
            value = attribute.Get(Usd.TimeCode.Default() if code is None else Usd.TimeCode(code))
            total += 0 if value is None else len(value)
        if total > max_particles:
            raise UsdWorldError(f"{path}: the stage composes more than {max_particles:,} particles over all prims "
                                "and times; raise max_particles to read it anyway")


def _read_stage(path: Path, stage: Usd.Stage, max_particles: int) -> GaussianWorld | DynamicGaussianWorld:
    prims = [p for p in stage.Traverse() if p.IsA(UsdVol.ParticleField3DGaussianSplat)]
    if not prims:
        raise UsdWorldError(f"{path}: no ParticleField3DGaussianSplat prim")
    if len(prims) > DEFAULT_MAX_SPLAT_PRIMS:
        raise UsdWorldError(f"{path}: {len(prims):,} splat prims, more than the {DEFAULT_MAX_SPLAT_PRIMS:,} one stage "
                            "may hold (merge them into fewer prims)")
    meters_per_unit = UsdGeom.GetStageMetersPerUnit(stage)
    if not (math.isfinite(meters_per_unit) and meters_per_unit > 0):
        raise UsdWorldError(f"{path}: metersPerUnit must be a positive number, got {meters_per_unit}")
    y_up = UsdGeom.GetStageUpAxis(stage) == UsdGeom.Tokens.y
    codes = sorted({c for p in prims for c in time_codes(p)})
    tcps = stage.GetTimeCodesPerSecond()
    if codes and not (math.isfinite(tcps) and tcps > 0):
        raise UsdWorldError(f"{path}: timeCodesPerSecond must be a positive number, got {tcps}")
    _check_sizes(path, prims, codes, max_particles)

    def world_at(time: Usd.TimeCode, index: int | None) -> GaussianWorld:
        parts = []
        for prim in prims:
            world = read_splats(prim, time, "z_up", meters_per_unit)
            counts = particle_counts(prim)
            if counts is not None and index is not None and index < len(counts):
                world = world.subset(slice(0, counts[index]))
            transform = _similarity(UsdGeom.Xformable(prim).ComputeLocalToWorldTransform(time), str(prim.GetPath()))
            if transform is not None:
                rotation, translation, scale = transform
                world = world.transformed(rotation=torch.from_numpy(rotation).float(),
                                          translation=torch.from_numpy(translation).float(), scale=scale,
                                          meters_per_unit=meters_per_unit)
            parts.append(world)
        world = parts[0] if len(parts) == 1 else GaussianWorld.concatenate(parts)
        if y_up:
            world = world.transformed(rotation=Y_UP_TO_Z_UP, meters_per_unit=meters_per_unit)
        world.info = {"source": f"usd:{path}"}
        return world

    if not codes:
        return world_at(Usd.TimeCode.Default(), None)
    return DynamicGaussianWorld([c / tcps for c in codes], [world_at(Usd.TimeCode(c), i) for i, c in enumerate(codes)])


def import_world(path: str | os.PathLike, allow_external_composition: bool = False,
                 max_prims: int = DEFAULT_MAX_PRIMS,
                 max_particles: int = DEFAULT_MAX_PARTICLES) -> GaussianWorld | DynamicGaussianWorld:
    """Read every ParticleField3DGaussianSplat prim of a stage into one world (Z-up, the stage's units).

    Prim transforms are applied (similarity transforms only); a Y-up stage is rotated to Z-up; time-sampled
    prims give a DynamicGaussianWorld with times in seconds. Padding particles written by ``export_world``
    are dropped using the prim's recorded counts.

    The file is parsed in a child process first (``usd_exporters.probe``): a file that crashes usd-core there
    (segfault, bad_alloc, over time) is refused. Hostile stages are refused before they cost time or memory:
    sublayers, references, payloads and value clips that read files outside the stage's folder (unless
    ``allow_external_composition``), more than ``max_prims`` composed prims, more than ``max_particles``
    particles summed over prims and times, more than DEFAULT_MAX_SPLAT_PRIMS splat prims, transforms that
    scale by more than 1e6 (or less than 1e-6).
    """
    path = Path(path)
    if not path.is_file():
        raise UsdWorldError(f"{path}: file not found")
    check_crate(str(path), str(path))  # lying crate counts: refused from the bytes, before any parser sizes tables
    probe_layers(path, UsdWorldError)  # a crash of usd-core's parser ends a child process, not this one
    stage = _open_stage(path, allow_external_composition, max_prims)
    try:
        return _read_stage(path, stage, max_particles)
    except Tf.ErrorException as exc:  # corrupt values are read lazily (crate files): name the stage
        raise UsdWorldError(f"{path}: unreadable stage data ({tf_message(exc)})") from exc
    except (TypeError, ValueError) as exc:
        if isinstance(exc, LyraSimError) and str(path) in str(exc):
            raise
        raise UsdWorldError(f"{path}: {exc}") from exc  # errors about prims, arrays or transforms
