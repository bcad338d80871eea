"""Self-distillation on this CPU: data-engine time per scene and training time per step (pixel latents).

    python benchmarks/bench_train.py            # writes its section of benchmarks/RESULTS.md
"""

from __future__ import annotations

import datetime
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import write_section

from lyra_sim.train.data_engine import make_dataset
from lyra_sim.train.loop import Stage, TrainConfig, Trainer

SCENES, STEPS = 6, 30


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        make_dataset(Path(tmp) / "data", num_scenes=SCENES, held_out=1, progress=False)
        per_scene = (time.perf_counter() - t0) / SCENES
        config = TrainConfig(dataset=str(Path(tmp) / "data"), output=str(Path(tmp) / "run"), width=64, depth=4,
                             lr=3e-3, warmup_steps=5, log_every=1000, checkpoint_every=10_000,
                             stages=[Stage("all views", STEPS + 2, views=(6, 6), frames_per_view=3)])
        trainer = Trainer(config)
        trainer.train(steps=2, progress=False)  # warm-up (numba, allocator)
        t0 = time.perf_counter()
        history = trainer.train(steps=STEPS, progress=False)
        per_step = (time.perf_counter() - t0) / STEPS
        params = sum(p.numel() for p in trainer.model.parameters())
        first, last = np.mean([r["total"] for r in history[:5]]), np.mean([r["total"] for r in history[-5:]])
        metrics = trainer.evaluate()
    print(f"data engine {per_scene:.2f} s/scene; training {1000 * per_step:.0f} ms/step; "
          f"loss {first:.3f} -> {last:.3f}")
    lines = [
        f"Measured {datetime.date.today()} on {platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} torch threads, by `python benchmarks/bench_train.py`.",
        "",
        f"- Data engine: {per_scene:.2f} s per scene (PyBullet 64x48 RGB-D, 3D-cache teacher, 6 trajectories x 9 "
        "frames, safetensors shard).",
        f"- Training, pixel latents, decoder width 64 x 4 blocks ({params:,} parameters), 6 trajectories fused, "
        f"3 supervised frames each: {1000 * per_step:.0f} ms per step (mean of {STEPS}); loss "
        f"{first:.3f} -> {last:.3f} (first vs last 5 steps); held-out PSNR {metrics['psnr']:.1f} dB, "
        f"SSIM {metrics['ssim']:.3f} after {STEPS + 2} steps.",
    ]
    write_section("Self-distillation, CPU", "\n".join(lines))
    print("wrote benchmarks/RESULTS.md")


if __name__ == "__main__":
    main()
