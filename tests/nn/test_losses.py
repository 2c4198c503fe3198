"""Loss terms against closed forms, scipy and an independent NumPy MMD."""

import numpy as np
import pytest
from scipy import stats
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import losses

tfd = tfp.distributions


def _posterior(rng, batch=5, dim=3):
  loc = rng.normal(size=(batch, dim)).astype(np.float32)
  scale = rng.uniform(0.2, 2.0, size=(batch, dim)).astype(np.float32)
  return loc, scale, tfd.MultivariateNormalDiag(loc, scale)


def _standard_normal(dim=3):
  return tfd.MultivariateNormalDiag(tf.zeros(dim), tf.ones(dim))


def test_analytic_rate_matches_closed_form():
  loc, scale, q = _posterior(np.random.default_rng(0))
  # KL(N(m, s^2) || N(0, 1)) = 0.5 * sum(s^2 + m^2 - 1 - log s^2)
  expected = 0.5 * np.sum(scale**2 + loc**2 - 1 - np.log(scale**2), axis=-1)
  got = losses.analytic_rate(q, _standard_normal()).numpy()
  assert got.shape == (5,)
  np.testing.assert_allclose(got, expected, rtol=1e-5)


def test_sampled_rate_is_unbiased_for_the_analytic_kl():
  _, _, q = _posterior(np.random.default_rng(1))
  p = _standard_normal()
  z = q.sample(20000, seed=(1, 2))  # [20000, 5, 3]
  mc = tf.reduce_mean(losses.sampled_rate(q, p, z), axis=0).numpy()
  exact = losses.analytic_rate(q, p).numpy()
  # Standard error of the mean is below 0.03 for these scales.
  np.testing.assert_allclose(mc, exact, atol=0.1)


def elbo_terms(images, posterior, prior, likelihood, codes,
               kl_estimator='analytic'):
  """Per-example ELBO terms from the loss functions (distortion, rate,
  their sum), the estimator checked."""
  if kl_estimator not in ('analytic', 'sampled'):
    raise ValueError(f'kl_estimator must be analytic or sampled, got '
                     f'{kl_estimator!r}')
  d = losses.distortion(likelihood, images)
  r = losses.rate(posterior, prior, codes, kl_estimator)
  return {'distortion': d, 'rate': r, 'neg_elbo': d + r}


def test_elbo_terms_sum_and_estimators():
  rng = np.random.default_rng(2)
  _, _, q = _posterior(rng)
  p = _standard_normal()
  z = q.sample(seed=(3, 4))
  x = (rng.uniform(size=(5, 4, 4, 1)) > 0.5).astype(np.float32)
  lik = tfd.Independent(tfd.Bernoulli(logits=tf.zeros([5, 4, 4, 1]),
                                      dtype=tf.float32), 3)
  for est in ('analytic', 'sampled'):
    t = elbo_terms(x, q, p, lik, z, est)
    np.testing.assert_allclose(t['neg_elbo'], t['distortion'] + t['rate'],
                               rtol=1e-6)
  # logits 0: every pixel costs log 2.
  np.testing.assert_allclose(t['distortion'], 16 * np.log(2), rtol=1e-6)
  sampled = elbo_terms(x, q, p, lik, z, 'sampled')['neg_elbo']
  # The source's estimate: -(log p(x|z) + log p(z) - log q(z|x)).
  source = -(lik.log_prob(x) + p.log_prob(z) - q.log_prob(z))
  np.testing.assert_allclose(sampled, source, rtol=1e-6)
  with pytest.raises(ValueError, match='kl_estimator'):
    elbo_terms(x, q, p, lik, z, 'exact')


def test_bernoulli_distortion_matches_scipy():
  rng = np.random.default_rng(3)
  logits = rng.normal(size=(2, 3, 3, 1)).astype(np.float32)
  x = (rng.uniform(size=logits.shape) > 0.5).astype(np.float32)
  lik = tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32), 3)
  probs = 1 / (1 + np.exp(-logits))
  expected = -stats.bernoulli.logpmf(x, probs).reshape(2, -1).sum(-1)
  np.testing.assert_allclose(losses.distortion(lik, x), expected, rtol=1e-5)


def test_gaussian_distortion_matches_scipy_and_squared_error():
  rng = np.random.default_rng(4)
  loc = rng.uniform(size=(2, 3, 3, 1)).astype(np.float32)
  x = rng.uniform(size=loc.shape).astype(np.float32)
  s = 0.1
  lik = tfd.Independent(tfd.Normal(loc, s), 3)
  expected = -stats.norm.logpdf(x, loc, s).reshape(2, -1).sum(-1)
  got = losses.distortion(lik, x).numpy()
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  # The documented correspondence with the articles' squared error.
  sse = ((x - loc)**2).reshape(2, -1).sum(-1)
  const = 9 * np.log(s * np.sqrt(2 * np.pi))
  np.testing.assert_allclose(got, sse / (2 * s * s) + const, rtol=1e-5)


