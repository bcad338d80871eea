"""Two independent pieces of CPU inference side by side, each on its half of torch's intra-op threads.

The Mamba-2 mixer's two scan directions share nothing but their input. Run one after the other, each of their
~170 small operations (per-chunk matmuls of a few hundred microseconds, elementwise updates) is split over all
threads and ends in a barrier; on a machine shared with other work every barrier waits for the slowest thread,
which may not be running at all. Run side by side on one thread each, the directions never wait for each other
until both are done.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import wait
from typing import TypeVar

import torch

from lyra_sim.thread_pools import ProcessThreadPool

T = TypeVar("T")
U = TypeVar("U")


#: The second direction's thread (one per process: a forked child makes its own).
_SECOND = ProcessThreadPool(lambda: 1, "lyra-side-by-side")


def side_by_side(first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
    """``(first(), second())``, computed concurrently: ``first`` on the calling thread, ``second`` on a worker
    thread under the caller's grad and inference modes, each with half of ``torch.get_num_threads()``. With
    fewer than two threads the calls run one after the other on the calling thread. (The calling thread keeps
    its own allocations in the main heap arena, which ``cpu_memory.retained_heap`` retains; the worker's arena
    is glibc's per-thread one.) Concurrent callers share the one worker, so their second calls queue."""
    threads = torch.get_num_threads()
    if threads < 2:
        return first(), second()
    share = threads // 2
    grad, inference = torch.is_grad_enabled(), torch.is_inference_mode_enabled()

    def run_second() -> U:
        torch.get_num_threads()  # a new thread first takes the process default; then it takes its share
        torch.set_num_threads(threads - share)
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return second()

    torch.set_num_threads(share)
    try:
        future = _SECOND.get().submit(run_second)
        try:
            first_result = first()
        finally:
            wait([future])  # also when first() raised: the worker is done before the threads are given back
        return first_result, future.result()
    finally:
        # Also gives back the process-wide default that the worker's set_num_threads changed.
        torch.set_num_threads(threads)
