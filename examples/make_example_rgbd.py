"""Make the bundled RGB-D example: a small room of pybullet_data objects seen by a tabletop camera.

Writes lyra_sim/data/tabletop_rgb.png (colour), tabletop_depth.png (16-bit, millimetres) and
tabletop_intrinsics.json (fx, fy, cx, cy, width, height): the package data that `lyra-sim demo` reads,
so the example ships in the wheel (examples/data links there for scripts that use the old path).
Rendered with PyBullet's CPU TinyRenderer, so it needs no GPU and no downloads; the output is deterministic.

    python examples/make_example_rgbd.py [--out lyra_sim/data] [--width 320 --height 240]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image

from lyra_sim.physics.pybullet_quiet import import_pybullet
from lyra_sim.synthetic.tabletop import build_scene, example_view

p = import_pybullet()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "lyra_sim" / "data")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    client = p.connect(p.DIRECT)
    try:
        build_scene(client)
        rgb, depth, intrinsics = example_view(client, args.width, args.height)
    finally:
        p.disconnect(client)
    args.out.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(args.out / "tabletop_rgb.png")
    Image.fromarray(np.round(depth * 1000).clip(0, 65535).astype(np.uint16)).save(args.out / "tabletop_depth.png")
    (args.out / "tabletop_intrinsics.json").write_text(json.dumps(intrinsics, indent=2) + "\n")
    print(f"wrote {args.out / 'tabletop_rgb.png'}, tabletop_depth.png, tabletop_intrinsics.json")


if __name__ == "__main__":
    main()
