"""Make a synthetic RGB-D capture folder: a camera walking a furnished room (PyBullet), noisy depth.

Writes a TUM RGB-D layout (rgb.txt, depth.txt, rgb/, depth/ at 5000 units per metre,
groundtruth.txt, intrinsics.json) or the plain layout (rgb/NNNN.png, depth/NNNN.png in
millimetres, timestamps.txt, poses.json). CPU only, no downloads, deterministic.

    python examples/make_example_sequence.py out/capture [--frames 100] [--moving] [--layout plain]
    lyra-sim generate out/capture -o out/capture.ply              # estimate poses, fuse
    lyra-sim generate out/capture --poses out/capture/groundtruth.txt -o out/capture.ply
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lyra_sim.synthetic.captures import render_capture, write_capture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--frames", type=int, default=100, help="frames of the 5 m loop (the moving scene: an arc)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--moving", action="store_true", help="a box slides across the floor during the capture")
    parser.add_argument("--layout", choices=["tum", "plain"], default="tum")
    parser.add_argument("--no-poses", action="store_true", help="leave out the true poses")
    args = parser.parse_args()
    capture = render_capture(num_frames=args.frames, width=args.width, height=args.height, moving_object=args.moving)
    root = write_capture(capture, args.out, layout=args.layout, poses=not args.no_poses)
    print(f"wrote {len(capture.rgb)} RGB-D frames ({args.layout} layout) to {root}/")


if __name__ == "__main__":
    main()
