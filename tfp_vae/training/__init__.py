"""One training run (`run`: a `running.ActiveRun` trained by `loop`), its Keras
callbacks (`callbacks`) and its run directory (`rundir`).

May import: tfp_vae.internal, nn, family, config, data, runtime, model,
evaluation.
"""
