"""Metrics on constructed cases with known answers."""

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.experiment import comparison
from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family
from tfp_vae.nn import losses
from tfp_vae.evaluation import frechet
from tfp_vae.model import likelihood
from tfp_vae.evaluation import metrics
from tfp_vae.model import models as models_lib
from tfp_vae.evaluation import probes
from tfp_vae.experiment import report
from tfp_vae.internal import testing

tfd = tfp.distributions


class LinearGaussian:
  """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): log p(x) in closed form.

  The encoder is a deliberately imperfect diagonal approximation of the exact
  (full-covariance) posterior, or a point mass at its mean.
  """

  def __init__(self, latent=2, dim=5, noise=0.5, point_mass=False, seed=0):
    rng = np.random.default_rng(seed)
    self.w = rng.normal(size=(dim, latent)).astype(np.float32)
    self.b = rng.normal(size=dim).astype(np.float32)
    self.s = noise
    self.latent = latent
    self.point_mass = point_mass
    cov = np.linalg.inv(np.eye(latent) + self.w.T @ self.w / noise**2)
    self.post_cov = cov.astype(np.float32)
    self.post_gain = (cov @ self.w.T / noise**2).astype(np.float32)

  def encode(self, x):
    loc = tf.matmul(x - self.b, self.post_gain, transpose_b=True)
    if self.point_mass:
      return tfd.VectorDeterministic(loc)
    scale = 1.5 * np.sqrt(np.diag(self.post_cov))
    return tfd.MultivariateNormalDiag(loc, tf.broadcast_to(scale,
                                                           tf.shape(loc)))

  def decode(self, z):
    loc = tf.matmul(z, self.w, transpose_b=True) + self.b
    return tfd.Independent(tfd.Normal(loc, self.s), 1)

  def prior_distribution(self):
    return tfd.MultivariateNormalDiag(tf.zeros(self.latent))

  def exact_log_px(self, x):
    cov = self.w @ self.w.T + self.s**2 * np.eye(len(self.b))
    return scipy.stats.multivariate_normal(self.b, cov).logpdf(x)

  def data(self, n, seed=1):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, self.latent))
    return (z @ self.w.T + self.b + self.s * rng.normal(
        size=(n, len(self.b)))).astype(np.float32)


@pytest.mark.parametrize('point_mass', [False, True])
def test_iwae_matches_closed_form_log_likelihood(point_mass):
  model = LinearGaussian(point_mass=point_mass)
  x = model.data(50)
  estimate = likelihood.iwae_log_likelihood(model, x, num_samples=5000,
                                         proposal_scale=0.5)
  exact = model.exact_log_px(x)
  np.testing.assert_allclose(estimate, exact, atol=0.05)


def test_iwae_bound_is_above_elbo_and_grows_with_k():
  model = LinearGaussian()
  x = model.data(2000)
  posterior = model.encode(x)
  z = posterior.sample(200, seed=(0, 1))
  elbo = np.mean(model.decode(tf.reshape(z, [-1, 2])).log_prob(
      np.tile(x, [200, 1])).numpy().reshape(200, -1) -
                 tfd.kl_divergence(posterior,
                                   model.prior_distribution()).numpy())
  bounds = [likelihood.iwae_log_likelihood(model, x, k).mean()
            for k in (1, 10, 100)]
  assert abs(bounds[0] - elbo) < 0.1  # k = 1 is an ELBO estimate
  assert bounds[1] > elbo + 0.05
  assert bounds[0] < bounds[1] < bounds[2]
  assert bounds[2] <= model.exact_log_px(x).mean() + 0.01


def test_iwae_chunking_does_not_change_the_estimate_distribution():
  model = LinearGaussian()
  x = model.data(40)
  exact = model.exact_log_px(x)
  # One call per image (k = 3000), or 10 chunks of 300 and a last of 0:
  # different draws, the same estimate up to Monte-Carlo error.
  a = likelihood.iwae_log_likelihood(model, x, 3000, images_per_call=6000)
  b = likelihood.iwae_log_likelihood(model, x, 3000, images_per_call=300)
  assert b.shape == (40,)
  assert np.max(np.abs(a - b)) > 0  # really different draws
  np.testing.assert_allclose(a, exact, atol=0.08)
  np.testing.assert_allclose(b, exact, atol=0.08)
  with pytest.raises(ValueError, match='num_samples'):
    likelihood.iwae_log_likelihood(model, x, 0)


def test_active_units_counts_variances_above_threshold():
  rng = np.random.default_rng(0)
  stds = np.array([1.0, 0.5, 0.03, 0.0])  # variances 1, .25, .0009, 0
  codes = rng.normal(size=(5000, 4)) * stds
  count, variances = metrics.active_units(codes)
  assert count == 2
  np.testing.assert_allclose(variances, stds**2, rtol=0.1, atol=1e-4)


