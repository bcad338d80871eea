"""Parse an untrusted USD file in a child process first, so that a crash inside usd-core cannot take the caller down.

usd-core's crate (.usdc / .usdz) reader trusts its input: a mutated binary file can segfault the process or
throw ``std::bad_alloc``. :func:`probe_layers` runs this file as a script in a fresh interpreter (it imports
only ``pxr``, not torch or lyra_sim, so it starts in a fraction of a second) with an address-space limit and a
timeout. The child parses the root layer and the layers it names inside its folder with Sdf (no composition:
the parent bounds that first) and reads every attribute value and time sample, which is where the crate
reader decodes data lazily. A child killed by a signal, out of memory or over time means the file is refused;
a Python-level error is left to the parent, whose own reading names it properly.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

#: Address space the child may map beyond what importing pxr took, and its time limit.
PROBE_MEMORY_BYTES = 1 << 30
PROBE_TIMEOUT_S = 20.0
_MAX_LAYERS = 256
_OK, _PYTHON_ERROR, _OUT_OF_MEMORY = 0, 3, 4


def needs_probe(path: str | os.PathLike) -> bool:
    """True for binary layers (crate, .usdz package) and text layers that name other .usd/.usdc/.usdz files: the
    text (.usda) parser itself is not where usd-core crashes, and a child process costs about 0.3 s of CPU."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if head.startswith((b"PXR-USDC", b"PK\x03\x04")) or not head.startswith(b"#usda"):
        return True
    return re.search(rb"@[^@\n]*\.usd[cz]?(\[[^@\n]*\])?@", head) is not None


def probe_layers(path: str | os.PathLike, error: type[Exception]) -> None:
    """Parse ``path`` (and the layers it names inside its folder) in a child process; ``error`` naming the file
    when usd-core crashes, runs out of memory or time there. Plain text layers that name no other USD file are
    not probed (see :func:`needs_probe`)."""
    if not needs_probe(path):
        return
    try:
        done = subprocess.run([sys.executable, "-I", __file__, os.fspath(path)], stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise error(f"{path}: parsing it took over {PROBE_TIMEOUT_S:.0f} s in a child process; refused") from None
    if done.returncode < 0:
        name = signal.Signals(-done.returncode).name
        raise error(f"{path}: usd-core crashed ({name}) parsing it in a child process; the file is corrupt or hostile")
    if done.returncode == _OUT_OF_MEMORY:
        raise error(f"{path}: parsing it needs more than {PROBE_MEMORY_BYTES >> 20} MB (checked in a child process); "
                    "the file is corrupt or hostile")
    if done.returncode not in (_OK, _PYTHON_ERROR):
        raise error(f"{path}: usd-core aborted parsing it in a child process (exit code {done.returncode})")


def _vm_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _read_layer(layer) -> None:
    """Touch every attribute default and time sample of ``layer`` (the crate reader decodes values lazily)."""
    from pxr import Sdf

    def visit(path) -> None:
        if path.IsPropertyPath():
            spec = layer.GetAttributeAtPath(path)
            if spec is not None:
                _ = spec.default
            for time in layer.ListTimeSamplesForPath(path):
                layer.QueryTimeSample(path, time)

    layer.Traverse(Sdf.Path.absoluteRootPath, visit)


def _child(path: str) -> int:
    import resource

    from pxr import Sdf

    if sys.platform.startswith("linux"):
        resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + PROBE_MEMORY_BYTES, resource.RLIM_INFINITY))
    folder = Path(path).resolve().parent
    todo, seen = [path], set()
    try:
        while todo and len(seen) < _MAX_LAYERS:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            layer = Sdf.Layer.FindOrOpen(name)
            if layer is None:
                continue
            _read_layer(layer)
            for asset in layer.GetCompositionAssetDependencies():
                absolute = layer.ComputeAbsolutePath(asset)
                outer = absolute.split("[", 1)[0]
                if outer and "://" not in outer and Path(outer).resolve().is_relative_to(folder):
                    todo.append(absolute)
    except MemoryError:
        return _OUT_OF_MEMORY
    except Exception:  # Tf errors, bad UTF-8, ...: the parent's own reading reports them, naming the file
        return _PYTHON_ERROR
    return _OK


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1]))
