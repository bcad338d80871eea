"""The invented underside of the bundled example's table top, seen by a robot camera under the table.

The bundled example's scene (``lyra_sim.synthetic.tabletop``, PyBullet TinyRenderer with its light) is rendered
from its tabletop camera at 320x240 and turned into a world by ``generate_world``, in one run with BEFORE
(``CompletionOptions(shade_undersides=False)``: object backs in the object's lit colours) and AFTER (today's
defaults: backs facing down shaded, ``backs.underside_shade``). Both worlds are rendered from robot cameras
15 cm above the floor under the table, looking up at its top, and compared with PyBullet's render of the true
scene from the same cameras on the pixels that show the top's underside (the true surface seen there lies
within 1 cm of the underside's height): mean colour, mean brightness and RMS error.
Pictures (truth / before / after per camera): out/bench_underside/.

    python benchmarks/bench_underside.py           # writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_underside.py --quick   # prints only
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
from pathlib import Path

import numpy as np
import torch
from bench_completeness import bullet_render, intrinsics
from results import write_section

from lyra_sim.camera import Camera, look_at_matrix
from lyra_sim.generate import generate_world
from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.rendering import render
from lyra_sim.single_view.completion import CompletionOptions
from lyra_sim.synthetic.tabletop import CAMERA_EYE, CAMERA_TARGET, build_scene

p = import_pybullet()
OUT = Path(__file__).resolve().parent.parent / "out" / "bench_underside"
INPUT_SIZE, VIEW_SIZE = (320, 240), (160, 120)
UNDERSIDE_BAND_M = 0.01  # underside pixels: the true surface lies this close to the height of the top's underside
ROBOT_VIEWS = {  # name: (eye, target) in the scene's z-up frame; the robot's camera is 15 cm up
    "under the table, looking up along it": ((0.35, 0.0, 0.15), (1.0, 0.0, 0.6)),
    "under the table, looking up across it": ((0.75, -0.35, 0.15), (0.95, 0.2, 0.6)),
}
VARIANTS = {"before": CompletionOptions(shade_undersides=False), "after": CompletionOptions()}


def underside_height(client: int) -> float:
    """The height (m) of the table top's underside: the bottom of the table's base link (its top slab)."""
    for body in range(p.getNumBodies(physicsClientId=client)):
        if p.getBodyInfo(body, physicsClientId=client)[1].decode() == "table.urdf":
            return float(p.getAABB(body, -1, physicsClientId=client)[0][2])
    raise SystemExit("bench_underside: the tabletop scene has no table.urdf body")


def underside_mask(w2c: np.ndarray, K: np.ndarray, depth: np.ndarray, bottom: float) -> np.ndarray:
    """Pixels (H,W bool) whose true surface lies within UNDERSIDE_BAND_M of the underside's height ``bottom``."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    rays = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones((h, w))], axis=-1)
    c2w = np.linalg.inv(w2c)
    points = (rays * depth[..., None]) @ c2w[:3, :3].T + c2w[:3, 3]
    return (depth > 0) & (np.abs(points[..., 2] - bottom) < UNDERSIDE_BAND_M)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="print only, write nothing to RESULTS.md")
    args = parser.parse_args()
    from lyra_sim.views.media import save_png

    client = p.connect(p.DIRECT)
    build_scene(client)
    bottom = underside_height(client)
    w, h = INPUT_SIZE
    K_in = intrinsics(w, h)
    input_w2c = look_at_matrix(CAMERA_EYE, CAMERA_TARGET, up=(0, 0, 1)).double().numpy()
    rgb, depth = bullet_render(client, input_w2c, w, h)
    worlds = {tag: generate_world(rgb, depth=depth, intrinsics=K_in, completion=options)
              for tag, options in VARIANTS.items()}
    vw, vh = VIEW_SIZE
    K = intrinsics(vw, vh)
    OUT.mkdir(parents=True, exist_ok=True)
    rows = []
    for view, (eye, target) in ROBOT_VIEWS.items():
        w2c = look_at_matrix(eye, target, up=(0, 0, 1)).double().numpy()
        truth, truth_depth = bullet_render(client, w2c, vw, vh)
        mask = underside_mask(w2c, K, truth_depth, bottom)
        camera = Camera(torch.from_numpy(K).float(), torch.from_numpy(w2c @ np.linalg.inv(input_w2c)).float(), vw, vh)
        images = [truth]
        for tag, world in worlds.items():
            with torch.no_grad():
                image = render(world, camera, background=(1.0, 1.0, 1.0)).rgb.reshape(vh, vw, 3).numpy().clip(0, 1)
            images.append(image)
            error = image[mask] - truth[mask]
            rows.append({"view": view, "variant": tag, "pixels": float(mask.mean()),
                         "mean": image[mask].mean(0), "truth": truth[mask].mean(0),
                         "brightness": float(image[mask].mean()), "truth_brightness": float(truth[mask].mean()),
                         "rmse": float(np.sqrt((error ** 2).mean())), "bias": float(error.mean())})
            r = rows[-1]
            print(f"{view:40s} {tag:6s} underside {r['pixels']:.1%} of the frame: mean colour "
                  f"{np.round(r['mean'], 3)} (truth {np.round(r['truth'], 3)}), brightness {r['brightness']:.3f} "
                  f"(truth {r['truth_brightness']:.3f}), RMS error {r['rmse']:.3f}", flush=True)
        outline = np.where(mask[..., None], truth * 0.5 + np.array([0.5, 0.0, 0.5]), truth)
        name = view.replace(",", "").replace(" ", "_")
        print(f"wrote {save_png(np.concatenate([*images, outline], axis=1), OUT / f'{name}.png')}")
    p.disconnect(client)
    if not args.quick:
        write_results(rows, bottom)


def write_results(rows: list[dict], bottom: float) -> None:
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = ["| robot camera | variant | underside share of the frame | mean colour (truth) | brightness (truth) | "
             "RMS error | mean error |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        colour = ", ".join(f"{c:.2f}" for c in r["mean"])
        truth = ", ".join(f"{c:.2f}" for c in r["truth"])
        table.append(f"| {r['view']} | {r['variant']} | {r['pixels']:.1%} | {colour} ({truth}) | "
                     f"{r['brightness']:.3f} ({r['truth_brightness']:.3f}) | {r['rmse']:.3f} | {r['bias']:+.3f} |")
    body = f"""Measured {datetime.date.today()} on {platform.machine()}, load average {load}, by
`python benchmarks/bench_underside.py`, both variants in one run. The bundled example's scene
(`lyra_sim.synthetic.tabletop`, PyBullet TinyRenderer and its light) seen by its tabletop camera at
{INPUT_SIZE[0]}x{INPUT_SIZE[1]}, lifted by `generate_world`; BEFORE: `CompletionOptions(shade_undersides=False)`
(the invented underside of the table top in the top's lit, low-passed colours), AFTER: today's defaults (object
backs facing down shaded by `backs.underside_shade`, measured on the image: the seen side faces' brightness over
the seen top faces'). Robot cameras 15 cm above the floor under the table at {VIEW_SIZE[0]}x{VIEW_SIZE[1]};
underside pixels: the true surface there lies within {UNDERSIDE_BAND_M * 100:.0f} cm of the height of the top's
underside ({bottom:.3f} m). Pictures (truth / before / after / underside pixels marked): `out/bench_underside/`.

{chr(10).join(table)}"""
    print(f"wrote {write_section('The invented underside of a table top (bench_underside.py)', body)}")


if __name__ == "__main__":
    main()
