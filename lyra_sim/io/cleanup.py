"""Temporary outputs that are removed when the process is terminated, not only when an exception unwinds.

``with atomic_path(...)`` and the USD exporter's temporary folders clean up in ``finally`` blocks, which
run on errors and on Ctrl-C (KeyboardInterrupt) but not on SIGTERM: Python's default action for SIGTERM
ends the process at once. While any temporary path is registered here, a SIGTERM handler removes them,
then hands the signal on (to the handler that was installed before, or to the default action, so the
process still ends with "terminated by SIGTERM").

SIGKILL (and power loss) leave temporaries behind that no handler can remove. Their names carry the
writing process's id (:func:`temporary_prefix`); :func:`remove_stale` removes those of one output whose
writer no longer runs, and the atomic writers call it before each write of that output.
"""

from __future__ import annotations

import contextlib
import os
import re
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


def temporary_prefix(target: Path) -> str:
    """Name prefix of a temporary of ``target`` written by this process: ``.<name>.<pid>.``."""
    return f".{target.name}.{os.getpid()}."


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def remove_stale(target: str | os.PathLike, suffix: str) -> list[Path]:
    """Remove temporaries of ``target`` (``.<name>.<pid>.<random><suffix>`` beside it) whose writing process has
    ended, e.g. killed with SIGKILL; temporaries of running writers and of other outputs are left alone."""
    target = Path(target)
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[a-z0-9_]+" + re.escape(suffix))
    removed = []
    with contextlib.suppress(OSError):
        for entry in target.parent.iterdir():
            match = pattern.fullmatch(entry.name)
            if match and int(match.group(1)) != os.getpid() and not _running(int(match.group(1))):
                _remove(entry)
                removed.append(entry)
    return removed
