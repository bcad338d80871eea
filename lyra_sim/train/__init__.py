"""Self-distillation (Lyra's recipe): teachers, the data engine, latent spaces, losses and the training loop."""
