"""tfp_vae: variational autoencoders on TensorFlow Probability.

Modules: networks, encoders, decoders, priors, losses, models (the model
library); data, metrics, plots, export, training (running it); layout and
serving (the export directory and its model server); config and errors (the
boundary).
"""

__version__ = '0.1.0'
