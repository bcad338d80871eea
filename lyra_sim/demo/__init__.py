"""The ``lyra-sim demo``: the bundled RGB-D example through the whole pipeline (``run.py``), its options
(``options.py``) and the example's files (``example.py``). Names load on first use: the parser imports only the
options."""

from __future__ import annotations

from lyra_sim._lazy import lazy_exports

_EXPORTS = {
    "DemoOptions": "options",
    "EXAMPLE_DIR": "example", "EXAMPLE_RGB": "example", "EXAMPLE_DEPTH": "example", "EXAMPLE_INTRINSICS": "example",
    "example_paths": "example",
    "run_demo": "run", "run_demo_episode": "run", "scripted_action": "run",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
