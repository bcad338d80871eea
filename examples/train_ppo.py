"""Train stable-baselines3 PPO on LyraSim/Navigate-v0 in the bundled tabletop world (a few minutes on a CPU).

    pip install 'lyra-sim[rl]'                 # stable-baselines3 (an optional extra)
    python examples/train_ppo.py               # 2,048 steps, prints steps/s and the policy's mean return
    python examples/train_ppo.py --steps 100000 --out ppo_navigate.zip

The observation is the env's Dict: ``rgb`` and ``depth`` are uint8 images (``depth_format="uint8"``: steps of
``max_depth / 255`` metres), so SB3's ``MultiInputPolicy`` gives each its own CNN; ``state`` and ``goal`` go
through an MLP. ``--write-results`` records the run in benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import make_env, prepare_scene
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb

IMAGE_SIZE = (64, 48)  # NatureCNN (SB3's image extractor) needs at least 36 x 36


def example_scene():
    """The bundled RGB-D example, prepared once and shared by every env copy."""
    rgb = load_rgb(EXAMPLE_DIR / "tabletop_rgb.png")
    depth = load_depth(EXAMPLE_DIR / "tabletop_depth.png", rgb.shape[:2])
    K = load_intrinsics(EXAMPLE_DIR / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
    return prepare_scene((rgb, depth), intrinsics=K, progress=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2048, help="environment steps to train (default 2048)")
    parser.add_argument("--envs", type=int, default=2, help="env copies in SB3's DummyVecEnv (default 2)")
    parser.add_argument("--out", type=Path, help="save the trained policy here (.zip)")
    parser.add_argument("--write-results", action="store_true", help="write the run's figures to RESULTS.md")
    args = parser.parse_args()
    try:
        from stable_baselines3 import PPO
        from stable_baselines3.common.env_checker import check_env
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv
    except ImportError:
        sys.exit("train_ppo: needs stable-baselines3: pip install 'lyra-sim[rl]'")

    t0 = time.perf_counter()
    scene = example_scene()
    print(f"prepared the world in {time.perf_counter() - t0:.1f} s")
    options = {"image_size": IMAGE_SIZE, "depth_format": "uint8", "max_episode_steps": 100}
    check_env(make_env(scene, **options).unwrapped)  # SB3's own checks: image spaces, bounds, dtypes
    vec = DummyVecEnv([lambda: Monitor(make_env(scene, **options))] * args.envs)  # Monitor: episode returns
    n_steps = max(64, min(512, args.steps // args.envs))
    model = PPO("MultiInputPolicy", vec, n_steps=n_steps, batch_size=64, n_epochs=4, seed=0, verbose=0)
    t0 = time.perf_counter()
    model.learn(total_timesteps=args.steps, progress_bar=False)
    seconds = time.perf_counter() - t0
    rate = model.num_timesteps / seconds
    returns = [info["r"] for info in model.ep_info_buffer]
    mean_return = float(np.mean(returns)) if returns else float("nan")
    print(f"trained {model.num_timesteps:,} steps in {seconds:.1f} s: {rate:.1f} steps/s including PPO updates "
          f"({args.envs} envs, {IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} camera); "
          f"{len(returns)} episodes, mean return {mean_return:.2f}")
    if args.out:
        model.save(args.out)
        print(f"wrote {args.out}")
    vec.close()
    if args.write_results:
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
        from results import write_section

        load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
        path = write_section("PPO on Navigate-v0 (examples/train_ppo.py)", f"""Measured by `python examples/train_ppo.py
--steps {args.steps} --envs {args.envs}` on {platform.machine()}, {torch.get_num_threads()} torch threads, load average
{load} (a machine shared with other jobs): stable-baselines3 PPO, `MultiInputPolicy` (a NatureCNN each for the
uint8 rgb and depth images, an MLP for state and goal), {args.envs} envs in a DummyVecEnv,
{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} camera, n_steps {n_steps}, 4 epochs of batch 64.

| steps | seconds | steps/s (including updates) | episodes | mean return |
| --- | --- | --- | --- | --- |
| {model.num_timesteps:,} | {seconds:.1f} | {rate:.1f} | {len(returns)} | {mean_return:.2f} |""")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
