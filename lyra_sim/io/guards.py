"""Reading what users give without letting it cost more than it holds or reach beyond itself.

JSON: a size limit and deep nesting (RecursionError in the parser) become errors naming the file.
.npy: the header's shape and dtype are checked against the bytes actually present before numpy allocates,
so a 100-byte file that claims 75 GiB, an object array or an empty file is refused with its path named.
Input files: :func:`input_file` refuses symlink loops, folders, FIFOs, devices and /proc, /sys, /dev files;
:func:`confined_path` keeps every file a capture folder names inside that folder (symlinks followed).
Compressed streams: :func:`inflate` decompresses at most what a header declares and refuses trailing data.
"""

from __future__ import annotations

import io
import json
import os
import stat
import zlib
from pathlib import Path

import numpy as np

from lyra_sim.errors import LyraSimError

#: JSON side files (intrinsics, camera paths, configs) are small; anything bigger is not one of them.
MAX_JSON_BYTES = 16 << 20


def read_json(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError,
              max_bytes: int = MAX_JSON_BYTES):
    """Parse a JSON file; ``error`` (naming ``name`` and the path) for missing, huge, malformed or deep files."""
    path = input_file(path, f"{name}: {path}", error)
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


def _npy_header(f, name: str, path: Path, data_bytes, error: type[LyraSimError]) -> tuple:
    """Shape of the .npy array whose header starts at ``f``, checked against ``data_bytes(header_end)``."""
    try:
        version = np.lib.format.read_magic(f)
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(f, max_header_size=10_000)
        present = data_bytes(f.tell())
    except (OSError, ValueError, EOFError, SyntaxError, TypeError, zlib.error) as exc:
        raise error(f"{name}: {path} is not a readable .npy file ({exc})") from exc
    if dtype.hasobject:
        raise error(f"{name}: {path} holds Python objects, not numbers")
    expected = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if expected != present:
        raise error(f"{name}: {path} header claims shape {shape} of {dtype} ({expected:,} bytes) but the file "
                    f"holds {present:,} data bytes")
    return tuple(shape)


def check_npy(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError) -> tuple:
    """Shape of a plain (non-object) .npy array whose header matches the file size; ``error`` otherwise."""
    path = input_file(path, f"{name}: {path}", error)
    try:
        size = path.stat().st_size
        with path.open("rb") as f:
            return _npy_header(f, name, path, lambda offset: size - offset, error)
    except OSError as exc:
        raise error(f"{name}: {path} is not a readable .npy file ({exc})") from exc


#: Largest array read from one .npz member; deflate cannot expand a member more than ~1032 times.
MAX_NPZ_MEMBER_BYTES = 256 << 20
_DEFLATE_RATIO = 1100


def load_npz(path: str | os.PathLike, keys: tuple[str, ...], name: str,
             error: type[LyraSimError] = LyraSimError) -> dict[str, np.ndarray]:
    """The arrays ``keys`` (those present) of an .npz file, each member's size and header checked before numpy
    allocates: a header claiming a TiB, a truncated archive or a deflate bomb is ``error`` naming the file."""
    import zipfile

    path = input_file(path, f"{name}: {path}", error)
    out = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for key in keys:
                try:
                    member = archive.getinfo(f"{key}.npy")
                except KeyError:
                    continue
                if member.file_size > MAX_NPZ_MEMBER_BYTES or \
                        member.file_size > _DEFLATE_RATIO * member.compress_size + 4096:
                    raise error(f"{name}: {path} member {key!r} expands to {member.file_size:,} bytes "
                                f"({member.compress_size:,} stored); refused")
                with archive.open(member) as f:
                    _npy_header(f, name, path, lambda offset, m=member: m.file_size - offset, error)
                with archive.open(member) as f:
                    out[key] = np.lib.format.read_array(f, allow_pickle=False)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, zlib.error, NotImplementedError) as exc:
        if isinstance(exc, LyraSimError):
            raise
        raise error(f"{name}: {path} is not a readable .npz archive ({exc})") from exc
    return out


def load_npy(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError) -> np.ndarray:
    """``np.load`` of a checked .npy file (see :func:`check_npy`), never unpickling."""
    check_npy(path, name, error)
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise error(f"{name}: {path} is not a readable .npy file ({exc})") from exc


# --------------------------------------------------------------------------------------------- input files
#: Kernel and device trees: their "files" are endless, change under the reader or read another process's state.
SPECIAL_ROOTS = (Path("/proc"), Path("/sys"), Path("/dev"))


def _resolved(path: Path, name: str, error: type[LyraSimError]) -> Path:
    try:
        return path.resolve(strict=True)
    except FileNotFoundError as exc:
        raise error(f"{name}: no such file") from exc
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise error(f"{name}: cannot resolve the path ({'symlink loop' if 'loop' in str(exc).lower() else exc})") \
            from exc


