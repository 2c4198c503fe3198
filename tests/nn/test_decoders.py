"""Decoders return likelihoods of the right shapes (tfp_vae/nn/decoders.py)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import decoders
from tfp_vae.nn import networks

tfd = tfp.distributions


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
