"""OpenUSD export and import of lyra_sim worlds (ParticleField3DGaussianSplat); filled in by the USD work."""
