"""First use in a fresh environment: what a user waits for before the first picture and the first env step.

Each figure runs in a new Python process whose numba cache (NUMBA_CACHE_DIR) is an empty folder, as in a fresh
install without the Makefile's compile step (a wheel has no install hook):
- first ``lyra_sim.render`` (320x240, an analytic room of surfels; timed from the call, the world already made);
- ``python -m lyra_sim.rendering.warmup`` (what ``make`` runs after installing);
- first ``make_env`` on the bundled RGB-D example with its reset and first step (timed from the call);
- the same ``make_env`` again in a new process with the cache that run left (a warm environment).
Wall seconds of the timed call and of the whole process (imports included), and CPU seconds of the whole process
with the compile workers it started.

``--baseline DIR`` runs every figure also with ``DIR`` (another checkout of lyra_sim) first on PYTHONPATH, the two
interleaved figure by figure, so the ratios come from one run at one load. Writes the "First use" section of
benchmarks/RESULTS.md.

    python benchmarks/bench_first_use.py [--baseline /path/to/older/checkout] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results import write_section

ROOT = Path(__file__).resolve().parents[1]

FIRST_RENDER = """
import time, torch
import lyra_sim
from lyra_sim.synthetic.gaussian_rooms import room_surfaces, surfels_world
world = surfels_world(room_surfaces(), spacing=0.05)
camera = lyra_sim.Camera.look_at([0.3, 0, 1.3], [3, 0, 0.4], up=(0, 0, 1), width=320, height=240)
t = time.perf_counter()
with torch.no_grad():
    lyra_sim.render(world, camera, backend="cpu")
print("TIMED", time.perf_counter() - t)
"""
WARMUP = """
import runpy, sys, time
t = time.perf_counter()
sys.argv = ["warmup"]
runpy.run_module("lyra_sim.rendering.warmup", run_name="__main__")
print("TIMED", time.perf_counter() - t)
"""
MAKE_ENV = """
import time, numpy as np
from lyra_sim.demo import EXAMPLE_DIR
from lyra_sim.envs import make_env
from lyra_sim.inputs.images import load_depth, load_intrinsics, load_rgb
rgb = load_rgb(EXAMPLE_DIR / "tabletop_rgb.png")
depth = load_depth(EXAMPLE_DIR / "tabletop_depth.png", rgb.shape[:2])
K = load_intrinsics(EXAMPLE_DIR / "tabletop_intrinsics.json", rgb.shape[1], rgb.shape[0])
t = time.perf_counter()
env = make_env((rgb, depth), intrinsics=K, image_size=(64, 48))
env.reset(seed=0)
env.step(np.zeros(2))
print("TIMED", time.perf_counter() - t)
"""
#: (name, code, whether the numba cache starts empty); the warm make_env reuses the cache the cold one left.
FIGURES = (("first render", FIRST_RENDER, True), ("warmup (make's install step)", WARMUP, True),
           ("first make_env", MAKE_ENV, True), ("warm make_env", MAKE_ENV, False))


def run_figure(code: str, checkout: Path, cache: str) -> tuple[float, float, float]:
    """(timed wall s, process wall s, process CPU s with its children) of ``code`` run from ``checkout``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(checkout)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=checkout, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode:
        raise RuntimeError(f"figure failed in {checkout}:\n{out.stderr[-2000:]}")
    timed = float(next(line for line in out.stdout.splitlines() if line.startswith("TIMED")).split()[1])
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return timed, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", type=Path, help="another lyra_sim checkout to interleave with")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    checkouts = {"this revision": ROOT}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    results: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    loads: list[float] = []  # the 1-minute load average after each figure
    with tempfile.TemporaryDirectory() as caches:
        for _ in range(args.repeats):
            for name, code, cold in FIGURES:
                for label, checkout in checkouts.items():  # interleaved: each figure for every checkout in turn
                    cache = Path(caches) / label.replace(" ", "_")  # one numba cache per checkout
                    if cold:  # every cold figure starts from an empty cache
                        shutil.rmtree(cache, ignore_errors=True)
                    cache.mkdir(exist_ok=True)
                    figure = run_figure(code, checkout, str(cache))
                    results.setdefault((label, name), []).append(figure)
                    loads.append(os.getloadavg()[0])
                    print(f"{label:14s} {name:30s} {figure[0]:6.1f} s timed, {figure[1]:6.1f} s process wall, "
                          f"{figure[2]:6.1f} s CPU, load {os.getloadavg()[0]:.1f}", flush=True)

    def cell(label: str, name: str) -> str:
        runs = results[(label, name)]
        timed, wall, cpu = (statistics.median(r[i] for r in runs) for i in range(3))
        return f"{timed:.1f} / {wall:.1f} / {cpu:.1f}"

    header = "| figure | " + " | ".join(f"{label}: timed / process wall / CPU s" for label in checkouts)
    lines = [header + (" | this / baseline (timed) |" if args.baseline else " |"),
             "|---" * (len(checkouts) + 1 + bool(args.baseline)) + "|"]
    for name, _, _ in FIGURES:
        row = f"| {name} | " + " | ".join(cell(label, name) for label in checkouts)
        if args.baseline:
            ratio = (statistics.median(r[0] for r in results[("this revision", name)])
                     / statistics.median(r[0] for r in results[("baseline", name)]))
            row += f" | {ratio:.2f}"
        lines.append(row + " |")
    baseline = f", interleaved with the baseline checkout {args.baseline.name}" if args.baseline else ""
    body = (f"Measured {time.strftime('%Y-%m-%d')} by `python benchmarks/bench_first_use.py`{baseline}; "
            f"{args.repeats} run(s) per figure (medians), each in a new process with an empty numba cache "
            "(the warm make_env: the cache the cold one left); 1-minute load average "
            f"{min(loads):.1f}-{max(loads):.1f} after the figures, on {os.cpu_count()} CPUs. Targets: first render "
            "<= 5 s, first make_env <= 15 s (timed from the call).\n\n"
            + "\n".join(lines))
    write_section("First use in a fresh environment (bench_first_use.py)", body)
    print(body)


if __name__ == "__main__":
    main()
