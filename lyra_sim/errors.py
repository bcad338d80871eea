"""The package's one error base class.

Every error lyra_sim raises for bad user input (a file, an image, a checkpoint, a pose, a
parameter) derives from :class:`LyraSimError`. It stays a ``ValueError`` so callers that caught
``ValueError`` keep working; the ``lyra-sim`` command turns it into one line and exit code 2.
Warnings meant for the user go through :func:`warn_from_caller`, so they name the user's line.
"""

import os
import sys
import warnings
from pathlib import Path


class LyraSimError(ValueError):
    """A user-facing error: the message names the offending input (a path, an argument, a field)."""


def warn_from_caller(message: str, category: type[Warning], through: tuple[str, ...] = ("gymnasium",)) -> None:
    """``warnings.warn`` attributed to the user's line: the first frame outside lyra_sim and outside the packages in
    ``through`` (those that call lyra_sim back, as ``gymnasium.make`` builds our environments), however deep the
    call. Python 3.12's ``warnings.warn(skip_file_prefixes=...)`` does the same; lyra_sim still runs on 3.10."""
    prefixes = tuple(
        str(Path(module.__file__).parent) + os.sep
        for module in (sys.modules.get(name) for name in ("lyra_sim", *through))
        if module is not None and getattr(module, "__file__", None)
    )
    frame, level = sys._getframe(1), 2  # stacklevel 2: the caller of this function
    while frame is not None and frame.f_code.co_filename.startswith(prefixes):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
