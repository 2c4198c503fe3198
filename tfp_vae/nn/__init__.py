"""The model library: pure TensorFlow/TFP pieces (networks, encoders,
decoders, priors, losses, the mixed-precision policy, the information
metrics), tensors and distributions in and out.

May import: tfp_vae.internal.
"""
