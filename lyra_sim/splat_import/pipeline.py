"""One splat file (Lyra, Marble, a capture trainer, SuperSplat) -> a folder a simulator and a robot can use.

Stages (each timed): load; floaters (``lyra_sim.physics.floaters``: counted, kept out of the collider, kept
in the world unless ``drop_floaters``); align (the file's convention, gravity from the floor, scale from the
file, ``scale``, ``camera_height`` or ``known_size``); collider (``build_collision_proxy`` on the floater-free
world, and its agreement with the picture from robot-height cameras); outputs:

- ``world.usdc``: ParticleField3DGaussianSplat + UsdPhysics collider, Z up, metres;
- ``collider.glb``: the collider alone, in glTF's axes (+Y up), metres;
- ``scene.json``: what ``make_env`` / ``prepare_scene``, ``load_world`` and the ROS node read (world, collider,
  alignment, convention, scale source, floater and agreement reports);
- ``contact_sheet.png``: the world from the agreement's robot-height cameras.

The folder is written atomically (all files or none).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from lyra_sim.align import DEFAULT_CAMERA_HEIGHT, align_world
from lyra_sim.errors import LyraSimError
from lyra_sim.io import REGISTRY, load_world
from lyra_sim.io.atomic import atomic_dir
from lyra_sim.io.mesh_glb import write_mesh_glb
from lyra_sim.io.scene_file import SCENE_FILE, write_scene_file
from lyra_sim.splat_import.conventions import Convention, recognise
from lyra_sim.splat_import.gravity import AXES, find_up, rotation_to_z_up
from lyra_sim.splat_import.options import SCALE_OPTIONS, SimReadyOptions
from lyra_sim.views.media import contact_sheet, save_png
from lyra_sim.world import OPENCV_TO_Z_UP, DynamicGaussianWorld, GaussianWorld

WORLD_FILE, COLLIDER_FILE, SHEET_FILE = "world.usdc", "collider.glb", "contact_sheet.png"
SHEET_VIEW = (160, 120)
EXTENT_QUANTILES = (0.02, 0.98)  # the measured extent for --known-size ignores the outer 2 % of splats


class SimReadyError(LyraSimError):
    """A splat file or option the sim-ready pipeline cannot use."""


@dataclass
class SimReadyResult:
    """What was written and how it was decided."""

    outputs: dict[str, Path]
    convention: Convention
    notes: list[str] = field(default_factory=list)  # one line each: what was assumed or measured
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    scale_assumed: bool = False


def _check_options(source: Path, options: SimReadyOptions) -> None:
    given = [name for name in SCALE_OPTIONS if getattr(options, name) is not None]
    if len(given) > 1:
        raise SimReadyError(f"{source}: give one of --scale, --camera-height, --known-size (got {', '.join(given)})")
    for name in given:
        value = getattr(options, name)
        if not (math.isfinite(value) and value > 0):
            raise SimReadyError(f"{source}: {name.replace('_', '-')} must be a positive number of metres, got {value}")
    if options.up is not None and options.up not in AXES:
        raise SimReadyError(f"{source}: --up must be one of {', '.join(AXES)}, got {options.up!r}")


def _horizontal_extent(world: GaussianWorld) -> float:
    """Length of the longest horizontal side: along the principal axes of the splats' xy (a room need not be
    aligned with x and y), between the EXTENT_QUANTILES."""
    xy = world.means[:, :2].detach().double().numpy()
    xy = xy - xy.mean(axis=0)
    axes = np.linalg.eigh(xy.T @ xy)[1]
    lo, hi = np.quantile(xy @ axes, EXTENT_QUANTILES, axis=0)
    return float((hi - lo).max())


def _oriented(world: GaussianWorld, convention: Convention, options: SimReadyOptions, clean: GaussianWorld,
              notes: list[str]) -> tuple[np.ndarray | None, bool]:
    """(rotation into a "z_up" frame before levelling, or None to level from the camera; camera known)."""
    if options.up is not None:
        notes.append(f"gravity: file axis {options.up} is up (given)")
        return rotation_to_z_up(AXES[options.up]), False
    if convention.up_known:
        if world.frame == "z_up":
            return np.eye(3), False
        if convention.camera_at_origin:
            return None, True  # levelled from the first camera (floor below it, within 45 degrees of its -y)
        return np.asarray(OPENCV_TO_Z_UP), False
    choice = find_up(clean)
    notes.append(choice.as_line())
    return choice.rotation, False


def _align(source: Path, world: GaussianWorld, clean: GaussianWorld, convention: Convention,
           options: SimReadyOptions, notes: list[str]) -> tuple[GaussianWorld, GaussianWorld, bool]:
    """(aligned world, aligned floater-free world, scale assumed)."""
    rotation, camera_known = _oriented(world, convention, options, clean, notes)
    if options.camera_height is not None and not camera_known:
        raise SimReadyError(f"{source}: this file's camera is unknown ({convention.name}); give --scale or "
                            "--known-size instead of --camera-height")
    # Geometry only from here: levelling, the collider and its agreement never look at view-dependent colour, and
    # rotating the SH of millions of Gaussians costs seconds each time. The full world is moved once, at the end.
    clean = clean.with_sh_degree(0)
    if rotation is not None:
        clean = clean.transformed(rotation=torch.from_numpy(rotation).float(), frame="z_up",
                                  meters_per_unit=clean.meters_per_unit)
    scale = options.scale
    if scale is None and clean.meters_per_unit is None and convention.metric:
        scale = 1.0
        notes.append(f"scale: 1 unit = 1 m, as the {convention.name} convention says")
    if options.known_size is not None:
        measured = _horizontal_extent(align_world(clean, scale=1.0))  # levelled, in file units
        scale = options.known_size / measured
        notes.append(f"scale: {scale:.4g} m per unit (known size {options.known_size:g} m over a measured "
                     f"{measured:.4g} units)")
    aligned_clean = align_world(clean, scale=scale, camera_height=options.camera_height)
    report = aligned_clean.info["alignment"]
    if not camera_known:
        report["camera_to_world"] = _stand_in_viewpoint(aligned_clean).tolist()
        notes.append(f"viewpoint: none in the file; a level stand-in {DEFAULT_CAMERA_HEIGHT:g} m above the middle of "
                     "the scene, looking along +x (where make_env starts and the contact sheet looks from)")
    transform = np.asarray(report["transform"])
    if rotation is not None:  # the report's transform starts from the file's own axes
        transform[:3, :3] = transform[:3, :3] @ rotation
        report["transform"] = transform.tolist()
    metres = float(report["meters_per_unit"])
    aligned = world.transformed(rotation=torch.from_numpy(transform[:3, :3] / metres).float(),
                                translation=torch.from_numpy(transform[:3, 3]).float(), scale=metres,
                                frame="z_up", meters_per_unit=1.0)
    aligned.info = {**world.info, "alignment": report}
    assumed = scale is None and clean.meters_per_unit is None and options.camera_height is None
    notes.append(f"aligned: floor at z = 0 (tilt {report['camera_tilt_deg']:.1f} deg, "
                 f"{100 * report['floor_inlier_fraction']:.0f} % of splats on it), scale from {report['scale_source']}")
    if assumed:
        notes.append(f"SCALE ASSUMED ({report['scale_source']}): the scene is {_horizontal_extent(aligned):.2f} m "
                     "across under this assumption; fix it with --scale M_PER_UNIT, --known-size METRES (real "
                     "length of the longest horizontal side)" + (" or --camera-height METRES" if camera_known else ""))
    return aligned, aligned_clean, assumed


def _stand_in_viewpoint(aligned: GaussianWorld) -> np.ndarray:
    """Camera-to-world of a level camera DEFAULT_CAMERA_HEIGHT above the middle of an aligned world's splats,
    looking along +x. (``align_world``'s own stand-in is placed before levelling, so a tilted file moves it.)"""
    lo, hi = np.quantile(aligned.means[:, :2].detach().double().numpy(), EXTENT_QUANTILES, axis=0)
    pose = np.eye(4)
    pose[:3, :3] = np.asarray(OPENCV_TO_Z_UP)  # columns: the optical axes (right, down, forward) in z_up axes
    pose[:3, 3] = [*((lo + hi) / 2), DEFAULT_CAMERA_HEIGHT]
    return pose


def _sheet(world: GaussianWorld, path: Path) -> Path:
    from lyra_sim.physics.agreement import ring_cameras
    from lyra_sim.rendering import render

    cameras = ring_cameras(world, image_size=SHEET_VIEW)
    with torch.no_grad():
        rgb = render(world, cameras, background=(1.0, 1.0, 1.0)).rgb.numpy()
    return save_png(contact_sheet(list(rgb), columns=5, max_frames=len(rgb)), path)


def make_sim_ready(source: str | os.PathLike, out_dir: str | os.PathLike,
                   options: SimReadyOptions | None = None) -> SimReadyResult:
    """Turn the splat file ``source`` into the sim-ready folder ``out_dir`` (see the module docstring)."""
    from lyra_sim.physics.agreement import collider_agreement
    from lyra_sim.physics.floaters import find_floaters
    from lyra_sim.physics.proxy import build_collision_proxy

    source, out_dir = Path(source), Path(out_dir)
    options = options or SimReadyOptions()
    _check_options(source, options)
    timings, notes = {}, []
    start = time.perf_counter()
    world = load_world(source)
    if isinstance(world, DynamicGaussianWorld):
        raise SimReadyError(f"{source}: a dynamic world; simready takes one static splat")
    if len(world) == 0:
        raise SimReadyError(f"{source}: the file holds no Gaussians")
    convention = recognise(source)
    notes.append(f"convention: {convention.description}")
    timings["load"] = time.perf_counter() - start

    start = time.perf_counter()
    floaters = find_floaters(world)
    clean = world.subset(torch.from_numpy(~floaters.mask))
    notes.append(floaters.as_line() + ("; also removed from the world" if options.drop_floaters else
                                       "; kept in the world"))
    if options.drop_floaters:
        world = clean
    timings["floaters"] = time.perf_counter() - start

    start = time.perf_counter()
    aligned, aligned_clean, assumed = _align(source, world, clean, convention, options, notes)
    timings["align"] = time.perf_counter() - start

    start = time.perf_counter()
    proxy = build_collision_proxy(aligned_clean, voxel_size=options.voxel_size,
                                  triangle_budget=options.triangle_budget, progress=options.progress)
    agreement = collider_agreement(aligned_clean, proxy)
    notes.append(f"collider: {len(proxy.faces):,} triangles ({proxy.obstacle_faces:,} obstacle); "
                 + agreement.as_line())
    timings["collider"] = time.perf_counter() - start

    outputs = {}
    with atomic_dir(out_dir) as tmp:
        start = time.perf_counter()
        REGISTRY.writer_for(tmp / WORLD_FILE, "usd").writer(aligned, tmp / WORLD_FILE, collision_mesh=proxy)
        timings["usd"] = time.perf_counter() - start
        start = time.perf_counter()
        write_mesh_glb(proxy.vertices, proxy.faces, tmp / COLLIDER_FILE)
        _sheet(aligned, tmp / SHEET_FILE)
        write_scene_file(tmp / SCENE_FILE, world=WORLD_FILE, collider=COLLIDER_FILE, source=source,
                         convention=convention, alignment=aligned.info["alignment"], floor_z=proxy.floor_z,
                         reports={"floaters": floaters.as_dict(), "agreement": agreement.as_dict(),
                                  "notes": notes, "scale_assumed": assumed})
        timings["other outputs"] = time.perf_counter() - start
    for key, name in (("usd", WORLD_FILE), ("collider", COLLIDER_FILE), ("scene", SCENE_FILE),
                      ("contact_sheet", SHEET_FILE)):
        outputs[key] = out_dir / name
    return SimReadyResult(outputs, convention, notes, timings, assumed)
