"""OpenUSD adapter: Gaussian worlds as ``UsdVol.ParticleField3DGaussianSplat`` stages for Omniverse / Isaac Sim.

Imports only lyra_sim's core types. ``export_world`` writes .usda/.usdc/.usdz (Z-up, metres, colliders,
physics scene, time-sampled dynamic worlds); ``import_world`` reads such stages, and splat stages from
other tools, back; ``validate_stage`` runs OpenUSD's registered validators.
"""

from usd_exporters.splats import UsdWorldError
from usd_exporters.stage_io import export_world, import_world
from usd_exporters.validation import validate_stage

__all__ = ["UsdWorldError", "export_world", "import_world", "validate_stage"]
