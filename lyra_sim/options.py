"""Options dataclasses: each job's settings typed once, with a one-line help per field.

A job's options live beside it (``single_view/options.py``, ``capture/options.py``, ...) in a module that imports
nothing heavy; the library takes them (or the same names as keyword arguments) and ``lyra-sim`` builds its
argparse options from them with ``add_options``, so no default is written twice and ``--help`` shows each field's
help. (tyro / simple-parsing do this too, but would rename the flags users already script against and add
their import cost to every ``lyra-sim --help``; this is the 60 lines the CLI needs.)
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from typing import Any


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def option(default: Any, help: str, *, flag: str | None = None, parse: Callable[[str], Any] | None = None,
           choices: list | None = None, cli: bool = True) -> Any:
    """A dataclass field with its command-line help; ``flag`` overrides ``--field-name``, ``parse`` the value type,
    ``cli=False`` keeps a library-only field off the command line. A True boolean becomes ``--no-FIELD``."""
    meta = {"help": help, "flag": flag, "parse": parse, "choices": choices, "cli": cli}
    return dataclasses.field(default=default, metadata=meta)


_PARSERS = {"int": int, "float": float, "str": str}


def _parser_for(f: dataclasses.Field) -> Callable[[str], Any]:
    """The value type of a field from its annotation (``int``, ``float | None``, ``str | os.PathLike | None``)."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "str")
    first = annotation.split("|")[0].strip()
    return _PARSERS.get(first, str)


def add_options(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, exclude: tuple[str, ...] = (),
                only: tuple[str, ...] | None = None) -> None:
    """Add one argparse option per command-line field of the options dataclass ``cls`` (``only`` those named,
    none of ``exclude``)."""
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if f.name in exclude or (only is not None and f.name not in only) or not meta.get("cli", False):
            continue
        flag = meta["flag"] or "--" + f.name.replace("_", "-")
        if f.default is True:
            parser.add_argument(meta["flag"] or "--no-" + f.name.replace("_", "-"), dest=f.name,
                                action="store_false", help=meta["help"])
        elif f.default is False:
            parser.add_argument(flag, dest=f.name, action="store_true", help=meta["help"])
        else:
            parser.add_argument(flag, dest=f.name, type=meta["parse"] or _parser_for(f), default=f.default,
                                choices=meta["choices"], help=meta["help"],
                                metavar=None if meta["choices"] else flag.lstrip("-").replace("-", "_").upper())


def options_from_args(cls: type, args: argparse.Namespace) -> Any:
    """An instance of ``cls`` from the parsed command line (fields not on the command line keep their defaults)."""
    return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)})


def as_kwargs(options: Any) -> dict:
    """The fields of an options dataclass as keyword arguments (shallow: nested options stay objects)."""
    return {f.name: getattr(options, f.name) for f in dataclasses.fields(options)}
