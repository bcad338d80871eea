"""Process-wide worker threads that survive ``fork``: the renderer's pool, the vector env's render worker and the
decoder's second scan direction each use one.

A forked child has none of its parent's threads (and may inherit a lock another thread held), so every pool is
forgotten in the child and made again on first use there.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_pools: list[ProcessThreadPool] = []


class ProcessThreadPool:
    """A ``ThreadPoolExecutor`` made on first use, one per process; ``workers`` is called then for its size."""

    def __init__(self, workers: Callable[[], int], name: str):
        self._workers, self._name = workers, name
        self._forget()
        _pools.append(self)

    def _forget(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self) -> ThreadPoolExecutor:
        """This process's executor."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max(1, self._workers()), thread_name_prefix=self._name)
            return self._pool


def _forget_all() -> None:
    for pool in _pools:
        pool._forget()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_all)
