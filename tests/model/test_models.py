"""Models: objectives, reductions, eager vs graph, one training step."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.config import settings as config_lib
from tfp_vae.nn import losses
from tfp_vae.model import models
from tfp_vae.runtime import plan
from tfp_vae.family import objectives

tfd = tfp.distributions


@pytest.fixture(scope='session')
def images(mnist_5k):
  return tf.constant(mnist_5k.train_images[:64].astype(np.float32) / 255)


def _model(**kw):
  config = config_lib.TrainConfig.create(**kw).validate()
  return models.build_model(config, (28, 28, 1))


@pytest.mark.parametrize('kw', [
    dict(model='vae'), dict(model='vae', kl_estimator='sampled'),
    dict(model='vae', likelihood='gaussian'), dict(model='mmd_vae'),
    dict(model='mmd_vae', likelihood='gaussian', latent_dim=8)])
def test_objective_is_finite_and_eager_equals_graph(images, kw):
  model = _model(**kw)
  seed = tf.constant([1, 2], tf.int32)
  loss, logs = model.objective(images, seed)
  g_loss, g_logs = tf.function(model.objective)(images, seed)
  assert np.isfinite(loss.numpy())
  np.testing.assert_allclose(loss, g_loss, rtol=1e-5)
  for k in logs:
    np.testing.assert_allclose(logs[k], g_logs[k], rtol=1e-5)
  assert set(logs) == set(model.terms)


def test_vae_objective_is_mean_negative_elbo(images):
  model = _model(model='vae')
  seed = tf.constant([5, 6], tf.int32)
  loss, logs = model.objective(images, seed)
  q = model.encode(images)
  z = model.sample_codes(q, seed)
  neg_elbo = (losses.distortion(model.decode(z), images) +
              losses.analytic_rate(q, model.prior_distribution()))
  np.testing.assert_allclose(loss, tf.reduce_mean(neg_elbo), rtol=1e-5)
  np.testing.assert_allclose(logs['loss'], logs['distortion'] + logs['rate'],
                             rtol=1e-5)


def test_mmd_vae_objective_is_distortion_plus_weighted_mmd(images):
  model = _model(model='mmd_vae')
  assert model.member.mmd_weight == 784.0
  seed = tf.constant([7, 8], tf.int32)
  loss, logs = model.objective(images, seed)
  codes = model.encode(images).mean()
  prior = model.prior_distribution().sample(64, seed=seed)
  expected_mmd = losses.mmd(codes, prior)
  np.testing.assert_allclose(logs['mmd'], 784.0 * expected_mmd, rtol=1e-4)
  np.testing.assert_allclose(
      loss, logs['distortion'] + 784.0 * expected_mmd, rtol=1e-5)


def test_same_seed_same_model(images):
  a, b = _model(seed=3), _model(seed=3)
  for va, vb in zip(a.weights, b.weights):
    np.testing.assert_array_equal(va, vb)
  assert not np.array_equal(a.weights[0], _model(seed=4).weights[0])


@pytest.mark.parametrize('name', ['vae', 'mmd_vae'])
@pytest.mark.slow
def test_fit_reduces_the_loss(images, name):
  model = _model(model=name)
  model.compile(keras.optimizers.Adam(1e-3), jit_compile=False)
  ds = tf.data.Dataset.from_tensor_slices(images).batch(32).repeat(8)
  history = model.fit(ds, epochs=2, verbose=0, shuffle=False).history
  assert history['loss'][1] < history['loss'][0]


def test_in_float32_keeps_the_weights_and_computes_in_float32():
  config = config_lib.TrainConfig.create(precision='mixed_bfloat16',
                                         latent_dim=3).validate()
  the_plan = plan.make(config, (28, 28, 1))
  assert the_plan.precision == 'mixed_bfloat16'
  trained = models.build_model(config, the_plan=the_plan)
  copy = models.in_float32(trained, config, the_plan)
  assert copy is not trained
  assert copy.decoder.network.layers[-1].compute_dtype == 'float32'
  for a, b in zip(trained.weights, copy.weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  x = tf.random.stateless_uniform([4, 28, 28, 1], [1, 2])
  # The same function, in 8-bit mantissas against 24.
  np.testing.assert_allclose(copy.encode(x).mean(), trained.encode(x).mean(),
                             atol=0.05)
  float32 = config.replace(precision='float32')
  model = models.build_model(float32, (28, 28, 1))
  assert models.in_float32(model, float32, plan.make(
      float32, (28, 28, 1))) is model


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
