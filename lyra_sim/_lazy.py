"""Package attributes imported on first use (PEP 562): importing a package costs only what the caller uses."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``, whose public ``name`` lives in ``package.exports[name]``
    (or in ``exports[name]`` itself when that is an absolute ``lyra_sim.`` module name).

    The first access imports the submodule and caches the value in the package, so later accesses are plain
    attribute lookups; any other name is looked up as a submodule (``lyra_sim.physics`` after ``import lyra_sim``).
    """

    def __getattr__(name: str):
        module = sys.modules[package]
        if name in exports:
            source = exports[name] if exports[name].startswith("lyra_sim.") else f"{package}.{exports[name]}"
            value = getattr(importlib.import_module(source), name)
        elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
            value = importlib.import_module(f"{package}.{name}")
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(module, name, value)
        return value

    def __dir__() -> list[str]:
        import pkgutil

        module = sys.modules[package]
        return sorted(set(vars(module)) | set(exports) | {m.name for m in pkgutil.iter_modules(module.__path__)})

    return __getattr__, __dir__
