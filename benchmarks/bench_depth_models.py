"""Depth models by id: what finding a model costs, and how long each failure takes to become its one line.

Uses the tiny random models of ``lyra_sim.synthetic.tiny_depth_models`` in a temporary Hugging Face cache (no
download, HF_HUB_OFFLINE=1 except for the two unreachable-Hub cases, which use sockets on 127.0.0.1). Timings are
interleaved rounds in one run; the model's own compute is not measured (tiny random weights), only lyra_sim's
path around it. Writes the "Depth models" section of RESULTS.md.
"""

from __future__ import annotations

import os
import socket
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

CACHE = Path(tempfile.mkdtemp(prefix="lyra_bench_hf_")) / "hub"
os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(CACHE))  # before huggingface_hub is imported
os.environ.pop("LYRA_SIM_DEPTH_MODEL", None)

import numpy as np  # noqa: E402
from results import write_section  # noqa: E402

import lyra_sim  # noqa: E402
import lyra_sim.single_view.depth_models as depth_models  # noqa: E402
from lyra_sim.single_view.depth_models import DepthModelError, resolve_depth_model  # noqa: E402
from lyra_sim.synthetic.tiny_depth_models import cache_snapshot, save_depth_anything  # noqa: E402

MODEL_ID = "depth-anything/Depth-Anything-V2-Metric-Indoor-Small-hf"
ROUNDS = 5
SIZE = (120, 160)


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fails(name: str) -> None:
    try:
        resolve_depth_model(name)
    except DepthModelError:
        return
    raise AssertionError(f"{name} was expected to fail")


def _unreachable(kind: str) -> float:
    """Seconds until the one-line error when the Hub at 127.0.0.1 refuses connections or never answers."""
    from huggingface_hub import constants

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    if kind == "silent":
        listener.listen(8)
    else:
        listener.close()
    saved = constants.HF_HUB_OFFLINE, constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE
    constants.HF_HUB_OFFLINE, constants.ENDPOINT = False, f"http://127.0.0.1:{port}"
    constants.HUGGINGFACE_CO_URL_TEMPLATE = f"http://127.0.0.1:{port}/{{repo_id}}/resolve/{{revision}}/{{filename}}"
    try:
        return _seconds(lambda: _fails("someone/not-cached-hf"))
    finally:
        constants.HF_HUB_OFFLINE, constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE = saved
        listener.close()


def main() -> None:
    folder = save_depth_anything(CACHE.parent / "metric", metric=True)
    cache_snapshot(CACHE, MODEL_ID, folder)
    rgb = np.random.default_rng(0).random((*SIZE, 3)).astype(np.float32)
    lyra_sim.generate_world(rgb, depth_model=MODEL_ID, complete=False)  # warm: imports, model load (cached)
    times: dict[str, list[float]] = {k: [] for k in ("by id", "by dir", "offline missing", "prior", "model")}
    for _ in range(ROUNDS):
        times["by id"].append(_seconds(lambda: resolve_depth_model(MODEL_ID)))
        times["by dir"].append(_seconds(lambda: resolve_depth_model(folder)))
        times["offline missing"].append(_seconds(lambda: _fails("someone/not-cached-hf")))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            times["prior"].append(_seconds(lambda: lyra_sim.generate_world(rgb, complete=False)))
        times["model"].append(_seconds(lambda: lyra_sim.generate_world(rgb, depth_model=MODEL_ID, complete=False)))
    med = {k: statistics.median(v) for k, v in times.items()}
    refused = _unreachable("refused")
    silent = _unreachable("silent")
    load = os.getloadavg()
    rows = [
        ("find a cached model by id (snapshot lookup, config check)", f"{med['by id'] * 1e3:.1f} ms"),
        ("find a model by local directory", f"{med['by dir'] * 1e3:.1f} ms"),
        ("offline, model not cached: the one-line error", f"{med['offline missing'] * 1e3:.1f} ms"),
        (f"generate_world {SIZE[1]}x{SIZE[0]}, no completion: flat prior", f"{med['prior']:.2f} s"),
        ("  same, tiny metric Depth Anything by id (loaded once per process)",
         f"{med['model']:.2f} s ({med['model'] / med['prior']:.2f}x the prior)"),
        ("Hub refuses connections: the one-line error", f"{refused:.2f} s"),
        (f"Hub accepts and never answers (timeout {depth_models.HUB_TIMEOUT_S:g} s per request)",
         f"{silent:.1f} s"),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    body = "\n".join([
        f"Medians of {ROUNDS} interleaved rounds, one run; load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        f"on {os.cpu_count()} cores ({sys.platform}). Tiny random models (lyra_sim.synthetic.tiny_depth_models) in "
        "a temporary Hugging Face cache with HF_HUB_OFFLINE=1; the unreachable Hub is a socket on 127.0.0.1. "
        "A real model's inference time is not measured here (no weights on this machine).",
        "",
        "| what | time |",
        "| --- | --- |",
        *[f"| {label.strip()} | {value} |" for label, value in rows],
        "",
        "The silent-Hub time is one model_info request with lyra_sim's timeout (huggingface_hub's agent-registry "
        "probe may add its own 3 s). huggingface_hub's metadata requests inside snapshot_download pass "
        "timeout=None (read in its source); lyra_sim fills in HUB_TIMEOUT_S for any request without one.",
    ])
    print(f"wrote {write_section('Depth models: finding a model and failing in one line', body)}")


if __name__ == "__main__":
    main()
