"""The Keras model of a member (`models`), its importance-weighted
log-likelihood (`likelihood`) and its SavedModel export (`export`).

May import: tfp_vae.internal, nn, family, config, data, runtime.
"""
