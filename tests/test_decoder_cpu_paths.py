"""Issue 26's CPU inference paths of the decoder against the exact ones: the SSD scan's per-chunk oneDNN matmuls
(against the float64 recurrence, the autograd path and issue 13's version), ``matmul_transposed`` against
``a @ b.T``, ``retained_heap`` (page faults and memory handed back, observed through the kernel's counters), and the
mixer's directions side by side (against the directions in turn; threads and modes of ``side_by_side``)."""

import json
import os
import subprocess
import sys
import threading
from unittest import mock

import pytest
import torch
from previous_ssd_scan_blocked import ssd_scan as blocked_scan
from test_mamba2 import recurrence

from lyra_sim.lyra import cpu_linear, cpu_memory, cpu_threads, mamba2
from lyra_sim.lyra.mamba2 import CPU_CHUNK_SIZE, BidirectionalMamba2, ssd_scan


def _official_scan_inputs(length: int, decay_scale: float, batch: int = 1, groups: int = 1, seed: int = 0):
    """Lyra's scan shapes (16 heads x 64, state 256) with dt like the trained model's range."""
    g = torch.Generator().manual_seed(seed)
    heads = 16
    return (torch.randn(batch, length, heads, 64, generator=g),
            torch.rand(batch, length, heads, generator=g) * 0.1,
            -(torch.rand(heads, generator=g) * 15 + 1) * decay_scale,
            torch.randn(batch, length, groups, 256, generator=g),
            torch.randn(batch, length, groups, 256, generator=g))


# decay_scale 1: factorised intra-chunk decay; 40: log decays beyond FACTORISED_DECAY_LIMIT, per-head matrices.
# Tolerances against the float64 recurrence: measured 1.6e-5, 2.5e-4 and 1.5e-5 (outputs up to 13-18), the same
# for the autograd path and issue 13's version (float32 cumulative log decays); 2x margin.
@pytest.mark.parametrize(("decay_scale", "batch", "groups", "y_tol", "state_tol"),
                         [(1.0, 1, 1, 3e-5, 1e-6), (40.0, 1, 1, 5e-4, 1e-5), (1.0, 2, 2, 3e-5, 1.5e-6)])
def test_inference_scan_equals_recurrence_and_autograd_path(decay_scale, batch, groups, y_tol, state_tol):
    inputs = _official_scan_inputs(200, decay_scale, batch, groups)  # 200: a partial last chunk
    initial = torch.randn(batch, 16, 64, 256, generator=torch.Generator().manual_seed(1)) * 0.1
    y_ref, state_ref = recurrence(*inputs, initial_state=initial)
    with torch.inference_mode():
        y, state = ssd_scan(*inputs, CPU_CHUNK_SIZE, initial_state=initial)
        y_blocked, _ = blocked_scan(*inputs, CPU_CHUNK_SIZE, initial_state=initial)
    leaf = inputs[0].clone().requires_grad_()
    y_grad, state_grad = ssd_scan(leaf, *inputs[1:], CPU_CHUNK_SIZE, initial_state=initial)
    assert (y.double() - y_ref).abs().max().item() <= y_tol
    assert (state.double() - state_ref).abs().max().item() <= state_tol
    for other in (y_grad.detach(), y_blocked):  # same float32 inputs: only the summation order differs
        assert (y - other).abs().max().item() <= 2e-5  # measured up to 5.7e-6
    assert (state - state_grad.detach()).abs().max().item() <= 1e-6


def test_matmul_transposed_equals_matmul_and_keeps_autograd():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(70, 300, generator=g)[:, 20:276]  # strided, like the scan's chunk views
    b = torch.randn(256, 90, generator=g).T[:, :256]  # (90, 256) transposed view
    with torch.inference_mode():
        fast = cpu_linear.matmul_transposed(a, b)
    exact = (a.double() @ b.double().T).float()
    assert (fast - exact).abs().max().item() <= 1e-4  # sums of 256 products of ~N(0, 1): values up to ~50
    leaf = a.clone().requires_grad_()
    out = cpu_linear.matmul_transposed(leaf, b)
    out.sum().backward()
    torch.testing.assert_close(leaf.grad, b.sum(0).expand_as(a))


