"""The test metrics (tfp_vae/evaluation/metrics.py) on constructed cases with
known answers, and a member's own objective terms among them."""

import dataclasses
from typing import ClassVar

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family
from tfp_vae.nn import losses
from tfp_vae.evaluation import metrics
from tfp_vae.model import models as models_lib
from tfp_vae.internal import testing

tfd = tfp.distributions


def test_active_units_counts_variances_above_threshold():
  rng = np.random.default_rng(0)
  stds = np.array([1.0, 0.5, 0.03, 0.0])  # variances 1, .25, .0009, 0
  codes = rng.normal(size=(5000, 4)) * stds
  count, variances = metrics.active_units(codes)
  assert count == 2
  np.testing.assert_allclose(variances, stds**2, rtol=0.1, atol=1e-4)


def test_mmd_to_prior_is_near_zero_for_prior_samples():
  prior = tfd.MultivariateNormalDiag(tf.zeros(2))
  same = float(losses.mmd(prior.sample(1000, seed=(1, 1)),
                          prior.sample(1000, seed=(2, 2))))
  shifted = float(losses.mmd(prior.sample(1000, seed=(1, 1)) + 1.0,
                             prior.sample(1000, seed=(2, 2))))
  assert abs(same) < 2e-3
  assert shifted > 50 * abs(same)


# -- a member's own terms reach the test metrics -------------------------------


@dataclasses.dataclass(frozen=True)
class _TermsVAE(family.Member):
  """A VAE whose objective has two terms of its own: a per-example
  `code_norm` (|E[q(z|x)]|^2, no noise) and a batch term `spread` (the
  mean square of the batch's codes)."""
  name: ClassVar[str] = 'terms_vae'
  summary: ClassVar[str] = 'a VAE with a code-norm and a spread term'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate',
                                      'code_norm', 'spread')
  batch_term_names: ClassVar[tuple[str, ...]] = ('spread',)

  def per_example(self, model, images, seed):
    posterior = model.encode(images)
    codes = model.sample_codes(posterior, seed)
    distortion = losses.distortion(model.decode(codes), images)
    rate = losses.rate(posterior, model.prior_distribution(), codes)
    norm = tf.reduce_sum(tf.square(posterior.mean()), -1)
    return {'loss': distortion + rate + norm, 'distortion': distortion,
            'rate': rate, 'code_norm': norm}, codes

  def batch_terms(self, model, codes, seed):
    return {'spread': tf.reduce_mean(tf.square(codes))}


def _model(member: str):
  cfg = config_lib.TrainConfig.create(
      model=member, latent_dim=2, architecture='mlp').validate()
  return models_lib.build_model(cfg, (8, 8, 1), seed=0)


def test_a_members_own_terms_reach_the_test_metrics():
  images = np.random.default_rng(0).uniform(size=(30, 8, 8, 1)).astype(
      np.float32)
  family.register(_TermsVAE)
  try:
    model = _model('terms_vae')
    out, terms = metrics.test_set_metrics(model, images, seed=3)
  finally:
    testing.unregister(family.MEMBERS, 'terms_vae')
  norms = np.sum(np.square(model.encode(images).mean().numpy()), -1)
  np.testing.assert_allclose(out['test_code_norm'], norms.mean(), rtol=1e-5)
  np.testing.assert_allclose(out['test_spread'],
                             np.mean(np.square(terms['code_sample'])),
                             rtol=1e-5)
  # The objective is the sum of its parts, on the same draws.
  np.testing.assert_allclose(
      out['test_loss'], out['test_reconstruction_nll'] + out['test_rate'] +
      out['test_code_norm'] + out['test_spread'], rtol=1e-5)
  # Terms the generic metrics define keep their names: no duplicates.
  assert 'test_distortion' not in out


def test_the_mmd_vaes_mmd_term_is_a_test_metric():
  images = np.random.default_rng(1).uniform(size=(30, 8, 8, 1)).astype(
      np.float32)
  out, _ = metrics.test_set_metrics(_model('mmd_vae'), images, seed=0)
  # loss = distortion + mmd_weight * MMD: the weighted term, as training
  # reports train_mmd.
  np.testing.assert_allclose(out['test_loss'],
                             out['test_reconstruction_nll'] + out['test_mmd'],
                             rtol=1e-5)
  assert out['test_mmd'] > 0
  assert 'test_mmd' not in metrics.test_set_metrics(_model('vae'), images)[0]
