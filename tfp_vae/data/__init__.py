"""Datasets: named sets as arrays (`datasets`), a dataset in memory or
streamed and its cuts (`images`), datasets by name or path (`loaders`),
tf.data input pipelines (`inputs`), a user's files (`sources`), the IDX
format (`idx`).

May import: tfp_vae.internal, nn, family, config.
"""
