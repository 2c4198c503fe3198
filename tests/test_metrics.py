"""Metrics on constructed cases with known answers."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae import losses
from tfp_vae import frechet
from tfp_vae import likelihood
from tfp_vae import metrics
from tfp_vae import probes

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
