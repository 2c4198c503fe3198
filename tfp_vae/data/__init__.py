"""Datasets: named sets as arrays (`datasets`), tf.data input pipelines
(`inputs`), a user's files (`sources`), the IDX format (`idx`).

May import: tfp_vae.internal, nn, family, config.
"""
