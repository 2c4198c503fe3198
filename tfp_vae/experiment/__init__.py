"""Runs evaluated and compared: every metric of a run (`evaluate`),
members side by side over seeds (`comparison`), the intervals
(`stats`) and the HTML report (`report`).

May import: tfp_vae.internal, nn, family, config, data, runtime, model,
evaluation, training.
"""
