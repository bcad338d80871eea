"""Invented object backs against the true bodies: how much of them hangs in free space, before and after.

For each PyBullet scene of lyra_sim.synthetic.collider_scenes (one RGB-D view in), the completion's inputs to
``object_backs`` are taken once, then the backs and side strips are made by lyra_sim/single_view/backs.py at
``--before REV`` and by this tree from the same inputs. Each surfel is held against the true bodies' boxes
(pybullet's axis-aligned bounding boxes: every body of these scenes is an axis-aligned box but the cylinder
post and the ball, which their boxes bound loosely): its distance to the nearest body's box (0 inside one).
Reported: surfels, how many lie more than 3 cm and more than 10 cm from every body (a back that hangs in free
space: a sheet under a table top, a shard behind a leg), the 95th percentile distance, and how far the lowest
1 % of the backs over the table tops reach below the top's underside.

Writes the section "Object backs against the true bodies (bench_thin_backs.py)" of benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from results import write_section

from lyra_sim.generate import generate_world
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.single_view import backs as this_backs
from lyra_sim.single_view import completion
from lyra_sim.synthetic.collider_scenes import collider_scene

ROOT = Path(__file__).resolve().parents[1]
SCENES = ("table_chairs", "table_low_board", "shelf", "crates_ball", "doorway_corner")
SIZES = ((320, 240), (640, 480))
TABLE_TOPS = {"table_chairs": ((1.8, 3.0), (-0.4, 0.4), 0.69), "table_low_board": ((2.0, 2.8), (-0.05, 0.65), 0.69)}
LEG_CLEARANCE = 0.05  # backs this near a table's leg (in x and y) belong to the leg, not the top


def backs_module(revision: str):
    """lyra_sim/single_view/backs.py at ``revision``, imported as a module of its own."""
    source = subprocess.run(["git", "-C", str(ROOT), "show", f"{revision}:lyra_sim/single_view/backs.py"],
                            capture_output=True, text=True, check=True).stdout
    path = Path(tempfile.mkdtemp()) / "previous_backs.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("previous_backs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def backs_inputs(name: str, width: int, height: int):
    """(positional args, keyword args of the completion's ``object_backs`` call, OpenCV cam-to-world, body boxes
    (B, 2, 3)) for one scene's input view."""
    p = import_pybullet()
    scene = collider_scene(name)
    rgb, depth, K, cam_to_world = scene.view(width, height)
    boxes = np.array([p.getAABB(b, physicsClientId=scene.client) for b in range(p.getNumBodies(
        physicsClientId=scene.client))])
    scene.close()
    taken = []
    original = completion.object_backs

    def take(*args, **kwargs):
        taken.append((args, kwargs))
        return original(*args, **kwargs)

    completion.object_backs = take
    try:
        generate_world(rgb, depth=depth, intrinsics=K)
    finally:
        completion.object_backs = original
    return taken[0][0], taken[0][1], cam_to_world, boxes


def box_distance(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """(N,) distance of each point to the nearest of the boxes (B, 2, 3: low and high corners); 0 inside one."""
    gap = np.maximum(boxes[None, :, 0] - points[:, None], 0.0) + np.maximum(points[:, None] - boxes[None, :, 1], 0.0)
    return np.linalg.norm(gap, axis=-1).min(axis=1)


def scores(module, args, kwargs, cam_to_world, boxes, name) -> dict:
    surfels, _ = module.object_backs(*args, **kwargs)
    points = surfels.points @ cam_to_world[:3, :3].T + cam_to_world[:3, 3]
    distance = box_distance(points, boxes)
    out = {"surfels": len(points), "out3": int((distance > 0.03).sum()), "out10": int((distance > 0.10).sum()),
           "p95": float(np.percentile(distance, 95)), "below_top": float("nan")}
    if name in TABLE_TOPS:
        (x0, x1), (y0, y1), underside = TABLE_TOPS[name]
        x, y, z = points.T
        near_leg = np.zeros(len(points), bool)
        for lx in (x0 + 0.03, x1 - 0.03):
            for ly in (y0 + 0.03, y1 - 0.03):
                near_leg |= (np.abs(x - lx) < LEG_CLEARANCE) & (np.abs(y - ly) < LEG_CLEARANCE)
        over = (x > x0) & (x < x1) & (y > y0) & (y < y1) & (z > underside - 0.3) & (z < underside + 0.05)
        over &= ~near_leg
        if over.any():
            out["below_top"] = float(underside - np.percentile(z[over], 1))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="896e5a7", help="git revision of the BEFORE backs.py")
    args = parser.parse_args()
    previous = backs_module(args.before)
    rows = ["| scene | backs | surfels | > 3 cm from every body | > 10 cm | p95 distance m | lowest 1 % of the top's "
            "backs below its underside m |", "|---|---|---|---|---|---|---|"]
    for width, height in SIZES:
        for name in SCENES:
            call_args, call_kwargs, cam_to_world, boxes = backs_inputs(name, width, height)
            for label, module in (("before", previous), ("after", this_backs)):
                s = scores(module, call_args, call_kwargs, cam_to_world, boxes, name)
                below = "-" if np.isnan(s["below_top"]) else f"{s['below_top']:.3f}"
                rows.append(f"| {name} {width}x{height} | {label} | {s['surfels']:,} | {s['out3']:,} | "
                            f"{s['out10']:,} | {s['p95']:.3f} | {below} |")
                print(rows[-1], flush=True)
    load = os.getloadavg()
    write_section("Object backs against the true bodies (bench_thin_backs.py)", "\n".join([
        f"Measured {datetime.date.today()}, load average {load[0]:.1f}; before = lyra_sim/single_view/backs.py at "
        f"{args.before}, after = this tree, from the same completion inputs in one run. "
        + " ".join(line.strip() for line in __doc__.split("\n\n")[1].splitlines()), "", *rows]))


if __name__ == "__main__":
    main()