def _check_regular(resolved: Path, name: str, error: type[LyraSimError]) -> None:
    if any(resolved.is_relative_to(root) for root in SPECIAL_ROOTS):
        raise error(f"{name}: refers to a kernel or device file, not a data file")
    try:
        mode = resolved.stat().st_mode
    except OSError as exc:
        raise error(f"{name}: cannot read ({exc.strerror or exc})") from exc
    if not stat.S_ISREG(mode):
        raise error(f"{name}: not a regular file")


def input_file(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError) -> Path:
    """``path`` after checking that it is (or links to) a regular file: missing files, symlink loops, folders,
    FIFOs, devices and files under /proc, /sys or /dev are ``error`` naming ``name``."""
    path = Path(path)
    _check_regular(_resolved(path, name, error), name, error)
    return path


def confined_path(root: str | os.PathLike, entry: str | os.PathLike, what: str,
                  error: type[LyraSimError] = LyraSimError, kind: str = "file") -> Path:
    """``root / entry`` after checking that it resolves, symlinks followed, to a ``kind`` ("file" or "dir")
    inside ``root``; ``../``, absolute paths and links out of ``root`` are ``error``.

    The message names the entry as the capture wrote it (never what an outside link points to).
    """
    root = Path(root)
    path = root / entry
    shown = f"{what}: {short_repr(str(entry))}"
    real_root = _resolved(root, f"{what}: folder {root}", error)
    # Containment first, from the path alone (realpath follows what links exist and never raises): whether an
    # outside file exists is not revealed by a different message.
    if not Path(os.path.realpath(path)).is_relative_to(real_root):
        raise error(f"{shown} leads outside the folder {root}; every file a capture names must lie inside it")
    resolved = _resolved(path, f"{shown} in {root}", error)
    if not resolved.is_relative_to(real_root):
        raise error(f"{shown} leads outside the folder {root}; every file a capture names must lie inside it")
    if kind == "dir":
        if not resolved.is_dir():
            raise error(f"{shown} in {root} is not a folder")
    else:
        _check_regular(resolved, f"{shown} in {root}", error)
    return path


def short_repr(text: str, limit: int = 80) -> str:
    """``text`` quoted, cut to ``limit`` characters (messages stay one short line)."""
    return repr(text if len(text) <= limit else text[:limit] + "...")


def read_text_file(path: str | os.PathLike, name: str, error: type[LyraSimError] = LyraSimError,
                   max_bytes: int = MAX_JSON_BYTES) -> str:
    """A small UTF-8 text file; binary content (NUL bytes, invalid UTF-8) is refused without echoing any of it."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{name}: {path} is {size:,} bytes; text inputs are limited to {max_bytes:,} bytes")
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"{name}: cannot read {path} ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or "\x00" in text:
        raise error(f"{name}: {path} is not a text file")
    return text


# --------------------------------------------------------------------------------------------- decompression
def inflate(data: bytes, codec: str, max_bytes: int, where: str, error: type[LyraSimError] = LyraSimError,
            partial: bool = False) -> bytes:
    """Decompress one ``codec`` ("gzip" or "zstd") stream, streamed, producing at most ``max_bytes``.

    A stream that would produce more (trailing data), holds bytes after its end, or is corrupt or cut short is
    ``error`` naming ``where``: a small file cannot make the reader allocate more than its header declares.
    ``partial``: only the first ``max_bytes`` are wanted (a header); the rest of the stream is not looked at.
    """
    if codec == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        try:
            out = inflater.decompress(data, max_bytes + 1)
        except zlib.error as exc:
            raise error(f"{where}: corrupt gzip stream ({exc})") from exc
        extra = len(out) > max_bytes or inflater.unused_data or (inflater.eof is False and inflater.unconsumed_tail)
        ended = inflater.eof
    elif codec == "zstd":
        import zstandard

        chunks, total = [], 0
        try:
            with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True) as reader:
                while total <= max_bytes:
                    chunk = reader.read(max_bytes + 1 - total)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    total += len(chunk)
        except zstandard.ZstdError as exc:
            raise error(f"{where}: corrupt zstd stream ({exc})") from exc
        out = b"".join(chunks)
        extra, ended = total > max_bytes, True
    else:
        raise ValueError(f"unknown codec {codec!r}")
    if partial:
        return out[:max_bytes]
    if extra:
        raise error(f"{where}: the compressed stream holds more than the {max_bytes:,} bytes its header declares "
                    "(trailing data or a decompression bomb)")
    if not ended:
        raise error(f"{where}: the compressed stream is truncated")
    return out


# --------------------------------------------------------------------------------------------- counts
#: Lines of a capture's list files (rgb.txt, depth.txt, timestamps.txt, a TUM trajectory): about 3 h at 100 Hz.
MAX_LIST_ENTRIES = 1_000_000
#: Cameras of one rendered path or camera file (14 minutes of frames at 24/s).
MAX_PATH_CAMERAS = 20_000


def check_count(count: int, limit: int, what: str, advice: str, error: type[LyraSimError] = LyraSimError) -> int:
    """``count`` when it is at most ``limit``; else ``error`` saying what was counted and how to proceed."""
    if count > limit:
        raise error(f"{what}: {count:,} is more than the limit of {limit:,}; {advice}")
    return count
