"""Self-distillation (Lyra's recipe): teachers, the data engine, losses and the training loop.

The latent spaces the decoder reads live with generation, in ``lyra_sim.lyra.latent_space``.
"""
