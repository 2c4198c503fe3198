"""Priors p(z) as TFP distributions.

A prior is a Keras layer (so that learnable priors, added later, have their
variables tracked and checkpointed) whose `distribution()` returns a
distribution with batch shape [] and event shape [latent_dim].
"""

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae import errors

tfd = tfp.distributions

PRIORS = ('normal',)


class StandardNormalPrior(keras.layers.Layer):
  """p(z) = N(0, I)."""

  def __init__(self, latent_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim

  def distribution(self) -> tfd.MultivariateNormalDiag:
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([self.latent_dim]), scale_diag=tf.ones([self.latent_dim]))


def make_prior(name: str, latent_dim: int) -> keras.layers.Layer:
  """Builds the prior called `name`.

  Raises:
    ConfigError: for an unknown name.
  """
  if name == 'normal':
    return StandardNormalPrior(latent_dim, name='prior')
  raise errors.ConfigError('prior', name, f'must be one of {list(PRIORS)}')
