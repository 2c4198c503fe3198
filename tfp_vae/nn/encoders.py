"""Encoders: networks -> TFP distributions q(z|x).

Both encoders return a distribution with batch shape [B] and event shape
[latent_dim], so every model and metric talks to them the same way.
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import precision

tfd = tfp.distributions

# Keeps the posterior scale away from 0, where log q(z|x) is undefined.
_MIN_SCALE = 1e-5


class GaussianEncoder(keras.layers.Layer):
  """q(z|x) = N(loc(x), diag(softplus(raw(x)))^2), as in TFP's examples/vae.py.

  The network's output of size 2 * latent_dim is split into loc and an
  unconstrained scale; softplus keeps the scale positive without the exp of a
  log-variance blowing up early in training.
  """

  def __init__(self, network: keras.Model, latent_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.latent_dim = latent_dim

  def call(self, images: tf.Tensor) -> tfd.MultivariateNormalDiag:
    params = precision.as_float32(self.network(images))
    loc, raw_scale = tf.split(params, 2, axis=-1)
    return tfd.MultivariateNormalDiag(
        loc=loc, scale_diag=tf.nn.softplus(raw_scale) + _MIN_SCALE)


class DeterministicEncoder(keras.layers.Layer):
  """q(z|x) = point mass at f(x): the MMD-VAE's deterministic encoder.

  A `tfd.VectorDeterministic` lets the MMD-VAE share the Gaussian encoder's
  interface: `.sample()` is the code (gradients flow to f), `.mean()` too,
  `.stddev()` is zero.
  """

  def __init__(self, network: keras.Model, latent_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.latent_dim = latent_dim

  def call(self, images: tf.Tensor) -> tfd.VectorDeterministic:
    return tfd.VectorDeterministic(
        loc=precision.as_float32(self.network(images)))

