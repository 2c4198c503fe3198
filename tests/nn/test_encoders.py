"""Encoders return distributions of the right shapes (tfp_vae/nn/encoders.py)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import encoders
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
