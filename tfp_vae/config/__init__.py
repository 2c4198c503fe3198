"""Typed, validated run settings (`settings`), no TensorFlow.

May import: tfp_vae.internal, tfp_vae.nn, tfp_vae.family.
"""
