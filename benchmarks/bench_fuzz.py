"""Mutation fuzzing of every file reader at scale (tests/fuzzing.py): failures, worst time, peak memory.

    python benchmarks/bench_fuzz.py                 # ~5,300 cases, writes its section of benchmarks/RESULTS.md
    python benchmarks/bench_fuzz.py --scale 0.1     # a quick look

A failure is any exception other than a LyraSimError naming the file, a worker crash, a case over
its time limit, memory past the worker's address-space limit, or a capture folder naming a file outside itself
that loads ("escaped") or whose error echoes that file ("leaked"). Peak memory is the growth of the
worker's resident-set high-water mark during one case (VmHWM, reset before each case).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from results import write_section
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import fuzzing  # lives with the tests

CASES = {"ply": 800, "native": 500, "usd": 600, "image": 500, "depth": 400, "intrinsics": 250, "camera_path": 250,
         "latent": 400, "splat_formats": 700, "world_info": 400, "capture": 500}
TARGET_SECONDS, TARGET_BYTES = 2.0, 500 << 20


def capture_list_costs(folder: Path) -> list[str]:
    """Seconds to pair 100,000-entry rgb.txt/depth.txt lists and to parse a 1,000,000-line TUM trajectory."""
    import numpy as np

    from lyra_sim.inputs.sequence import _tum_pairs, read_tum_trajectory

    rng = np.random.default_rng(0)
    stamps = np.cumsum(rng.uniform(0.02, 0.04, 100_000))
    for kind, jitter in (("rgb", 0.0), ("depth", 0.005)):
        (folder / f"{kind}.txt").write_text("".join(f"{t + jitter:.6f} {kind}/{i}.png\n" for i, t in enumerate(stamps)))
    start = time.perf_counter()
    pairs = _tum_pairs(folder)
    pairing = time.perf_counter() - start
    poses = folder / "groundtruth.txt"
    poses.write_text("".join(f"{i / 100:.4f} 0.1 0.2 0.3 0 0 0 1\n" for i in range(1_000_000)))
    start = time.perf_counter()
    times, _ = read_tum_trajectory(poses)
    parsing = time.perf_counter() - start
    return [f"Capture lists: pairing 100,000 rgb.txt entries with 100,000 depth.txt entries ({len(pairs):,} pairs): "
            f"{pairing:.2f} s (was over 30 s, quadratic); parsing a 1,000,000-line TUM trajectory ({len(times):,} "
            f"poses): {parsing:.2f} s (was over 30 s)."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every reader's case count")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    counts = {reader: max(1, round(n * args.scale)) for reader, n in CASES.items()}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cases = fuzzing.make_cases(Path(tmp), counts, seed=args.seed)
        with tqdm(total=len(cases), desc="fuzzing", unit="case") as progress:
            reports = fuzzing.run_cases(cases, progress=progress)
    minutes = (time.perf_counter() - start) / 60
    with tempfile.TemporaryDirectory() as tmp:
        lists = capture_list_costs(Path(tmp))
    rows = ["| reader | cases | refused (named LyraSimError) | loaded | failures by kind | worst time, file < 1 MB | "
            "worst peak memory, file < 1 MB | slowest case |", "|---|---|---|---|---|---|---|---|"]
    failures = []
    for reader, report in reports.items():
        refused, loaded = report.outcomes.get("clean", 0), report.outcomes.get("ok", 0)
        kinds = {}
        for f in report.failures:
            kinds[f["outcome"]] = kinds.get(f["outcome"], 0) + 1
        by_kind = ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())) or "0"
        rows.append(f"| {reader} | {report.cases} | {refused} | {loaded} | {by_kind} "
                    f"| {report.worst_seconds:.3f} s | {report.worst_peak_bytes / 2**20:.0f} MB "
                    f"| `{report.worst_case}` |")
        failures += [f"- {reader}: {f['outcome']} {f['error']} after `{f['mutation']}`: {f['message'][:200]}"
                     for f in report.failures]
    worst_s = max(r.worst_seconds for r in reports.values())
    worst_b = max(r.worst_peak_bytes for r in reports.values())
    total = sum(r.cases for r in reports.values())
    body = "\n".join([
        f"{datetime.date.today()}, {platform.processor() or platform.machine()}, load average "
        f"{os.getloadavg()[0]:.1f}, seed {args.seed}: {total} mutated files in {minutes:.1f} min (one worker "
        f"subprocess, per-case limit {fuzzing.CASE_TIMEOUT_S:.0f} s, "
        f"address space +{fuzzing.MEMORY_HEADROOM >> 30} GiB over the worker's own).", "",
        *rows, "",
        f"Failures: {sum(len(r.failures) for r in reports.values())} (target 0). Worst time for a file under 1 MB: "
        f"{worst_s:.2f} s (target < {TARGET_SECONDS:.0f} s); worst peak memory: {worst_b / 2**20:.0f} MB "
        f"(target < {TARGET_BYTES >> 20} MB).", "", *lists,
        *(["", "Failing cases:", *failures[:40]] if failures else []),
        "", "Mutations: byte flips/inserts/deletes/truncation, PLY header counts and types, `comment end_header`, "
        "huge unused list elements, extra ASCII rows; PNG IHDR sizes/bit depths with valid CRCs and zlib bombs; "
        ".npy shapes and dtypes; JSON numbers, types, sizes and 5,000-200,000-deep nesting; pickles inside torch "
        "zips (BININT operands); safetensors header numbers, dtypes (F8, BOOL, ...) and metadata; USD numbers, "
        "external references/payloads/sublayers, doubling-reference bombs, timeCodesPerSecond 0, projective "
        "transforms, binary .usdz; SPZ v3 header counts/versions, trailing data (also after a zero count), v4 "
        "stream tables, corrupt zstd streams and zstd bombs; .splat partial records, NaN, zero quaternions; world info "
        "(PLY comments, compressed PLY, native metadata): image_size/intrinsics of wrong type, zero, infinite, 8K, "
        "meters_per_unit 'abc', non-finite times; capture folders (TUM and plain): ../ and absolute list entries, "
        "symlinked frames, folders, intrinsics and list files (to /etc/passwd), /proc links, symlink loops, binary "
        "lists, all-invalid depth, hostile depth_scale, pose rows ({}, NaN, bottom row, duplicate stamps), "
        "100,000-300,000-line lists, one frame without poses, byte and number mutations of every text file.",
    ])
    print(body)
    print(f"wrote {write_section('Hostile inputs: mutation fuzzing (bench_fuzz.py)', body)}")


if __name__ == "__main__":
    main()
