"""Reading small side files (JSON, .npy) without letting them cost more than they hold.

JSON: a size limit and deep nesting (RecursionError in the parser) become errors naming the file.
.npy: the header's shape and dtype are checked against the bytes actually present before numpy allocates,
so a 100-byte file that claims 75 GiB, an object array or an empty file is refused with its path named.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from lyra_sim.errors import LyraSimError

#: JSON side files (intrinsics, camera paths, configs) are small; anything bigger is not one of them.
MAX_JSON_BYTES = 16 << 20


def read_json(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError,
              max_bytes: int = MAX_JSON_BYTES):
    """Parse a JSON file; ``error`` (naming ``name`` and the path) for missing, huge, malformed or deep files."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{name}: {path} is {size:,} bytes; JSON inputs are limited to {max_bytes:,} bytes")
        text = path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{name}: cannot read {path} as JSON ({exc})") from exc
    return parse_json(text, f"{name}: {path}", error)


def parse_json(text: str, where: str, error: type[LyraSimError] = LyraSimError):
    """``json.loads`` with malformed or too deeply nested text as ``error`` naming ``where``."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc})") from exc
    except RecursionError as exc:
        raise error(f"{where}: JSON nested too deeply") from exc


def check_npy(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError) -> tuple:
    """Shape of a plain (non-object) .npy array whose header matches the file size; ``error`` otherwise."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                np.lib.format.read_array_header_2_0
            shape, _, dtype = read_header(f, max_header_size=10_000)
            offset = f.tell()
    except (OSError, ValueError, EOFError, SyntaxError, TypeError) as exc:
        raise error(f"{name}: {path} is not a readable .npy file ({exc})") from exc
    if dtype.hasobject:
        raise error(f"{name}: {path} holds Python objects, not numbers")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected != size - offset:
        raise error(f"{name}: {path} header claims shape {shape} of {dtype} ({expected:,} bytes) but the file "
                    f"holds {size - offset:,} data bytes")
    return tuple(shape)


def load_npy(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError) -> np.ndarray:
    """``np.load`` of a checked .npy file (see :func:`check_npy`), never unpickling."""
    check_npy(path, name, error)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise error(f"{name}: {path} is not a readable .npy file ({exc})") from exc
