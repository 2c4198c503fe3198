"""Priors (tfp_vae/nn/priors.py): their distributions and parameters."""

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import build_model as _model
from tfp_vae.family import components
from tfp_vae.internal import errors
from tfp_vae.config import settings as config_lib
from tfp_vae.runtime import plan
from tfp_vae.nn import priors

SEED = tf.constant([3, 4], tf.int32)


def test_prior_is_standard_normal():
  p = components.PRIORS.get('normal')().layer(5, 1, None, None).distribution()
  assert p.batch_shape == [] and p.event_shape == [5]
  np.testing.assert_array_equal(p.mean(), 0.0)
  np.testing.assert_array_equal(p.stddev(), 1.0)
  with pytest.raises(errors.ConfigError, match="prior must be one of"):
    components.PRIORS.get('laplace')


def test_one_component_mixture_with_zero_means_is_the_standard_normal():
  mixture = priors.MixturePrior(3, 1, means_initializer='zeros')
  z = tf.random.stateless_normal([100, 3], seed=[1, 1]) * 2
  np.testing.assert_allclose(
      mixture.distribution().log_prob(z),
      priors.StandardNormalPrior(3).distribution().log_prob(z), rtol=1e-5)


def test_mixture_prior_falls_back_to_the_sampled_kl_and_trains(images):
  config = config_lib.TrainConfig.create(model='vae', prior='mixture')
  assert plan.resolve_member(config.model, (28, 28, 1))[0].kl_estimator == (
      'sampled')
  model = _model(model='vae', prior='mixture')
  names = {v.path for v in model.trainable_variables}
  assert any('means' in n for n in names), names
  with tf.GradientTape() as tape:
    loss, _ = model.objective(images, SEED)
  grads = tape.gradient(loss, model.prior.trainable_variables)
  assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_vamp_prior_density_integrates_to_one_on_a_grid():
  model = _model(model='vae', prior='vamp', prior_components=5)
  prior = model.prior_distribution()
  assert prior.event_shape == [2]
  step = 0.02
  axis = np.arange(-8, 8, step, dtype=np.float32) + step / 2
  z1, z2 = np.meshgrid(axis, axis)
  grid = np.stack([z1.ravel(), z2.ravel()], 1)
  mass = float(tf.reduce_sum(tf.exp(prior.log_prob(grid)))) * step * step
  assert mass == pytest.approx(1.0, abs=0.01)
  # The pseudo-inputs are trained through the model's own encoder.
  assert any('pseudo_inputs' in v.path for v in model.trainable_variables)


def test_vamp_prior_needs_a_gaussian_encoder():
  with pytest.raises(errors.ConfigError, match='prior needs an encoder with a '
                     'density'):
    config_lib.TrainConfig.create(model='mmd_vae', prior='vamp').validate()
