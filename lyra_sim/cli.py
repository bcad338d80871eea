"""The ``lyra-sim`` command: generate, decode, render, info and demo."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lyra_sim.camera import Camera
from lyra_sim.errors import LyraSimError
from lyra_sim.generate import InputError, generate_world
from lyra_sim.io import load_world, save_world
from lyra_sim.media import contact_sheet, depth_to_uint8, save_mp4, save_png
from lyra_sim.rendering import DEFAULT_BACKGROUND, render
from lyra_sim.trajectories import LYRA_TRAJECTORIES, fly_through, lyra_trajectories
from lyra_sim.world import DynamicGaussianWorld, GaussianWorld

EXAMPLE_DIR = Path(__file__).resolve().parent.parent / "examples" / "data"


def _intrinsics_for(world: GaussianWorld | DynamicGaussianWorld, width: int, height: int, fov: float | None):
    """K for rendering: the generating camera's (rescaled) when the world records one, else from fov."""
    info = (world.worlds[0] if isinstance(world, DynamicGaussianWorld) else world).info
    if fov is None and "intrinsics" in info and "image_size" in info:
        K = torch.tensor(info["intrinsics"], dtype=torch.float32)
        src_w, src_h = info["image_size"]
        K[0] *= width / src_w
        K[1] *= height / src_h
        K[2] = torch.tensor([0.0, 0.0, 1.0])
        return K
    return Camera.intrinsics_from_fov(width, height, fov or 60.0)


def camera_path(spec: str, K: torch.Tensor, width: int, height: int, frames: int, scene_depth: float) -> Camera:
    """A camera batch from a path spec: "fly", "lyra:<0-5>" or a JSON file of cameras."""
    if spec == "fly":
        return fly_through(K, width, height, num_frames=frames, look_at_depth=scene_depth, radius=0.15 * scene_depth,
                           forward=0.25 * scene_depth)  # fmt: skip
    if spec.startswith("lyra:"):
        index = int(spec.split(":", 1)[1])
        if index not in LYRA_TRAJECTORIES:
            raise InputError(f"--path: Lyra trajectories are lyra:0 .. lyra:5, got {spec}")
        return lyra_trajectories(K, width, height, num_frames=frames, scene_scale=scene_depth, order=(index,))[0]
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"--path: expected 'fly', 'lyra:K' or a JSON camera file, got {spec!r}")
    try:
        data = json.loads(path.read_text())
        return Camera(np.asarray(data["K"]), np.asarray(data["world_to_cam"]), data.get("width", width),
                      data.get("height", height))  # fmt: skip
    except (json.JSONDecodeError, KeyError, ValueError) as exc:
        raise InputError(f"--path {path}: expected JSON with 'K' and 'world_to_cam' ({exc})") from exc


def _scene_depth(world: GaussianWorld | DynamicGaussianWorld) -> float:
    w = world.worlds[0] if isinstance(world, DynamicGaussianWorld) else world
    z = w.means[:, 2]
    z = z[z > 0]
    return float(z.median()) if len(z) else 1.0


