"""Temporary outputs that are removed when the process is terminated, not only when an exception unwinds.

``with atomic_path(...)`` and the USD exporter's temporary folders clean up in ``finally`` blocks, which
run on errors and on Ctrl-C (KeyboardInterrupt) but not on SIGTERM: Python's default action for SIGTERM
ends the process at once. While any temporary path is registered here, a SIGTERM handler removes them,
then hands the signal on (to the handler that was installed before, or to the default action, so the
process still ends with "terminated by SIGTERM").
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

_pending: dict[str, Path] = {}
_lock = threading.Lock()
_previous = signal.SIG_DFL


def _remove(path: Path) -> None:
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()


def remove_pending() -> None:
    """Remove every registered temporary path now."""
    with _lock:
        paths = list(_pending.values())
        _pending.clear()
    for path in paths:
        _remove(path)


def _on_sigterm(signum: int, frame) -> None:
    remove_pending()
    previous = _previous
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install() -> None:
    """Put our handler in front of whatever handles SIGTERM now (main thread only; elsewhere it cannot)."""
    global _previous
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGTERM)
    if current is not _on_sigterm:
        _previous = current if current is not None else signal.SIG_DFL
        signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def temporary(path: str | os.PathLike) -> Iterator[Path]:
    """Register ``path`` (a temporary file or folder) for removal on SIGTERM while the block runs.

    The block itself decides what happens to the path on normal exit (rename it, or remove it).
    """
    path = Path(path)
    with _lock:
        _pending[str(path)] = path
    _install()
    try:
        yield path
    finally:
        with _lock:
            _pending.pop(str(path), None)
