"""Looking at a world along a camera path: the paths (``paths.py``: "fly", "lyra:K", JSON camera files), the
pictures along them (``media.py``: PNG frames, contact sheets, MP4s) and their options (``options.py``). The path
shapes themselves are Lyra's trajectories (``lyra_sim.trajectories``)."""

from lyra_sim._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {})  # the modules load on first use (``lyra_sim.views.paths``)