def render_path(world, cameras: Camera, out_dir: Path, backend: str = "auto", mp4: bool = True,
                background=DEFAULT_BACKGROUND, depth_frames: bool = False) -> dict:  # fmt: skip
    """Render every camera of a path to PNG frames, a contact sheet and an MP4; returns written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    frames, written = [], {"frames": []}
    for i in tqdm(range(len(cameras)), desc="rendering", unit="frame"):
        t = None
        if isinstance(world, DynamicGaussianWorld):
            t = world.times[0] + (world.times[-1] - world.times[0]) * i / max(len(cameras) - 1, 1)
        with torch.no_grad():
            result = render(world, cameras[i], backend=backend, background=background, t=t)
        frame = result.rgb
        frames.append(frame.numpy())
        written["frames"].append(str(save_png(frame, out_dir / f"frame_{i:04d}.png")))
        if depth_frames:
            save_png(depth_to_uint8(result.depth), out_dir / f"depth_{i:04d}.png")
    written["contact_sheet"] = str(save_png(contact_sheet(frames), out_dir / "contact_sheet.png"))
    if mp4:
        written["mp4"] = str(save_mp4(frames, out_dir / "flythrough.mp4"))
    return written


def cmd_generate(args: argparse.Namespace) -> int:
    world = generate_world(
        args.image, depth=args.depth, intrinsics=args.intrinsics, fov_deg=args.fov, depth_model=args.depth_model,
        stride=args.stride, camera_height=args.camera_height, pitch_deg=args.pitch,
    )  # fmt: skip
    path = save_world(world, args.output)
    info = world.info
    print(f"depth source: {info['depth_source']} ({'metric' if info['metric'] else 'scale unknown'})")
    if "depth_note" in info:
        print(f"  {info['depth_note']}")
    print(f"wrote {len(world):,} Gaussians to {path}")
    return 0


def _int_list(text: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from exc


def cmd_decode(args: argparse.Namespace) -> int:
    from lyra_sim.generate.lyra_pipeline import decode_teacher_dir  # lazy: pulls in diffusers

    output = Path(args.output)
    if output.suffix.lower() not in (".ply", ".safetensors"):
        raise ValueError(f"-o {output}: expected a .ply or .safetensors path")
    t0 = time.perf_counter()
    world = decode_teacher_dir(
        args.teacher_dir, args.checkpoint, args.tokenizer, views=tuple(_int_list(args.views)), prune=args.prune,
        device=args.device, dynamic=True if args.dynamic else None,
        times=[float(t) for t in args.times.split(",")] if args.times else None, name=args.name,
    )  # fmt: skip
    print(f"decoded in {time.perf_counter() - t0:.1f} s: {world.summary()['num_gaussians']} Gaussians")
    if isinstance(world, DynamicGaussianWorld) and output.suffix.lower() == ".ply":
        for t, keyframe in zip(world.times, world.worlds, strict=True):
            frame = round(keyframe.info["target_frame"])
            path = save_world(keyframe, output.with_name(f"{output.stem}_t{frame:03d}.ply"), layout=args.layout)
            print(f"wrote keyframe t={t:.3f} s to {path}")
        return 0
    print(f"wrote {save_world(world, output, layout=args.layout)}")
    return 0


def cmd_export_usd(args: argparse.Namespace) -> int:
    from usd_exporters import export_world  # lazy: pxr is only needed here

    world = load_world(args.world)
    collision = args.collision
    if collision == "auto":
        from lyra_sim.align import align_world
        from lyra_sim.physics import build_collision_proxy

        world = align_world(world)
        print(f"aligned: floor at z = 0, scale from {world.info['alignment']['scale_source']}")
        collision = build_collision_proxy(world)
        collision = collision[0] if isinstance(collision, list) else collision
        print(f"collision proxy: {len(collision.faces):,} triangles")
    out = export_world(world, args.output, collision_mesh=collision, half=args.half,
                       points_fallback=args.points)  # fmt: skip
    if world.frame != "z_up":
        print("note: world was in OpenCV axes; rotated to Z-up without levelling (lyra_sim.align levels it)")
    if world.meters_per_unit is None:
        print("note: world scale is unknown; written as if 1 unit = 1 m (recorded as lyra_sim:metric = False)")
    print(f"wrote {out}")
    return 0


def _world_and_cameras(args: argparse.Namespace, spec: str):
    """The world of ``args.world`` and the camera path ``spec`` at the requested size and field of view."""
    world = load_world(args.world)
    K = _intrinsics_for(world, args.width, args.height, args.fov)
    return world, camera_path(spec, K, args.width, args.height, args.frames, _scene_depth(world))


def cmd_record_bag(args: argparse.Namespace) -> int:
    from lyra_sim.rosbag import record_bag

    world, cams = _world_and_cameras(args, args.trajectory)
    out = record_bag(world, cams, args.output, rate_hz=args.rate, frame_id=args.frame_id,
                     world_frame_id=args.world_frame_id, topic_prefix=args.topic_prefix)  # fmt: skip
    print(f"wrote {len(cams)} frames x 4 topics ({args.topic_prefix}/image_raw, depth, camera_info, pose) to {out}")
    return 0


def cmd_make_dataset(args: argparse.Namespace) -> int:
    from lyra_sim.train.data_engine import make_dataset

    manifest = make_dataset(args.output, num_scenes=args.scenes, held_out=args.held_out, width=args.width,
                            height=args.height, frames=args.frames, seed=args.seed)  # fmt: skip
    print(f"wrote {args.scenes} scenes ({args.held_out} held out) and {manifest}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from lyra_sim.train.loop import TrainConfig, Trainer

    config = TrainConfig.from_file(args.config)
    for name in ("dataset", "output"):
        if getattr(args, name):
            setattr(config, name, getattr(args, name))
    trainer = Trainer(config)
    print(f"perceptual loss: {trainer.perceptual.name}; latent space: {config.latent_space}; "
          f"starting at step {trainer.step} of {config.total_steps}")  # fmt: skip
    trainer.train(steps=args.steps)
    print(f"wrote checkpoints to {Path(config.output) / 'checkpoints'}/ and metrics to "
          f"{Path(config.output) / 'metrics.csv'}")  # fmt: skip
    if args.eval:
        print(json.dumps(trainer.evaluate(), indent=2))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from lyra_sim.generate import LyraDecoder
    from lyra_sim.train.data_engine import SceneDataset
    from lyra_sim.train.loop import TrainConfig, evaluate, make_space

    payload = torch.load(args.checkpoint, map_location="cpu", weights_only=True)
    if "train_config" not in payload:
        raise ValueError(f"{args.checkpoint}: no train_config (was it written by `lyra-sim train`?)")
    config = TrainConfig.from_dict(payload["train_config"])
    model = LyraDecoder.from_checkpoint(args.checkpoint)
    metrics = evaluate(model, SceneDataset(args.dataset or config.dataset, args.split), make_space(config), config)
    print(json.dumps(metrics, indent=2))
    return 0


def cmd_render(args: argparse.Namespace) -> int:
    world, cams = _world_and_cameras(args, args.path)
    written = render_path(world, cams, Path(args.out), backend=args.backend, mp4=not args.no_mp4,
                          depth_frames=args.depth)  # fmt: skip
    print(f"wrote {len(written['frames'])} frames to {args.out}/")
    print(f"wrote contact sheet {written['contact_sheet']}")
    if "mp4" in written:
        print(f"wrote video {written['mp4']}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    world = load_world(args.world)
    print(json.dumps(world.summary(), indent=2))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    out = Path(args.out)
    data = Path(args.example_dir)
    t0 = time.perf_counter()
    world = generate_world(data / "tabletop_rgb.png", depth=data / "tabletop_depth.png",
                           intrinsics=data / "tabletop_intrinsics.json")  # fmt: skip
    print(f"generated {len(world):,} Gaussians from {data} in {time.perf_counter() - t0:.1f} s "
          f"(depth: {world.info['depth_source']}, metric: {world.info['metric']})")  # fmt: skip
    ply = save_world(world, out / "world.ply")
    native = save_world(world, out / "world.safetensors")
    print(f"wrote {ply} and {native}")

    w, h = world.info["image_size"]
    K = _intrinsics_for(world, w, h, None)
    with torch.no_grad():
        preview = render(world, Camera(K, torch.eye(4), w, h))
    print(f"wrote preview {save_png(preview.rgb, out / 'preview.png')}")
    cams = camera_path("fly", K, w, h, args.frames, _scene_depth(world))
    t0 = time.perf_counter()
    written = render_path(world, cams, out / "flythrough")
    fps = len(cams) / (time.perf_counter() - t0)
    print(f"rendered {len(cams)} fly-through frames at {fps:.1f} frames/s")
    print(f"wrote frames to {out / 'flythrough'}/, contact sheet {written['contact_sheet']}, video {written['mp4']}")
    run_demo_episode(data, out, args.steps)
    return 0


def run_demo_episode(data: Path, out: Path, steps: int) -> None:
    """Align the example, build its collision proxy, export USDZ, and drive the robot to a goal."""
    from lyra_sim.envs.navigate import NavigateEnv
    from lyra_sim.envs.scene import prepare_scene
    from lyra_sim.generate.images import load_depth, load_intrinsics, load_rgb
    from usd_exporters import export_world

    rgb = load_rgb(data / "tabletop_rgb.png")
    depth = load_depth(data / "tabletop_depth.png", rgb.shape[:2])
    K = load_intrinsics(data / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
    t0 = time.perf_counter()
    scene = prepare_scene((rgb, depth), intrinsics=K, progress=True)
    proxy = scene.proxies[0]
    print(f"aligned and built a {len(proxy.faces):,}-triangle collision proxy in {time.perf_counter() - t0:.1f} s "
          f"(camera {scene.world.info['alignment']['camera_height_m']:.2f} m above the floor)")  # fmt: skip
    print(f"wrote collision proxy {proxy.save(out / 'proxy.obj')}")
    print(f"wrote {export_world(scene.world, out / 'world.usdz', collision_mesh=proxy)} (Z-up, metres, collider)")
    env = NavigateEnv(scene, image_size=(160, 120), max_steps=steps)
    obs, info = env.reset(seed=0)
    frames = [obs["rgb"]]
    total, t0 = 0.0, time.perf_counter()
    for _ in tqdm(range(steps), desc="episode", unit="step"):
        goal_x, goal_y, _ = obs["goal"]  # a scripted controller: turn towards the goal, drive when facing it
        heading = float(np.arctan2(goal_y, goal_x))
        action = np.array([np.clip(1.0 - abs(heading), 0.0, 1.0), np.clip(2.0 * heading, -1.0, 1.0)])
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(obs["rgb"])
        total += reward
        if terminated or truncated:
            break
    rate = (len(frames) - 1) / (time.perf_counter() - t0)
    env.close()
    outcome = "reached the goal" if info.get("success") else "collided" if info.get("collision") else "stopped"
    print(f"episode: {len(frames) - 1} steps at {rate:.0f} steps/s, {outcome}, return {total:.2f}")
    episode_dir = out / "episode"
    for i, frame in enumerate(frames):
        save_png(frame, episode_dir / f"frame_{i:03d}.png")
    sheet = save_png(contact_sheet(frames, max_frames=12), episode_dir / "contact_sheet.png")
    video = save_mp4(frames, episode_dir / "episode.mp4", fps=10)
    print(f"wrote robot camera frames to {episode_dir}/, contact sheet {sheet}, video {video}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lyra-sim", description="Gaussian-splat worlds for robot simulation.")
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="image [+ depth] -> world file (.ply or .safetensors)")
    gen.add_argument("image")
    gen.add_argument("--depth", help="depth map: 16-bit PNG in millimetres or .npy in metres")
    gen.add_argument("--intrinsics", help="JSON with fx, fy, cx, cy (or K)")
    gen.add_argument("--fov", type=float, default=60.0, help="horizontal FOV when no intrinsics (degrees)")
    gen.add_argument("--depth-model", help="local transformers depth model directory")
    gen.add_argument("--stride", type=int, default=1, help="use every n-th pixel")
    gen.add_argument("--camera-height", type=float, default=1.2, help="prior: camera height (m)")
    gen.add_argument("--pitch", type=float, default=15.0, help="prior: camera pitch down (degrees)")
    gen.add_argument("-o", "--output", required=True)
    gen.set_defaults(func=cmd_generate)

    dec = sub.add_parser("decode", help="GEN3C teacher directory -> Gaussians with the Lyra decoder")
    dec.add_argument("teacher_dir", help="folder with 0..5/{latent,pose,intrinsics}/<name>.*")
    dec.add_argument("--checkpoint", required=True, help="lyra_static.pt / lyra_dynamic.pt ({'module': ...})")
    dec.add_argument("--tokenizer", required=True, help="local Cosmos CV8x8x8 directory (diffusers or .jit)")
    dec.add_argument("--dynamic", action="store_true", help="dynamic model: one keyframe per target time")
    dec.add_argument("--times", help="dynamic target frames, e.g. 0,60,120 (default: first, middle, last)")
    dec.add_argument("--views", default="5,0,1,2,3,4", help="trajectories to fuse, in order")
    dec.add_argument("--prune", type=float, default=0.8, help="fraction of Gaussians dropped by opacity")
    dec.add_argument("--name", help="scene name when the folder holds several")
    dec.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    dec.add_argument("--layout", default="inria", choices=["inria", "lyra"],
                     help="PLY layout: inria (common 3DGS) or lyra (the official gaussians_orig)")
    dec.add_argument("-o", "--output", required=True, help=".ply (dynamic: one file per keyframe) or .safetensors")
    dec.set_defaults(func=cmd_decode)

    usd = sub.add_parser("export-usd", help="world file -> OpenUSD stage (.usda/.usdc/.usdz) for Isaac Sim")
    usd.add_argument("world")
    usd.add_argument("output", help="OUT.usdz, OUT.usdc or OUT.usda")
    usd.add_argument("--collision", help="'auto' (align the world and build a proxy from its Gaussians) or a "
                     "mesh file (OBJ/PLY/...) in the world's frame")
    usd.add_argument("--half", action="store_true", help="half-precision splat attributes (smaller files)")
    usd.add_argument("--points", action="store_true", help="also write a UsdGeom.Points proxy for plain viewers")
    usd.set_defaults(func=cmd_export_usd)

    bag = sub.add_parser("record-bag", help="world + camera path -> ROS 2 MCAP bag (image, depth, info, pose)")
    bag.add_argument("world")
    bag.add_argument("trajectory", help="'fly', 'lyra:0'..'lyra:5', or a JSON camera file")
    bag.add_argument("output", help="OUT.mcap")
    bag.add_argument("--frames", type=int, default=48)
    bag.add_argument("--width", type=int, default=320)
    bag.add_argument("--height", type=int, default=240)
    bag.add_argument("--fov", type=float, help="horizontal FOV (default: the generating camera's)")
    bag.add_argument("--rate", type=float, default=10.0, help="frames per second of bag time")
    bag.add_argument("--frame-id", default="camera_optical_frame")
    bag.add_argument("--world-frame-id", default="map")
    bag.add_argument("--topic-prefix", default="/camera")
    bag.set_defaults(func=cmd_record_bag)

    mk = sub.add_parser("make-dataset", help="PyBullet scenes through the 3D-cache teacher -> training shards")
    mk.add_argument("output")
    mk.add_argument("--scenes", type=int, default=16)
    mk.add_argument("--held-out", type=int, default=2)
    mk.add_argument("--width", type=int, default=64)
    mk.add_argument("--height", type=int, default=48)
    mk.add_argument("--frames", type=int, default=9, help="frames per trajectory (1 + 8k)")
    mk.add_argument("--seed", type=int, default=0)
    mk.set_defaults(func=cmd_make_dataset)

    tr = sub.add_parser("train", help="self-distillation of the Lyra decoder (accelerate; resumes)")
    tr.add_argument("--config", required=True, help="JSON or YAML TrainConfig")
    tr.add_argument("--dataset", help="override the config's dataset")
    tr.add_argument("--output", help="override the config's output folder")
    tr.add_argument("--steps", type=int, help="at most this many more steps")
    tr.add_argument("--eval", action="store_true", help="evaluate on the held-out split at the end")
    tr.set_defaults(func=cmd_train)

    ev = sub.add_parser("eval", help="PSNR/SSIM of a trained checkpoint on held-out trajectories")
    ev.add_argument("checkpoint")
    ev.add_argument("--dataset", help="default: the one the checkpoint was trained on")
    ev.add_argument("--split", default="held_out", choices=["held_out", "train"])
    ev.set_defaults(func=cmd_eval)

    ren = sub.add_parser("render", help="world + camera path -> PNG frames, contact sheet, MP4")
    ren.add_argument("world")
    ren.add_argument("--path", default="fly", help="'fly', 'lyra:0'..'lyra:5', or a JSON camera file")
    ren.add_argument("--frames", type=int, default=48)
    ren.add_argument("--width", type=int, default=320)
    ren.add_argument("--height", type=int, default=240)
    ren.add_argument("--fov", type=float, help="horizontal FOV (default: the generating camera's)")
    ren.add_argument("--backend", default="auto", choices=["auto", "cpu", "gsplat"])
    ren.add_argument("--depth", action="store_true", help="also write depth previews")
    ren.add_argument("--no-mp4", action="store_true")
    ren.add_argument("-o", "--out", default="out/render")
    ren.set_defaults(func=cmd_render)

    inf = sub.add_parser("info", help="print a world summary")
    inf.add_argument("world")
    inf.set_defaults(func=cmd_info)

    demo = sub.add_parser("demo", help="generate a world from the bundled example and fly through it")
    demo.add_argument("--out", default="out")
    demo.add_argument("--frames", type=int, default=36)
    demo.add_argument("--example-dir", default=str(EXAMPLE_DIR))
    demo.add_argument("--steps", type=int, default=60, help="steps of the scripted robot episode")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (LyraSimError, OSError, ValueError) as exc:
        print(f"lyra-sim {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