#: Run in a fresh interpreter: what malloc does with a request depends on the heap's history. Four official-width
#: Mamba blocks over 1,320 tokens (6 views of one latent frame), without the retained heap, then with it; the page
#: faults of blocks 2-4 are counted through encode's progress hook (block 1 may fault in what the others reuse).
_HEAP_PROBE = """
import json, resource
from contextlib import nullcontext
from unittest import mock
import torch
from lyra_sim.lyra import LyraDecoder, LyraDecoderConfig, decoder

def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

def resident():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()

class FaultsPerBlock:
    def __init__(self):
        self.marks = []
    def update(self, n):
        self.marks.append(faults())

torch.manual_seed(0)
model = LyraDecoder(LyraDecoderConfig(depth=4)).eval()
latents, plucker = torch.randn(1, 6, 16, 1, 22, 40), torch.randn(1, 6, 32, 1, 22, 40)
result = {}
with torch.inference_mode():
    for name in ("plain", "retained"):
        with mock.patch.object(decoder, "retained_heap", nullcontext) if name == "plain" else nullcontext():
            first = model.encode(latents, plucker)[0]  # warms up
            counter = FaultsPerBlock()
            again = model.encode(latents, plucker, progress=counter)[0]
        result[name] = counter.marks[-1] - counter.marks[0]
        result[name + "_equal"] = bool(torch.equal(first, again))
    with decoder.retained_heap():
        big = torch.ones(32 << 20)  # 128 MiB from the heap
        del big
        held = resident()
    result["handed_back"] = held - resident()
print(json.dumps(result))
"""


@pytest.mark.skipif(not cpu_memory.heap_retention_available(), reason="needs glibc's malloc")
def test_retained_heap_spares_the_blocks_page_faults_and_hands_memory_back():
    run = subprocess.run([sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["plain_equal"] and result["retained_equal"]
    assert result["retained"] < result["plain"] / 5, result  # measured 1,340 vs 40,100
    assert result["handed_back"] > 100 << 20, result  # malloc_trim gave the freed 128 MiB back


def test_side_by_side_splits_the_threads_keeps_the_modes_and_gives_the_threads_back():
    threads = torch.get_num_threads()
    seen = {}

    def record(name):
        def call():
            seen[name] = (threading.current_thread().name, torch.get_num_threads(),
                          torch.is_inference_mode_enabled(), torch.is_grad_enabled())
            return name
        return call

    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            assert cpu_threads.side_by_side(record("first"), record("second")) == ("first", "second")
        assert seen["first"] == (threading.current_thread().name, 1, True, False)
        assert seen["second"][0].startswith("lyra-side-by-side") and seen["second"][1:] == (1, True, False)
        assert torch.get_num_threads() == 2
        started = []
        later = threading.Thread(target=lambda: started.append(torch.get_num_threads()))
        later.start()
        later.join()
        assert started == [2]  # the process-wide default that new threads take is back too
        with pytest.raises(ZeroDivisionError):
            cpu_threads.side_by_side(lambda: 1 / 0, record("second"))
        assert torch.get_num_threads() == 2
        torch.set_num_threads(1)
        cpu_threads.side_by_side(record("first"), record("second"))
        assert seen["second"][0] == threading.current_thread().name  # one thread: one after the other
    finally:
        torch.set_num_threads(threads)


def test_mixer_with_directions_side_by_side_equals_directions_in_turn():
    torch.manual_seed(0)
    mixer = BidirectionalMamba2(512, 256, 64).eval()  # Lyra's mixer
    with torch.no_grad():
        for scan in mixer.mamba_scans:
            scan.norm.weight.uniform_(0.5, 1.5)
    hidden = torch.randn(1, 300, 512)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with torch.inference_mode():
            together = mixer(hidden, use_kernel=False)
            with mock.patch.object(mamba2, "side_by_side", lambda first, second: (first(), second())):
                in_turn = mixer(hidden, use_kernel=False)
    finally:
        torch.set_num_threads(threads)
    assert (together - in_turn).abs().max().item() <= 1e-5  # measured 0 (outputs up to 4): same kernels, per thread
