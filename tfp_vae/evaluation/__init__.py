"""Measuring a trained model: the cheap test metrics (`metrics`), latent
probes (`probes`), the classifier Frechet distance (`frechet`), figures
(`plots`).

May import: tfp_vae.internal, nn, family, config, data, runtime, model.
"""
