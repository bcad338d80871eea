"""From a splat file made elsewhere (Lyra, Marble, a capture trainer, SuperSplat) to a sim-ready scene.

``make_sim_ready`` (``lyra-sim simready``) recognises the file's convention, removes floaters from the
collider, levels and scales the world, builds the collider and writes a USD stage, a collider GLB, a
``scene.json`` and a contact sheet. Imported lazily: the pipeline pulls in open3d and pxr.
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "SimReadyOptions":
        from lyra_sim.splat_import.options import SimReadyOptions

        return SimReadyOptions
    if name in ("SimReadyResult", "SimReadyError", "make_sim_ready"):
        from lyra_sim.splat_import import pipeline

        return getattr(pipeline, name)
    raise AttributeError(name)


__all__ = ["SimReadyError", "SimReadyOptions", "SimReadyResult", "make_sim_ready"]
