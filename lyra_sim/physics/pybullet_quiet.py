"""Import PyBullet without its "pybullet build time: ..." banner in our commands' output.

The banner is printed by the C extension's module init (to stderr in pybullet 3.2.7, to stdout in
some older builds), so neither ``sys.stdout`` nor ``contextlib.redirect_stdout`` can catch it.
File descriptors 1 and 2 are pointed at temporary files around the import, C stdio is flushed
before they are restored (a piped stream would otherwise get the buffered banner later), and
anything else the import printed is passed on unchanged. Every module of lyra_sim that needs
PyBullet imports it through :func:`import_pybullet`.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import sys
import tempfile
from types import ModuleType

BANNER_PREFIX = b"pybullet build time:"


def _flush_c_stdio() -> None:
    with contextlib.suppress(OSError, AttributeError):  # no C library handle here: nothing we could flush
        ctypes.CDLL(None).fflush(None)


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # stream replaced or closed
            stream.flush()


def import_pybullet() -> ModuleType:
    """The ``pybullet`` module, imported once with its banner dropped from stdout and stderr."""
    if "pybullet" in sys.modules:
        return sys.modules["pybullet"]
    _flush_python_streams()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        saved = {1: os.dup(1), 2: os.dup(2)}
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            try:
                module = importlib.import_module("pybullet")
            finally:
                _flush_c_stdio()
        finally:
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
        for fd, capture in ((1, out), (2, err)):
            capture.seek(0)
            kept = b"".join(line for line in capture if not line.startswith(BANNER_PREFIX))
            if kept:
                os.write(fd, kept)
    return module


__all__ = ["import_pybullet"]
