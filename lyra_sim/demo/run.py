"""The demo's run: generate a world from the bundled example, save it (.ply, .safetensors), render a preview and
a fly-through, align it, build its collision proxy, export a USDZ, and drive a scripted robot to a goal in the
gymnasium env."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from lyra_sim.camera import Camera
from lyra_sim.demo.example import example_paths
from lyra_sim.demo.options import DemoOptions
from lyra_sim.generate import generate_world
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
from lyra_sim.io import save_world
from lyra_sim.rendering import render
from lyra_sim.views.media import contact_sheet, render_path, save_mp4, save_png
from lyra_sim.views.paths import camera_path, render_intrinsics, scene_depth

EPISODE_IMAGE_SIZE = (160, 120)  # the robot camera of the demo episode (width, height)
EPISODE_FPS = 10
EPISODE_SHEET_FRAMES = 12

Log = Callable[[str], None]


def scripted_action(goal: np.ndarray) -> np.ndarray:
    """The demo's controller: turn towards the goal (robot frame x forward, y left), drive when facing it.

    Returns (forward, turn) in [0, 1] x [-1, 1]: full speed when the goal is straight ahead, none when it
    is a radian or more off; the turn command saturates at half a radian.
    """
    heading = float(np.arctan2(goal[1], goal[0]))
    return np.array([np.clip(1.0 - abs(heading), 0.0, 1.0), np.clip(2.0 * heading, -1.0, 1.0)])


def run_demo(out: str | os.PathLike, frames: int = DemoOptions.frames, steps: int = DemoOptions.steps,
             example_dir: str | os.PathLike = DemoOptions.example_dir, log: Log = print) -> None:
    """Generate, save, preview and fly through the example world, then run the robot episode, all into ``out``."""
    out = Path(out)
    rgb_path, depth_path, intrinsics_path = example_paths(example_dir)
    t0 = time.perf_counter()
    world = generate_world(rgb_path, depth=depth_path, intrinsics=intrinsics_path)
    log(f"generated {len(world):,} Gaussians from {Path(example_dir)} in {time.perf_counter() - t0:.1f} s "
        f"(depth: {world.info['depth_source']}, metric: {world.info['metric']})")
    ply = save_world(world, out / "world.ply")
    native = save_world(world, out / "world.safetensors")
    log(f"wrote {ply} and {native}")

    w, h = world.generating_camera.width, world.generating_camera.height
    K = render_intrinsics(world, w, h)
    with torch.no_grad():
        preview = render(world, Camera(K, torch.eye(4), w, h))
    log(f"wrote preview {save_png(preview.rgb, out / 'preview.png')}")
    cams = camera_path("fly", K, w, h, frames, scene_depth(world))
    t0 = time.perf_counter()
    written = render_path(world, cams, out / "flythrough")
    fps = len(cams) / (time.perf_counter() - t0)
    log(f"rendered {len(cams)} fly-through frames at {fps:.1f} frames/s")
    log(f"wrote frames to {out / 'flythrough'}/, contact sheet {written['contact_sheet']}, video {written['mp4']}")
    run_demo_episode(example_dir, out, steps, log=log)


def run_demo_episode(example_dir: str | os.PathLike, out: str | os.PathLike, steps: int, log: Log = print) -> dict:
    """Align the example, build its collision proxy, export USDZ, and drive the robot to a goal.

    Returns the episode's outcome: {"steps", "return", "success", "collision"}.
    """
    from lyra_sim.envs.navigate import NavigateEnv  # lazy: gymnasium and PyBullet only for the episode
    from lyra_sim.envs.scene import prepare_scene

    out = Path(out)
    rgb_path, depth_path, intrinsics_path = example_paths(example_dir)
    rgb = load_rgb(rgb_path)
    depth = load_depth(depth_path, rgb.shape[:2])
    K = load_intrinsics(intrinsics_path, rgb.shape[1], rgb.shape[0])
    t0 = time.perf_counter()
    scene = prepare_scene((rgb, depth), intrinsics=K, progress=True)
    proxy = scene.proxies[0]
    log(f"aligned and built a {len(proxy.faces):,}-triangle collision proxy in {time.perf_counter() - t0:.1f} s "
        f"(camera {scene.world.info['alignment']['camera_height_m']:.2f} m above the floor)")
    log(f"wrote collision proxy {proxy.save(out / 'proxy.obj')}")
    log(f"wrote {save_world(scene.world, out / 'world.usdz', collision_mesh=proxy)} (Z-up, metres, collider)")
    env = NavigateEnv(scene, image_size=EPISODE_IMAGE_SIZE)  # the loop below stops after `steps`
    obs, info = env.reset(seed=0)
    frames = [obs["rgb"]]
    total, t0 = 0.0, time.perf_counter()
    for _ in tqdm(range(steps), desc="episode", unit="step"):
        obs, reward, terminated, _, info = env.step(scripted_action(obs["goal"]))
        frames.append(obs["rgb"])
        total += reward
        if terminated:
            break
    rate = (len(frames) - 1) / (time.perf_counter() - t0)
    env.close()
    outcome = "reached the goal" if info.get("success") else "collided" if info.get("collision") else "stopped"
    log(f"episode: {len(frames) - 1} steps at {rate:.0f} steps/s, {outcome}, return {total:.2f}")
    episode_dir = out / "episode"
    for i, frame in enumerate(frames):
        save_png(frame, episode_dir / f"frame_{i:03d}.png")
    sheet = save_png(contact_sheet(frames, max_frames=EPISODE_SHEET_FRAMES), episode_dir / "contact_sheet.png")
    video = save_mp4(frames, episode_dir / "episode.mp4", fps=EPISODE_FPS)
    log(f"wrote robot camera frames to {episode_dir}/, contact sheet {sheet}, video {video}")
    return {"steps": len(frames) - 1, "return": total, "success": bool(info.get("success")),
            "collision": bool(info.get("collision"))}
