"""The ``lyra-sim`` command: argument parsing and printing; the work happens in the library modules it calls."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from lyra_sim import __version__
from lyra_sim.capture.options import CaptureOptions
from lyra_sim.defaults import (
    DEPTH_MODEL_ENV,
    EXAMPLE_DEPTH_MODEL,
    JSON_CAMERA_FORMAT,
)
from lyra_sim.demo.options import DemoOptions
from lyra_sim.errors import LyraSimError
from lyra_sim.lyra.options import DecodeOptions
from lyra_sim.options import add_options, as_kwargs, options_from_args
from lyra_sim.options import positive_int as _positive_int
from lyra_sim.ros.options import BagOptions
from lyra_sim.single_view.options import SingleViewOptions
from lyra_sim.splat_import.options import SCALE_OPTIONS, SimReadyOptions
from lyra_sim.train.options import DatasetOptions
from lyra_sim.views.options import CameraPathOptions, RenderOptions

# Only argparse and the options dataclasses load at import: each command imports its room when it runs, so
# `lyra-sim --help` costs no torch, open3d or numba.


def _generate_options(args: argparse.Namespace) -> tuple[SingleViewOptions, CaptureOptions]:
    """generate_world options for single images and for sequence folders, from the command line."""
    sequence = options_from_args(CaptureOptions, args)
    if args.static:
        sequence.dynamic = False
    return options_from_args(SingleViewOptions, args), sequence


def _print_world_facts(world) -> None:
    from lyra_sim.single_view.completion import completion_summary

    info = world.info
    if info.get("generator") == "rgbd_sequence":
        print(f"{info['frames']} frames; poses: {info['pose_source']}")
        if "odometry" in info:
            odo = info["odometry"]
            residual_mm = odo["residual_trans_m"]["mean"] * 1000
            print(f"  odometry: min overlap {odo['overlap_min']:.0%}, {odo['pairs_kept']} of {odo['pairs_tried']} "
                  f"keyframe/loop registrations kept, pose-graph residual mean {residual_mm:.1f} mm / "
                  f"{odo['residual_rot_deg']['mean']:.2f} deg")
        if len(world.times) > 1:
            print(f"  moving parts: {len(world)} keyframes at t = {', '.join(f'{t:.2f}' for t in world.times)} s")
        return
    print(f"depth source: {info['depth_source']} ({'metric' if info['metric'] else 'scale unknown'})")
    if "depth_note" in info:
        print(f"  {info['depth_note']}")
    if info.get("intrinsics_source", "").startswith("estimated"):
        print(f"  intrinsics {info['intrinsics_source']}")
    for note in info.get("input_notes", []):
        print(f"note: {note}")
    print(completion_summary(world))


@contextlib.contextmanager
def _warnings_as_lines(category: type[Warning]) -> Iterator[None]:
    """Inside the block, each warning of ``category`` prints as one 'warning: ...' line (others as usual)."""
    with warnings.catch_warnings():
        warnings.simplefilter("always", category)
        show = warnings.showwarning

        def one_line(message, cls, filename, lineno, file=None, line=None):
            if issubclass(cls, category):
                print(f"warning: {message}")
            else:
                show(message, cls, filename, lineno, file, line)

        warnings.showwarning = one_line
        yield


def _announce_depth_model(args: argparse.Namespace) -> None:
    """Find (downloading once, if needed) the depth model the images will use, and say which and where it is."""
    from lyra_sim.inputs.sequence import is_sequence_dir
    from lyra_sim.single_view.depth_models import resolve_depth_model

    name = args.depth_model or os.environ.get(DEPTH_MODEL_ENV)
    if name and not args.depth and not all(is_sequence_dir(source) for source in args.inputs):
        print(f"depth model: {resolve_depth_model(name).describe()}")


def cmd_generate(args: argparse.Namespace) -> int:
    from lyra_sim.single_view.depth_sources import FlatPriorWarning

    image_options, sequence_options = _generate_options(args)
    _announce_depth_model(args)
    with _warnings_as_lines(FlatPriorWarning):
        return _generate(args, image_options, sequence_options)


def _generate(args: argparse.Namespace, image_options: SingleViewOptions, sequence_options: CaptureOptions) -> int:
    from lyra_sim.generate import generate_world
    from lyra_sim.generate.batch import generate_many
    from lyra_sim.inputs import InputError
    from lyra_sim.inputs.sequence import is_sequence_dir
    from lyra_sim.io import save_world
    from lyra_sim.io.errors import WorldFileError
    from lyra_sim.options import as_kwargs
    from lyra_sim.world import DynamicGaussianWorld

    if len(args.inputs) > 1 or args.workers > 1 or args.ray_address:
        if args.depth:
            raise InputError("--depth: with several inputs give depth inside sequence folders instead")
        written = generate_many(args.inputs, args.output, suffix=f".{args.format}", workers=args.workers,
                                ray_address=args.ray_address,
                                image_options={**as_kwargs(image_options), "intrinsics": args.intrinsics},
                                sequence_options={**as_kwargs(sequence_options), "intrinsics": args.intrinsics})
        for path in written:
            print(f"wrote {path}")
        return 0
    source = args.inputs[0]
    if is_sequence_dir(source):
        world = generate_world(source, intrinsics=args.intrinsics, options=sequence_options)
    else:
        world = generate_world(source, depth=args.depth, intrinsics=args.intrinsics, options=image_options)
    try:
        path = save_world(world, args.output)
    except WorldFileError:
        if not isinstance(world, DynamicGaussianWorld):
            raise
        path = save_world(world, Path(args.output).with_suffix(".safetensors"))  # keep minutes of work
        print(f"note: part of the capture moved, so the world is dynamic and {Path(args.output).suffix} holds one "
              f"static world: wrote {path.suffix} instead (--static leaves moving parts out)")
    _print_world_facts(world)
    count = sum(len(w) for w in world.keyframes)
    print(f"wrote {count:,} Gaussians to {path}")
    return 0


def cmd_fetch_model(args: argparse.Namespace) -> int:
    from lyra_sim.single_view.depth_models import fetch_depth_model

    source = fetch_depth_model(args.name)
    print(f"fetched {source.describe()}")
    return 0


def cmd_decode(args: argparse.Namespace) -> int:
    from lyra_sim.io import save_world
    from lyra_sim.lyra.pipeline import decode_teacher_dir  # pulls in diffusers
    from lyra_sim.options import as_kwargs
    from lyra_sim.world import DynamicGaussianWorld

    output = Path(args.output)
    if output.suffix.lower() not in (".ply", ".safetensors"):
        raise ValueError(f"-o {output}: expected a .ply or .safetensors path")
    options = options_from_args(DecodeOptions, args)
    t0 = time.perf_counter()
    world = decode_teacher_dir(args.teacher_dir, args.checkpoint, args.tokenizer,
                               **{**as_kwargs(options), "dynamic": True if options.dynamic else None})
    print(f"decoded in {time.perf_counter() - t0:.1f} s: {world.summary()['num_gaussians']} Gaussians")
    if isinstance(world, DynamicGaussianWorld) and output.suffix.lower() == ".ply":
        for t, keyframe in zip(world.times, world.worlds, strict=True):
            frame = round(keyframe.info["target_frame"])
            path = save_world(keyframe, output.with_name(f"{output.stem}_t{frame:03d}.ply"), layout=args.layout)
            print(f"wrote keyframe t={t:.3f} s to {path}")
        return 0
    print(f"wrote {save_world(world, output, layout=args.layout)}")
    return 0


def cmd_collider(args: argparse.Namespace) -> int:
    """World file -> aligned collision mesh (GLB/OBJ/PLY/STL), with the agreement line."""
    from lyra_sim.io import load_world
    from lyra_sim.physics.aligned import align_with_proxies

    budget = {} if args.triangles is None else {"triangle_budget": args.triangles}
    _, proxies = align_with_proxies(load_world(args.world), progress=True, **budget)
    proxy = proxies[0]
    if "floaters" in proxy.info:
        floaters = proxy.info["floaters"]
        print(f"floaters: {floaters['dropped']} of {floaters['of']} Gaussians kept out of the collider "
              f"({floaters['faint']} faint, {floaters['huge']} huge, {floaters['isolated']} isolated)")
    print(f"collision proxy: {len(proxy.faces):,} triangles in {proxy.info['build_seconds']:.1f} s")
    if "agreement_line" in proxy.info:
        print(proxy.info["agreement_line"])
    print(f"wrote {proxy.save(args.output)} (aligned frame: z up, floor at z = 0, metres)")
    if args.convex:
        from lyra_sim.physics.convex import object_parts, save_parts

        objects = object_parts(*proxy.obstacle_mesh)
        parts = sum(len(o) for o in objects)
        print(f"wrote {save_parts(args.convex, objects)} ({len(objects)} objects, {parts} convex parts, V-HACD)")
    return 0


def cmd_export_usd(args: argparse.Namespace) -> int:
    from lyra_sim.io import REGISTRY, load_world

    usd = REGISTRY.writer_for(args.output, "usd")  # through the format registry: the core never names the adapter
    world = load_world(args.world)
    collision = args.collision
    if collision == "auto":
        from lyra_sim.physics.aligned import align_with_proxies

        world, proxies = align_with_proxies(world)
        print(f"aligned: floor at z = 0, scale from {world.info['alignment']['scale_source']}")
        collision = proxies[0]
        print(f"collision proxy: {len(collision.faces):,} triangles")
        if "agreement_line" in collision.info:
            print(collision.info["agreement_line"])
    out = usd.writer(world, Path(args.output), collision_mesh=collision, half=args.half, points_fallback=args.points)
    if world.frame != "z_up":
        print("note: world was in OpenCV axes; rotated to Z-up without levelling (--collision auto levels it; "
              "lyra-sim simready also removes floaters, fixes the scale and writes a collider GLB and scene.json)")
    if world.meters_per_unit is None:
        print("note: world scale is unknown; written as if 1 unit = 1 m (recorded as lyra_sim:metric = False)")
    print(f"wrote {out}")
    return 0


def cmd_simready(args: argparse.Namespace) -> int:
    from lyra_sim.splat_import import make_sim_ready

    result = make_sim_ready(args.splat, args.output, options_from_args(SimReadyOptions, args))
    for note in result.notes:
        print(note)
    print("time: " + ", ".join(f"{stage} {seconds:.1f} s" for stage, seconds in result.timings.items()))
    for what, path in (("USD stage", "usd"), ("collider", "collider"), ("scene (make_env, ROS node)", "scene"),
                       ("contact sheet", "contact_sheet")):
        print(f"wrote {what}: {result.outputs[path]}")
    return 0


def _world_and_cameras(args: argparse.Namespace, spec: str):
    """The world of ``args.world`` and the camera path ``spec`` at the requested size and field of view."""
    from lyra_sim.io import load_world
    from lyra_sim.views.paths import world_camera_path

    world = load_world(args.world)
    try:
        return world, world_camera_path(world, spec, **as_kwargs(options_from_args(CameraPathOptions, args)))
    except LyraSimError as exc:  # the world's info or the path spec: say which world it was rendered for
        raise type(exc)(f"{args.world}: {exc}") from exc


def cmd_record_bag(args: argparse.Namespace) -> int:
    from lyra_sim.ros.bag import parse_start_time, record_bag

    start = None if args.start is None else parse_start_time(args.start)  # cheap checks before the world loads
    world, cams = _world_and_cameras(args, args.trajectory)
    options = options_from_args(BagOptions, args)
    options.body_frame_id = options.body_frame_id or None  # '' on the command line: no body frame
    out = record_bag(world, cams, args.output, start_time=start, **as_kwargs(options))
    tf = "/tf, /tf_static" if options.body_frame_id else "/tf"
    print(f"wrote {len(cams)} frames ({options.topic_prefix}/image_raw, depth, camera_info, pose; {tf}) to {out}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from lyra_sim.train.data_engine import make_dataset

    options = options_from_args(DatasetOptions, args)
    manifest = make_dataset(args.output, **as_kwargs(options))
    print(f"wrote {options.num_scenes} scenes ({options.held_out} held out) and {manifest}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lyra_sim.train.loop import TrainConfig, Trainer

    config = TrainConfig.from_file(args.config)
    for name in ("dataset", "output"):
        if getattr(args, name):
            setattr(config, name, getattr(args, name))
    trainer = Trainer(config)
    print(f"perceptual loss: {trainer.perceptual.name}; latent space: {config.latent_space}; "
          f"starting at step {trainer.step} of {config.total_steps}")
    trainer.train(steps=args.steps)
    print(f"wrote checkpoints to {Path(config.output) / 'checkpoints'}/ and metrics to "
          f"{Path(config.output) / 'metrics.csv'}")
    if args.eval:
        print(json.dumps(trainer.evaluate(), indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lyra_sim.train.loop import evaluate_checkpoint

    print(json.dumps(evaluate_checkpoint(args.checkpoint, args.dataset, args.split), indent=2))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    from lyra_sim.views.media import render_path

    world, cams = _world_and_cameras(args, args.path)
    written = render_path(world, cams, Path(args.out), **as_kwargs(options_from_args(RenderOptions, args)))
    print(f"wrote {len(written['frames'])} frames to {args.out}/")
    print(f"wrote contact sheet {written['contact_sheet']}")
    if "mp4" in written:
        print(f"wrote video {written['mp4']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from lyra_sim.io import load_world

    world = load_world(args.world)
    print(json.dumps(world.summary(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from lyra_sim.demo import run_demo

    run_demo(args.out, **as_kwargs(options_from_args(DemoOptions, args)))
    return 0


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default, except the uninformative ones (None, off switches)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or isinstance(action.default, bool) or action.help is None:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit code 2), like the commands' errors."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _version() -> str:
    try:
        return importlib.metadata.version("lyra-sim")
    except importlib.metadata.PackageNotFoundError:  # running from a source tree
        return __version__


PATH_HELP = (f"camera path: 'fly' (a loop around the input view, which is its first frame), 'lyra:K' (Lyra's "
             f"trajectory K, 0..5), 'lyra:A..B' (trajectories A to B in turn; lyra:0..5 renders all six, FRAMES "
             f"each) or a {JSON_CAMERA_FORMAT}")
WRITE_SUFFIXES = ".ply, .compressed.ply, .spz, .safetensors, .usda/.usdc/.usdz"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="lyra-sim", description="Gaussian-splat worlds for robot simulation.",
                     formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=summary, description=summary, formatter_class=_HelpFormatter)

    gen = command("generate", "image [+ depth], RGB-D sequence folder, or several of them -> world file(s) (the "
                  "output's suffix picks the format)")
    gen.add_argument("inputs", nargs="+", metavar="INPUT",
                     help="input photo (PNG, JPEG, ...) or RGB-D sequence folder (TUM rgb.txt/depth.txt, or rgb/ + "
                          "depth/); several inputs write one world each into the -o folder")
    gen.add_argument("--depth", help="depth map: 16-bit PNG (millimetres unless --depth-scale) or .npy (metres)")
    gen.add_argument("--intrinsics", help="JSON with fx, fy, cx, cy (or K); sequences default to their intrinsics.json")
    add_options(gen, SingleViewOptions)
    seq = gen.add_argument_group("RGB-D sequences")
    add_options(seq, CaptureOptions, exclude=("depth_scale",))  # --depth-scale serves both
    seq.add_argument("--static", action="store_true", help="never make a dynamic world (moving parts are left out)")
    many = gen.add_argument_group("several inputs")
    many.add_argument("--workers", type=_positive_int, default=1, help="parallel workers on a local Ray "
                      "(lyra-sim[scale])")
    many.add_argument("--ray-address", help="run on this existing Ray cluster instead (e.g. ray://head:10001)")
    many.add_argument("--format", default="ply", choices=["ply", "safetensors"],
                      help="file format of each world (dynamic worlds are always .safetensors)")
    gen.add_argument("-o", "--output", required=True, help=f"world file to write: {WRITE_SUFFIXES}; with several "
                     "inputs a folder")
    gen.set_defaults(func=cmd_generate)

    fetch = command("fetch-model", "download a depth model into the Hugging Face cache ahead of time (for "
                    "--depth-model, depth_model= or $" + DEPTH_MODEL_ENV + ")")
    fetch.add_argument("name", metavar="NAME", help=f"Hugging Face model id, e.g. {EXAMPLE_DEPTH_MODEL} or "
                       "apple/DepthPro-hf (the licence is the model's: see its model card)")
    fetch.set_defaults(func=cmd_fetch_model)

    dec = command("decode", "GEN3C teacher directory -> Gaussians with the Lyra decoder")
    dec.add_argument("teacher_dir", help="folder with 0..5/{latent,pose,intrinsics}/<name>.*")
    dec.add_argument("--checkpoint", required=True, help="lyra_static.pt / lyra_dynamic.pt ({'module': ...})")
    dec.add_argument("--tokenizer", required=True, help="local Cosmos CV8x8x8 directory (diffusers or .jit)")
    add_options(dec, DecodeOptions)
    dec.add_argument("--layout", default="inria", choices=["inria", "lyra"],
                     help="PLY layout: inria (common 3DGS) or lyra (the official gaussians_orig)")
    dec.add_argument("-o", "--output", required=True, help=".ply (dynamic: one file per keyframe) or .safetensors")
    dec.set_defaults(func=cmd_decode)

    usd = command("export-usd", "world file -> OpenUSD stage (.usda/.usdc/.usdz) for Isaac Sim")
    usd.add_argument("world", help="world file to export (any readable format)")
    usd.add_argument("output", help="OUT.usdz, OUT.usdc or OUT.usda")
    usd.add_argument("--collision", help="'auto' (align the world and build a proxy from its Gaussians) or a "
                     "mesh file (OBJ/PLY/...) in the world's frame")
    usd.add_argument("--half", action="store_true", help="half-precision splat attributes (smaller files)")
    usd.add_argument("--points", action="store_true", help="also write a UsdGeom.Points proxy for plain viewers")
    usd.set_defaults(func=cmd_export_usd)

    col = command("collider", "world file -> collision mesh that matches what the camera sees (aligned frame)")
    col.add_argument("world", help="world file (any readable format)")
    col.add_argument("-o", "--output", required=True, help="mesh file to write: .glb, .gltf, .obj, .ply or .stl")
    col.add_argument("--triangles", type=_positive_int, help="triangle budget (default: the library's, 100k)")
    col.add_argument("--convex", help="also write the convex parts (V-HACD) of the pieces small enough to be "
                     "objects that move, as one OBJ (an 'o' per part)")
    col.set_defaults(func=cmd_collider)

    ready = command("simready", "splat file (Lyra, Marble, capture trainer, SuperSplat: .ply .spz .sog .glb ...) "
                    "-> USD stage with collider, collider GLB, scene.json for make_env, robot-height contact sheet")
    ready.add_argument("splat", help="splat file (any readable format)")
    ready.add_argument("-o", "--output", required=True, help="output folder")
    add_options(ready.add_mutually_exclusive_group(), SimReadyOptions, only=SCALE_OPTIONS)
    add_options(ready, SimReadyOptions, exclude=SCALE_OPTIONS)
    ready.set_defaults(func=cmd_simready)

    bag = command("record-bag", "world + camera path -> ROS 2 MCAP bag (image, depth, info, pose, /tf)")
    bag.add_argument("world", help="world file to render (any readable format)")
    bag.add_argument("trajectory", help=PATH_HELP)
    bag.add_argument("output", help="OUT.mcap")
    add_options(bag, CameraPathOptions)
    add_options(bag, BagOptions)
    bag.add_argument("--start", help="stamp of the first frame: seconds since 1970 or an ISO 8601 time (UTC unless "
                     "it has an offset); default: now")
    bag.set_defaults(func=cmd_record_bag)

    mk = command("make-dataset", "PyBullet scenes through the 3D-cache teacher -> training shards")
    mk.add_argument("output", help="dataset folder to write (resumes when it exists)")
    add_options(mk, DatasetOptions)
    mk.set_defaults(func=cmd_make_dataset)

    tr = command("train", "self-distillation of the Lyra decoder (accelerate; resumes)")
    tr.add_argument("--config", required=True, help="JSON or YAML TrainConfig")
    tr.add_argument("--dataset", help="override the config's dataset")
    tr.add_argument("--output", help="override the config's output folder")
    tr.add_argument("--steps", type=_positive_int, help="at most this many more steps")
    tr.add_argument("--eval", action="store_true", help="evaluate on the held-out split at the end")
    tr.set_defaults(func=cmd_train)

    ev = command("eval", "PSNR/SSIM of a trained checkpoint on held-out trajectories")
    ev.add_argument("checkpoint", help="checkpoint written by `lyra-sim train` (.pt)")
    ev.add_argument("--dataset", help="default: the one the checkpoint was trained on")
    ev.add_argument("--split", default="held_out", choices=["held_out", "train"], help="which scenes")
    ev.set_defaults(func=cmd_eval)

    ren = command("render", "world + camera path -> PNG frames, contact sheet, MP4")
    ren.add_argument("world", help="world file to render (any readable format)")
    ren.add_argument("--path", default="fly", help=PATH_HELP)
    add_options(ren, CameraPathOptions)
    add_options(ren, RenderOptions)
    ren.add_argument("-o", "--out", default="out/render", help="output folder")
    ren.set_defaults(func=cmd_render)

    inf = command("info", "print a world summary")
    inf.add_argument("world", help="world file (any readable format)")
    inf.set_defaults(func=cmd_info)

    demo = command("demo", "generate a world from the bundled example and fly through it")
    demo.add_argument("--out", default="out", help="output folder")
    add_options(demo, DemoOptions)
    demo.set_defaults(func=cmd_demo)
    return parser


def _one_line(exc: BaseException) -> str:
    """An error as one line: OSErrors as 'path: reason', others by their message."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.filename}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LyraSimError, OSError, ValueError) as exc:
        print(f"lyra-sim {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lyra-sim {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
