"""Typed, validated settings, no TensorFlow: how a setting is declared
(`declare`), the four groups of a run's settings (`groups`), the run and
its evaluation (`settings`), the model server (`serve_settings`).

May import: tfp_vae.internal, tfp_vae.nn, tfp_vae.family.
"""
