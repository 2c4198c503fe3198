"""Where and how a run runs: the machine (`hardware`), the run's decisions
(`plan`), its memory (`budget`), tf.distribute (`distribute`).

May import: tfp_vae.internal, nn, family, config, data.
"""
