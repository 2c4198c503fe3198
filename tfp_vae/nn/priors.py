"""Priors p(z) as TFP distributions (declared in `components.PRIORS`).

A prior is a Keras layer (so that learnable priors have their variables
tracked, trained and checkpointed) whose `distribution()` returns a
distribution with batch shape [] and event shape [latent_dim].

* normal: N(0, I).
* mixture: a learnable mixture of K diagonal Gaussians
  (`tfd.MixtureSameFamily`): logits, means and softplus scales are trained
  with the model.
* vamp: the VampPrior (Tomczak & Welling 2018), p(z) = (1/K) sum_k
  q(z | u_k), with K learned pseudo-inputs u_k (images, kept in [0, 1] by a
  sigmoid) passed through the model's own Gaussian encoder.

Neither learnable prior has a closed-form KL to a Gaussian posterior: the
rate falls back to the one-sample estimate log q(z|x) - log p(z)
(`losses.rate`).  Their samples are reparameterised (TFP's implicit
mixture gradients), so an MMD between codes and prior samples trains the
mixture weights too.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

_MIN_SCALE = 1e-3


class StandardNormalPrior(keras.layers.Layer):
  """p(z) = N(0, I)."""

  def __init__(self, latent_dim: int, **kwargs):
    super().__init__(**kwargs)
    self.latent_dim = latent_dim

  def distribution(self) -> tfd.MultivariateNormalDiag:
    return tfd.MultivariateNormalDiag(
        loc=tf.zeros([self.latent_dim]), scale_diag=tf.ones([self.latent_dim]))


class FixedPrior(keras.layers.Layer):
  """A prior without parameters: `distribution()` is `make()` (a prior
  declared elsewhere can use this layer as it is:
  `FixedPrior(lambda: tfd.Independent(tfd.Laplace(...), 1))`)."""

  def __init__(self, make, **kwargs):
    super().__init__(**kwargs)
    self._make = make

  def distribution(self) -> tfd.Distribution:
    return self._make()


class MixturePrior(keras.layers.Layer):
  """p(z) = sum_k pi_k N(mu_k, diag(sigma_k^2)), all learned.

  Means start at N(0, 1) draws (`means_initializer`) and scales at 1; with
  one component and zero means it is exactly N(0, I).
  """

  def __init__(self, latent_dim: int, components: int,
               means_initializer='random_normal', **kwargs):
    super().__init__(**kwargs)
    self.components = components
    self.logits = self.add_weight(shape=(components,), initializer='zeros',
                                  name='logits')
    self.means = self.add_weight(shape=(components, latent_dim),
                                 initializer=means_initializer, name='means')
    # softplus(raw) + _MIN_SCALE = 1 at the start.
    self.raw_scales = self.add_weight(
        shape=(components, latent_dim),
        initializer=keras.initializers.Constant(
            float(np.log(np.expm1(1.0 - _MIN_SCALE)))), name='raw_scales')

  def distribution(self) -> tfd.MixtureSameFamily:
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(logits=self.logits),
        components_distribution=_diagonal_gaussian(
            self.means, tf.nn.softplus(self.raw_scales) + _MIN_SCALE),
        reparameterize=True)


class VampPrior(keras.layers.Layer):
  """p(z) = (1/K) sum_k q(z | u_k) with learned pseudo-inputs u_k.

  Holds the encoder it shares with the model; the pseudo-inputs are
  sigmoid(raw) so they stay valid images.
  """

  def __init__(self, encoder: keras.layers.Layer, image_shape,
               components: int, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.components = components
    self.raw_inputs = self.add_weight(
        shape=(components, *image_shape),
        initializer=keras.initializers.RandomNormal(stddev=0.1),
        name='raw_pseudo_inputs')

  def pseudo_inputs(self) -> tf.Tensor:
    return tf.sigmoid(self.raw_inputs)

  def distribution(self) -> tfd.MixtureSameFamily:
    posterior = self.encoder(self.pseudo_inputs())
    return tfd.MixtureSameFamily(
        mixture_distribution=tfd.Categorical(
            logits=tf.zeros([self.components])),
        components_distribution=_diagonal_gaussian(posterior.mean(),
                                                   posterior.stddev()),
        reparameterize=True)


def _diagonal_gaussian(loc, scale) -> tfd.Independent:
  """N(loc, diag(scale^2)) as Independent(Normal): the form TFP's
  reparameterised mixture sampling needs (univariate components)."""
  return tfd.Independent(tfd.Normal(loc, scale), reinterpreted_batch_ndims=1)
