"""Keep freed memory in the process heap while the decoder runs on a CPU (glibc only).

Each decoder block allocates and frees some 100 MB of temporaries (projections, conv outputs, scan buffers).
glibc's malloc serves allocations above its mmap threshold with fresh mappings and returns the top of the heap
to the system once more than its trim threshold is free, so every block faults its pages in again: 180,000-400,000
page faults per official 6-view forward (about 50,000 with this), 10-20 % of its CPU time on the 2-core VM the
decoder was tuned on.
Inside ``retained_heap()`` freed memory stays in the heap for the next block; on leaving, ``malloc_trim`` gives
it back, so the process does not keep the forward's peak. PyTorch's CPU tuning guide reaches the same end by
preloading jemalloc or tcmalloc; this needs no change to how the program is started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Inside: allocations up to this size come from the heap, and the heap is not trimmed below this much free space.
RETAIN_MMAP_THRESHOLD = 256 << 20
RETAIN_TRIM_THRESHOLD = 1 << 30
#: On leaving: glibc's own ceilings for its dynamic thresholds (32 MiB mmap, twice that trim), the values a
#: process that allocates large tensors settles at; explicit values replace the dynamic adjustment for good.
RESTORE_MMAP_THRESHOLD = 32 << 20
RESTORE_TRIM_THRESHOLD = 64 << 20

_lock = threading.Lock()
_depth = 0


@cache
def _glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc (mallopt and malloc_trim), else None."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
        libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    except (OSError, AttributeError):
        return None
    return libc


def heap_retention_available() -> bool:
    """True where ``retained_heap`` changes anything (Linux with glibc)."""
    return _glibc() is not None


@contextmanager
def retained_heap() -> Iterator[None]:
    """Within the block, freed memory is reused instead of returned to the system; nested and threaded uses
    share one setting, applied by the first to enter and undone (with ``malloc_trim``) by the last to leave."""
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, RETAIN_MMAP_THRESHOLD)
            libc.mallopt(_M_TRIM_THRESHOLD, RETAIN_TRIM_THRESHOLD)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                libc.mallopt(_M_MMAP_THRESHOLD, RESTORE_MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, RESTORE_TRIM_THRESHOLD)
                libc.malloc_trim(0)