def _clustered_codes(n, rng, centres):
  labels = rng.integers(0, len(centres), size=n)
  return centres[labels] + 0.1 * rng.normal(size=centres[labels].shape), labels


@pytest.mark.parametrize('probe', [probes.knn_accuracy,
                                   probes.logistic_regression_accuracy])
def test_probes_are_perfect_on_separable_codes_and_chance_on_shuffled(probe):
  rng = np.random.default_rng(0)
  centres = 10 * rng.normal(size=(10, 3))
  train, train_y = _clustered_codes(2000, rng, centres)
  test, test_y = _clustered_codes(1000, rng, centres)
  assert probe(train, train_y, test, test_y) == 1.0
  shuffled = rng.permutation(train_y)
  chance = probe(train, shuffled, test, rng.permutation(test_y))
  assert 0.05 < chance < 0.16


def test_mmd_to_prior_is_near_zero_for_prior_samples():
  prior = tfd.MultivariateNormalDiag(tf.zeros(2))
  same = float(losses.mmd(prior.sample(1000, seed=(1, 1)),
                          prior.sample(1000, seed=(2, 2))))
  shifted = float(losses.mmd(prior.sample(1000, seed=(1, 1)) + 1.0,
                             prior.sample(1000, seed=(2, 2))))
  assert abs(same) < 2e-3
  assert shifted > 50 * abs(same)


def test_frechet_distance_matches_scipy_and_closed_form():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 6))
  b = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 1.0
  mu_a, mu_b = a.mean(0), b.mean(0)
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  reference = (np.sum((mu_a - mu_b)**2) + np.trace(ca + cb) -
               2 * np.trace(scipy.linalg.sqrtm(ca @ cb).real))
  assert frechet.frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)
  # N(0, I) vs N(m, 4 I) in F dims: |m|^2 + F (1 + 4 - 2 * 2) = |m|^2 + F.
  big_a = rng.normal(size=(100000, 4))
  big_b = 2 * rng.normal(size=(100000, 4)) + 1.0
  assert frechet.frechet_distance(big_a, big_b) == pytest.approx(8.0,
                                                                 rel=0.02)
  assert abs(frechet.frechet_distance(a, a)) < 1e-6


def test_feature_classifier_is_cached_by_data(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(200, 8, 8, 1)).astype(np.float32)
  y = rng.integers(0, 3, size=200)
  first = frechet.feature_classifier(x, y, 3, cache_dir=str(tmp_path),
                                     epochs=1)
  files = list(tmp_path.iterdir())
  assert len(files) == 1
  again = frechet.feature_classifier(x, y, 3, cache_dir=str(tmp_path),
                                     epochs=1)
  np.testing.assert_array_equal(first(x[:4])[0], again(x[:4])[0])
  frechet.feature_classifier(x[::-1], y[::-1], 3, cache_dir=str(tmp_path),
                             epochs=1)
  assert len(list(tmp_path.iterdir())) == 2


# -- a member's own terms reach the test metrics and the report ---------------


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
    out, terms = metrics.evaluate(model, images, seed=3)
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
  out, _ = metrics.evaluate(_model('mmd_vae'), images, seed=0)
  # loss = distortion + mmd_weight * MMD: the weighted term, as training
  # reports train_mmd.
  np.testing.assert_allclose(out['test_loss'],
                             out['test_reconstruction_nll'] + out['test_mmd'],
                             rtol=1e-5)
  assert out['test_mmd'] > 0
  assert 'test_mmd' not in metrics.evaluate(_model('vae'), images)[0]


def test_a_members_own_terms_reach_the_report(tmp_path):
  members = {'vae': family.create('vae'), 'mmd_vae': family.create('mmd_vae')}
  base = config_lib.TrainConfig.create()
  runs = [comparison.Run(label, seed, base) for label in members
          for seed in (0, 1)]
  per_run = {(r.label, r.seed): {'test_reconstruction_nll': 90.0 + r.seed,
                                 'test_loss': 95.0 + r.seed}
             for r in runs}
  for seed in (0, 1):
    per_run[('mmd_vae', seed)]['test_mmd'] = 0.25 + seed
  results = comparison.summarise(runs, per_run, members)
  assert results['models']['mmd_vae']['summary']['test_mmd']['mean'] == 0.75
  assert report.member_metrics(results, members) == [
      ('test_mmd', 'own objective term mmd of mmd_vae (as weighted in its '
       'loss; test split)', '')]
  page = report.write_report(str(tmp_path / 'report.html'), results, {}, {},
                             base, members=members)
  with open(page) as f:
    text = f.read()
  row = text.split('<code>test_mmd</code>', 1)[1].split('</tr>', 1)[0]
  assert 'own objective term mmd of mmd_vae' in row and '>0.75<' in row
