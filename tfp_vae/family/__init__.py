"""The extension points, declared: the family's members (`members`), the
other parts (`components`: encoders, likelihoods, priors, architectures)
and member specs (`specs`).  Declarations import no TensorFlow; they
build their Keras layers from tfp_vae.nn when a model is built.

May import: tfp_vae.internal, tfp_vae.nn.
"""
