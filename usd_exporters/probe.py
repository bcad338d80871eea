"""Parse an untrusted USD file in a child process first, so that a crash inside usd-core cannot take the caller down.

usd-core's crate (.usdc / .usdz) reader trusts its input: a mutated binary file can segfault the process or
throw ``std::bad_alloc``. :func:`probe_layers` hands the file to a child interpreter running this file as a
script (it imports only ``pxr``, not torch or lyra_sim; it is started once and restarted after it dies) under an
address-space limit and a timeout. The child parses the root layer and the layers it names inside its
folder with Sdf (no composition: the parent bounds that first) and reads every attribute value and time
sample, which is where the crate reader decodes data lazily. A child killed by a signal, out of memory or
over time means the file is refused; so does a parse error there (the same parse here would fail the same way).
"""

from __future__ import annotations

import os
import re
import selectors
import signal
import subprocess
import sys
import threading
from pathlib import Path

#: Address space the child may map beyond what importing pxr took, and its time limit.
PROBE_MEMORY_BYTES = 1 << 30
PROBE_TIMEOUT_S = 20.0
_MAX_LAYERS = 256
_OK, _PYTHON_ERROR, _OUT_OF_MEMORY = 0, 3, 4


def tf_message(exc: Exception) -> str:
    """The message of a pxr Tf error without its C++ source location, on one line."""
    try:
        text = str(exc).strip()
    except UnicodeDecodeError:  # Tf errors quoting bytes of a corrupt file that are not UTF-8
        return "the file holds bytes that are not valid UTF-8 text"
    found = re.findall(r" : '(.*?)'\s*(?=Error in|$)", text, re.S)
    return " ".join((found[-1] if found else text or type(exc).__name__).split())[:300]


def needs_probe(path: str | os.PathLike) -> bool:
    """True for binary layers (crate, .usdz package) and text layers that name other .usd/.usdc/.usdz files: the
    text (.usda) parser itself is not where usd-core crashes, and a child process costs about 0.3 s of CPU."""
    with open(path, "rb") as f:
        head = f.read(1 << 20)
    if head.startswith((b"PXR-USDC", b"PK\x03\x04")) or not head.startswith(b"#usda"):
        return True
    return re.search(rb"@[^@\n]*\.usd[cz]?(\[[^@\n]*\])?@", head) is not None


class _Prober:
    """One long-lived child (started on first use, restarted after it dies): a probe costs milliseconds, not the
    0.3 s of CPU a fresh interpreter importing pxr takes."""

    def __init__(self):
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()

    def _start(self) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-I", __file__], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True)

    def _ask(self, path: str) -> tuple[int, str] | str:
        """The child's answer for ``path``: (code, message), or "timeout" / "died: <signal or code>"."""
        if self.proc is None or self.proc.poll() is not None:
            self.proc = self._start()
        proc = self.proc
        try:
            proc.stdin.write(path + "\n")
            proc.stdin.flush()
        except OSError:
            pass  # it died: the read below says how
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            ready = selector.select(timeout=PROBE_TIMEOUT_S)
        line = proc.stdout.readline() if ready else None
        if line:
            code, _, message = line.rstrip("\n").partition("\t")
            return int(code), message
        self.proc = None
        if line is None:
            proc.kill()
            proc.wait()
            return "timeout"
        code = proc.wait()
        return f"died: {signal.Signals(-code).name if code < 0 else f'exit code {code}'}"

    def probe(self, path: str) -> tuple[int, str] | str:
        """The answer for ``path``; a crash or out-of-memory answer is only believed from a fresh child (earlier
        hostile files may have damaged the one that answered)."""
        with self.lock:
            fresh = self.proc is None or self.proc.poll() is not None
            answer = self._ask(path)
            if not fresh and (answer[0] == _OUT_OF_MEMORY if isinstance(answer, tuple) else answer != "timeout"):
                if self.proc is not None:
                    self.proc.kill()
                    self.proc.wait()
                    self.proc = None
                answer = self._ask(path)
            return answer


_PROBER = _Prober()


def probe_layers(path: str | os.PathLike, error: type[Exception]) -> None:
    """Parse ``path`` (and the layers it names inside its folder) in a child process; ``error`` naming the file
    when usd-core crashes, runs out of memory or time there. Plain text layers that name no other USD file are
    not probed (see :func:`needs_probe`)."""
    if not needs_probe(path):
        return
    answer = _PROBER.probe(os.path.abspath(path))
    if answer == "timeout":
        raise error(f"{path}: parsing it took over {PROBE_TIMEOUT_S:.0f} s in a child process; refused")
    if isinstance(answer, str):
        raise error(f"{path}: usd-core crashed ({answer.removeprefix('died: ')}) parsing it in a child process; "
                    "the file is corrupt or hostile")
    code, message = answer
    if code == _OUT_OF_MEMORY:
        raise error(f"{path}: parsing it needs more than {PROBE_MEMORY_BYTES >> 20} MB (checked in a child process); "
                    "the file is corrupt or hostile")
    if code == _PYTHON_ERROR:  # the same parse here would fail the same way, after the same allocations
        raise error(f"{path}: not a readable USD layer ({message})")


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


def _probe_one(path: str) -> tuple[int, str]:
    """Parse ``path`` and the layers it names inside its folder with Sdf, touching every value: (code, message)."""
    from pxr import Sdf

    folder = Path(path).resolve().parent
    todo, seen, name = [path], set(), path
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
        return _OUT_OF_MEMORY, ""
    except Exception as exc:  # Tf errors (corrupt crate data, bad syntax), bad UTF-8, deep nesting
        where = "" if name == path else f"{Path(name.split('[', 1)[0]).name}: "
        return _PYTHON_ERROR, where + tf_message(exc)
    return _OK, ""


def _serve() -> None:
    """Answer one exit code per path read from stdin, until stdin closes (the parent ended)."""
    import resource

    import pxr.Sdf  # noqa: F401  (imported before the address-space limit is set)

    if sys.platform.startswith("linux"):
        resource.setrlimit(resource.RLIMIT_AS, (_vm_bytes() + PROBE_MEMORY_BYTES, resource.RLIM_INFINITY))
    for line in sys.stdin:
        code, message = _probe_one(line.rstrip("\n"))
        print(f"{code}\t{message}", flush=True)


if __name__ == "__main__":
    _serve()
