"""The importance-weighted log-likelihood (tfp_vae/model/likelihood.py) on a
linear Gaussian model whose log p(x) is known in closed form."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.model import likelihood


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
