"""Where and how a run runs: the machine and what `auto` picks on it
(`hardware`) from what was measured (`measurements`, `bfloat16_guard`), the
run's decisions (`plan`), its memory (`budget`), tf.distribute
(`distribute`).

May import: tfp_vae.internal, nn, family, config, data.
"""
