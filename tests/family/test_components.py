"""The family's parts (tfp_vae/family/components.py): likelihoods and
architectures, and every allowed (model, prior, likelihood, architecture)
combination."""

import itertools
import os

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import allowed_combinations, build_model as _model, covering
from tfp_vae.family import components
from tfp_vae.internal import errors

SEED = tf.constant([3, 4], tf.int32)


def test_an_architecture_refuses_a_shape_it_cannot_take_naming_one_that_can():
  with pytest.raises(errors.ConfigError,
                     match=r'architecture needs .*divisible by 4, got '
                     r'\(30, 30, 1\); --architecture=mlp takes it'):
    components.check_architecture('conv', (30, 30, 1))
  with pytest.raises(errors.ConfigError, match='divisible by 8.*conv takes'):
    components.check_architecture('conv_deep', (28, 28, 1))
  components.check_architecture('conv_deep', (32, 32, 3))


@pytest.mark.parametrize('likelihood,shape', [
    ('gaussian_learned', ()), ('gaussian_per_pixel', (28, 28, 1))])
def test_learned_gaussian_scale_is_trained(images, likelihood, shape):
  model = _model(model='vae', likelihood=likelihood, gaussian_scale=0.2)
  scale = model.decoder.scale()
  assert tuple(scale.shape) == shape
  np.testing.assert_allclose(scale, 0.2, rtol=1e-4)
  with tf.GradientTape() as tape:
    loss, _ = model.objective(images, SEED)
  grad = tape.gradient(loss, model.decoder.raw_scale)
  assert grad is not None and np.any(grad.numpy() != 0)


ALLOWED = allowed_combinations()


def _pairwise(combos):
  """A few combinations that hold every allowed pair of values of any two
  factors at least once (all-pairs testing): what the full suite runs."""
  def pairs(combo):
    return {(i, combo[i], j, combo[j])
            for i, j in itertools.combinations(range(len(combo)), 2)}
  needed = set().union(*map(pairs, combos))
  chosen = []
  while needed:
    best = max(combos, key=lambda c: len(pairs(c) & needed))
    chosen.append(best)
    needed -= pairs(best)
  return chosen


# The fast tier runs these, the full suite all of them.
FAST = set(covering(ALLOWED))


# Every allowed combination (220) costs about 6 min of one core, a tenth of
# the suite; the pairs catch an interaction of any two parts.
# TFP_VAE_ALL_COMBINATIONS=1 (make test-all-combinations) runs all of them.
PAIRS = FAST | set(_pairwise(ALLOWED))


RUN_COMBINATIONS = (ALLOWED if os.environ.get('TFP_VAE_ALL_COMBINATIONS')
                    else [c for c in ALLOWED if c in PAIRS])


def test_allowed_combinations_are_all_but_vamp_with_a_point_mass():
  # 5 likelihoods, 4 architectures, 4 members by 3 priors but one.
  assert len(ALLOWED) == 5 * 4 * (3 * 4 - 1)


@pytest.mark.parametrize('combo', [
    pytest.param(c, marks=() if c in FAST else pytest.mark.slow)
    for c in RUN_COMBINATIONS], ids='-'.join)
def test_every_allowed_combination_trains_serves_and_evaluates(combo):
  """For each allowed combination: one Adam step (finite loss, a gradient
  for every variable), every serving endpoint run eagerly (the SavedModel's
  functions, without writing one), and the IWAE evaluation's importance
  weights.  SavedModels themselves are written by
  test_family_members_train_export_and_evaluate."""
  from tfp_vae.model import export  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import likelihood as likelihood_lib  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  model_name, prior, likelihood, arch = combo
  shape = (32, 32, 3) if arch == 'conv_deep' else (28, 28, 1)
  x = tf.constant(rng.uniform(size=(4, *shape)).astype(np.float32))
  model = _model(shape, model=model_name, prior=prior,
                 likelihood=likelihood, architecture=arch,
                 prior_components=2, latent_dim=3)
  where = combo
  with tf.GradientTape() as tape:
    loss, _ = model.objective(x, SEED)
  variables = model.trainable_variables
  grads = tape.gradient(loss, variables)
  assert np.isfinite(float(loss)), where
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing, (where, missing)
  keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, variables))
  fns = export.endpoints(model, shape)
  outs = {'encode': fns['encode'][0](x),
          'decode': fns['decode'][0](tf.zeros([2, 3])),
          'reconstruct': fns['reconstruct'][0](x),
          'sample': fns['sample'][0](tf.constant(2), tf.constant(0)),
          'log_likelihood': fns['log_likelihood'][0](x)}
  for name, out in outs.items():
    for key, value in out.items():
      assert np.all(np.isfinite(value.numpy())), (where, name, key)
  assert outs['sample']['images'].shape == (2, *shape), where
  log_w = likelihood_lib.log_importance_weights(model, x, 2, SEED)
  assert log_w.shape == (2, 4) and np.all(np.isfinite(log_w)), where


def test_conv_deep_refuses_images_it_cannot_downsample():
  with pytest.raises(errors.ConfigError, match='divisible by 8'):
    _model((28, 28, 1), architecture='conv_deep')
