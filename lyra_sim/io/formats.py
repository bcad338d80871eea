"""A registry of world file formats: suffix -> reader and writer.

The core registers its own formats (PLY, native safetensors). Adapters and plug-ins register
theirs through the ``lyra_sim.world_formats`` entry point group: each entry point names a
callable ``register(registry: FormatRegistry) -> None`` that calls :meth:`FormatRegistry.add`.
Entry points are loaded once, on the first look-up of a suffix the core does not know, so
``import lyra_sim.io`` never imports an adapter (and ``pxr`` is only imported to read USD).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from lyra_sim.io.errors import WorldFileError

ENTRY_POINT_GROUP = "lyra_sim.world_formats"

Reader = Callable[..., Any]  # (path, **options) -> GaussianWorld | DynamicGaussianWorld
Writer = Callable[..., Path]  # (world, path, **options) -> Path written


@dataclass(frozen=True)
class WorldFormat:
    """One file format: a name for messages, its suffixes, and what it can do."""

    name: str
    suffixes: tuple[str, ...]
    reader: Reader | None = None
    writer: Writer | None = None
    sniff: Callable[[Path], bool] | None = None  # True when a file of a shared suffix is this format


class FormatRegistry:
    """Suffix-keyed readers and writers; several formats may share a suffix when they can sniff."""

    def __init__(self) -> None:
        self._formats: list[WorldFormat] = []
        self._plugins_loaded = False

    def add(self, fmt: WorldFormat) -> None:
        """Register ``fmt``; formats with a ``sniff`` are tried before the plain one of a suffix."""
        if not fmt.suffixes or any(not s.startswith(".") or s != s.lower() for s in fmt.suffixes):
            raise ValueError(f"format {fmt.name!r}: suffixes must be lower-case and start with '.'")
        self._formats.append(fmt)

    def _load_plugins(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            ep.load()(self)

    def formats(self) -> list[WorldFormat]:
        """Every registered format, plug-ins included."""
        self._load_plugins()
        return list(self._formats)

    def _candidates(self, suffix: str) -> list[WorldFormat]:
        found = [f for f in self._formats if suffix in f.suffixes]
        if not found:
            self._load_plugins()
            found = [f for f in self._formats if suffix in f.suffixes]
        return sorted(found, key=lambda f: f.sniff is None)

    def suffixes(self, *, readable: bool = False, writable: bool = False) -> tuple[str, ...]:
        """All known suffixes (optionally only those with a reader / a writer), sorted."""
        chosen = {
            s
            for f in self.formats()
            if (not readable or f.reader) and (not writable or f.writer)
            for s in f.suffixes
        }
        return tuple(sorted(chosen))

    def reader_for(self, path: str | os.PathLike) -> WorldFormat:
        """The format that reads ``path`` (by suffix, then by sniffing), or a WorldFileError."""
        path = Path(path)
        suffix = path.suffix.lower()
        candidates = [f for f in self._candidates(suffix) if f.reader is not None]
        for fmt in candidates:
            if fmt.sniff is None or (path.is_file() and fmt.sniff(path)):
                return fmt
        raise WorldFileError(
            f"{path}: unknown world file type {suffix!r} (readable: {', '.join(self.suffixes(readable=True))})"
        )

    def writer_for(self, path: str | os.PathLike, format_name: str | None = None) -> WorldFormat:
        """The format that writes ``path``: by ``format_name`` when given, else the suffix's plain format."""
        path = Path(path)
        suffix = path.suffix.lower()
        candidates = [f for f in self._candidates(suffix) if f.writer is not None]
        if format_name is not None:
            candidates = [f for f in candidates if f.name == format_name]
        else:
            plain = [f for f in candidates if f.sniff is None]
            candidates = plain or candidates
        if not candidates:
            raise WorldFileError(
                f"{path}: cannot save a world as {suffix!r}"
                + (f" in format {format_name!r}" if format_name else "")
                + f" (writable: {', '.join(self.suffixes(writable=True))})"
            )
        return candidates[0]


REGISTRY = FormatRegistry()

__all__ = ["ENTRY_POINT_GROUP", "REGISTRY", "FormatRegistry", "WorldFormat"]