def _numpy_sources_mmd(x, y):
  """Port of the articles' compute_kernel/compute_mmd (tiled, NumPy)."""

  def kernel(a, b):
    diff = a[:, None, :] - b[None, :, :]
    return np.exp(-np.mean(diff**2, axis=2) / a.shape[1])

  return kernel(x, x).mean() + kernel(y, y).mean() - 2 * kernel(x, y).mean()


@pytest.mark.parametrize('dim', [1, 2, 16])
def test_mmd_matches_numpy_port_of_the_sources(dim):
  rng = np.random.default_rng(dim)
  x = rng.normal(size=(50, dim)).astype(np.float32)
  y = (rng.normal(size=(70, dim)) * 1.5 + 0.3).astype(np.float32)
  np.testing.assert_allclose(losses.mmd(x, y), _numpy_sources_mmd(x, y),
                             rtol=1e-4, atol=1e-6)


def test_kernel_is_exp_of_squared_distance_over_dim_squared():
  x = np.array([[0.0, 0.0], [1.0, 2.0]], np.float32)
  y = np.array([[3.0, -1.0]], np.float32)
  k = losses.gaussian_dim_kernel(x, y).numpy()
  np.testing.assert_allclose(k[:, 0], np.exp(-np.array([10.0, 13.0]) / 4),
                             rtol=1e-6)


def test_mmd_near_zero_for_one_distribution_and_grows_with_shift():
  rng = np.random.default_rng(5)
  a = rng.normal(size=(500, 2)).astype(np.float32)
  b = rng.normal(size=(500, 2)).astype(np.float32)
  same = float(losses.mmd(a, b))
  values = [float(losses.mmd(a, b + shift)) for shift in (0.5, 1.0, 2.0)]
  assert abs(same) < 0.01
  assert same < values[0] < values[1] < values[2]
  assert values[0] > 5 * abs(same)


def test_eager_and_tf_function_agree():
  rng = np.random.default_rng(6)
  _, _, q = _posterior(rng)
  x = rng.normal(size=(40, 3)).astype(np.float32)
  y = rng.normal(size=(30, 3)).astype(np.float32)

  def f(x, y, loc, scale):
    q = tfd.MultivariateNormalDiag(loc, scale)
    return (losses.mmd(x, y), losses.analytic_rate(q, _standard_normal()))

  args = (x, y, q.mean(), q.stddev())
  eager = f(*args)
  graph = tf.function(f)(*args)
  for e, g in zip(eager, graph):
    np.testing.assert_allclose(e, g, rtol=1e-6)


def _dense_mmd(x, y, kernel, unbiased):
  """The estimator with whole kernel matrices in float64 (the formula before
  row blocks)."""
  kxx, kyy, kxy = (np.asarray(kernel(a, b), np.float64) for a, b in
                   ((x, x), (y, y), (x, y)))
  if not unbiased:
    return kxx.mean() + kyy.mean() - 2 * kxy.mean()
  n, m = len(x), len(y)
  return ((kxx.sum() - np.trace(kxx)) / (n * (n - 1)) +
          (kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


@pytest.mark.parametrize('kernel', ['gaussian_dim', 'rbf', 'imq'])
@pytest.mark.parametrize('unbiased', [False, True])
@pytest.mark.parametrize('sizes', [(100, 100), (1234, 1100)])
def test_mmd_in_row_blocks_equals_whole_kernel_matrices(kernel, unbiased,
                                                       sizes):
  # (100, 100): a training batch, one block; (1234, 1100): the test set's
  # codes, three blocks of MMD_BLOCK_ROWS rows and a partial one.
  assert sizes[0] > 2 * losses.MMD_BLOCK_ROWS or sizes[0] == 100
  rng = np.random.default_rng(sizes[0])
  x = rng.normal(size=(sizes[0], 2)).astype(np.float64)
  y = (rng.normal(size=(sizes[1], 2)) * 1.3 + 0.2).astype(np.float64)
  k = losses.make_kernel(kernel)
  expected = _dense_mmd(x, y, k, unbiased)
  got = losses.mmd(x.astype(np.float32), y.astype(np.float32), k, unbiased)
  np.testing.assert_allclose(float(got), expected, rtol=1e-5, atol=5e-6)
  graph = tf.function(lambda a, b: losses.mmd(a, b, k, unbiased))(
      x.astype(np.float32), y.astype(np.float32))
  np.testing.assert_allclose(float(graph), expected, rtol=1e-5, atol=5e-6)
