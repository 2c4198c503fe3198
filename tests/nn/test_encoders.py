"""Encoders, decoders and priors return distributions of the right shapes."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.family import components
from tfp_vae.nn import decoders
from tfp_vae.nn import encoders
from tfp_vae.internal import errors
from tfp_vae.family import objectives
from tfp_vae.model import models
from tfp_vae.nn import networks

tfd = tfp.distributions


@pytest.mark.parametrize('shape', [(28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize('latent', [1, 2, 16])
def test_encoder_distributions_have_batch_and_event_shapes(shape, latent):
  x = tf.random.uniform((4,) + shape)
  gauss = encoders.GaussianEncoder(networks.conv_encoder(shape, 2 * latent),
                                   latent)(x)
  assert isinstance(gauss, tfd.MultivariateNormalDiag)
  assert gauss.batch_shape == [4] and gauss.event_shape == [latent]
  assert np.all(gauss.stddev().numpy() > 0)
  point = encoders.DeterministicEncoder(networks.conv_encoder(shape, latent),
                                        latent)(x)
  assert point.batch_shape == [4] and point.event_shape == [latent]
  np.testing.assert_array_equal(point.sample(), point.mean())
  np.testing.assert_array_equal(point.stddev(), 0.0)


@pytest.mark.parametrize('shape', [(28, 28, 1), (32, 32, 3)])
def test_decoder_likelihoods_have_batch_and_event_shapes(shape):
  z = tf.random.normal((3, 2))
  bern = decoders.BernoulliDecoder(networks.conv_decoder(2, shape))(z)
  gauss = decoders.GaussianDecoder(networks.conv_decoder(2, shape), 0.1)(z)
  for lik in (bern, gauss):
    assert isinstance(lik, tfd.Independent)
    assert lik.batch_shape == [3] and lik.event_shape == list(shape)
    assert lik.log_prob(tf.zeros((3,) + shape)).shape == [3]
    mean = lik.mean().numpy()
    assert mean.min() >= 0 and mean.max() <= 1
  np.testing.assert_allclose(gauss.stddev(), 0.1)


def test_prior_is_standard_normal():
  p = components.PRIORS.get('normal')().layer(5, 1, None, None).distribution()
  assert p.batch_shape == [] and p.event_shape == [5]
  np.testing.assert_array_equal(p.mean(), 0.0)
  np.testing.assert_array_equal(p.stddev(), 1.0)
  with pytest.raises(errors.ConfigError, match="prior must be one of"):
    components.PRIORS.get('laplace')


def test_conv_network_is_the_sources_network():
  enc = networks.conv_encoder((28, 28, 1), 4)
  dec = networks.conv_decoder(2, (28, 28, 1))
  # conv 3x3x1x32, conv 3x3x32x64, dense 6*6*64 -> 4; dense 2 -> 7*7*32,
  # deconvs 3x3x32x64, 3x3x64x32, 3x3x32x1.
  assert enc.count_params() == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (
      6 * 6 * 64 * 4 + 4)
  assert dec.count_params() == (2 * 1568 + 1568) + (9 * 32 * 64 + 64) + (
      9 * 64 * 32 + 32) + (9 * 32 + 1)
  assert [l.output.shape[1:] for l in enc.layers[:2]] == [(13, 13, 32),
                                                          (6, 6, 64)]


def test_an_architecture_refuses_a_shape_it_cannot_take_naming_one_that_can():
  with pytest.raises(errors.ConfigError,
                     match=r'architecture needs .*divisible by 4, got '
                     r'\(30, 30, 1\); --architecture=mlp takes it'):
    components.check_architecture('conv', (30, 30, 1))
  with pytest.raises(errors.ConfigError, match='divisible by 8.*conv takes'):
    components.check_architecture('conv_deep', (28, 28, 1))
  components.check_architecture('conv_deep', (32, 32, 3))


def test_sample_codes_is_the_reparameterised_gaussian_draw():
  loc = tf.constant([[0.0, 1.0], [2.0, -1.0]])
  scale = tf.constant([[1.0, 0.5], [2.0, 0.1]])
  q = tfd.MultivariateNormalDiag(loc, scale)
  model = models.LatentVariableModel(objectives.VAE(), None, None, None,
                                     latent_dim=2)
  seed = tf.constant([3, 4], tf.int32)
  z = model.sample_codes(q, seed)
  eps = tf.random.stateless_normal([2, 2], seed=seed)
  np.testing.assert_allclose(z, loc + scale * eps, rtol=1e-6)
  point = tfd.VectorDeterministic(loc)
  np.testing.assert_array_equal(model.sample_codes(point, seed), loc)
