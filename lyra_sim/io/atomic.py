"""Atomic file output: write to a temporary file (or folder) beside the target, then rename over it.

Temporaries are removed on errors, Ctrl-C and SIGTERM (``lyra_sim.io.cleanup``), and those a killed writer
left behind (SIGKILL) are removed by the next write of the same output; a failing write
(full disk, read-only file system, no permission) becomes one :class:`OutputError` naming the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

from lyra_sim.errors import LyraSimError
from lyra_sim.io.cleanup import remove_stale, temporary, temporary_prefix


class OutputError(LyraSimError):
    """An output file or folder could not be written (disk full, read-only, no permission, ...)."""


def _failed(target: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return OutputError(f"{target}: cannot write ({reason}); nothing was written")


def _umask() -> int:
    """The process umask, read without changing it where Linux reports it (else the set-and-restore idiom)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _final_mode(target: Path, new_mode: int = 0o666) -> int:
    """An existing target keeps its permissions; a new one gets ``new_mode`` minus the umask, like ``open()``."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        return new_mode & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success rename it to ``path``.

    On any exception (or SIGTERM) the temporary file is removed and ``path`` is left untouched, so a
    failed write never leaves a partial output behind. OSErrors become :class:`OutputError`. The file
    ends up with the permissions a plain ``open(path, "w")`` would give it (mkstemp's private 0600 is not kept).
    """
    target = Path(path)
    suffix = ".tmp" + target.suffix
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target, suffix)
        fd, tmp_name = tempfile.mkstemp(prefix=temporary_prefix(target), suffix=suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _failed(target, exc) from exc
    tmp = Path(tmp_name)
    try:
        with temporary(tmp):
            yield tmp
            os.chmod(tmp, _final_mode(target))
            os.replace(tmp, target)
    except OSError as exc:
        raise _failed(target, exc) from exc
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success its files move into ``path`` (created if needed).

    A set of files (rendered frames, a video, a contact sheet) appears complete or not at all: on any
    exception or SIGTERM the temporary folder is removed and ``path`` is left as it was. Other files
    already in ``path`` are kept; files of the same name are replaced.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(target, ".partial")
        tmp = Path(tempfile.mkdtemp(prefix=temporary_prefix(target), suffix=".partial", dir=target.parent))
    except OSError as exc:
        raise _failed(target, exc) from exc
    try:
        with temporary(tmp):
            yield tmp
            target.mkdir(parents=True, exist_ok=True)
            for item in sorted(tmp.iterdir()):
                os.replace(item, target / item.name)
    except OSError as exc:
        raise _failed(target, exc) from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
