"""Loss terms as pure functions over distributions.

Per-example terms return shape [B]; batch statistics (MMD) return a scalar.
Names follow the rate-distortion reading of the ELBO:

  distortion(x) = -E_q(z|x)[log p(x|z)]        (estimated with one z ~ q)
  rate(x)       = KL(q(z|x) || p(z))
  -ELBO(x)      = distortion(x) + rate(x)

Reduction over the batch happens in one place, `models.LatentVariableModel`.
"""

from typing import Callable

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

Kernel = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]


def distortion(likelihood: tfd.Distribution, images: tf.Tensor) -> tf.Tensor:
  """-log p(x|z) per image, in nats. Shape [B]."""
  return -likelihood.log_prob(images)


def analytic_rate(posterior: tfd.Distribution,
                  prior: tfd.Distribution) -> tf.Tensor:
  """KL(q(z|x) || p(z)) in closed form (`tfd.kl_divergence`). Shape [B]."""
  return tfd.kl_divergence(posterior, prior)


def sampled_rate(posterior: tfd.Distribution, prior: tfd.Distribution,
                 codes: tf.Tensor) -> tf.Tensor:
  """One-sample estimate log q(z|x) - log p(z) at z = `codes`. Shape [B].

  With this rate, -(distortion + rate) is the source's Monte-Carlo ELBO
  log p(x|z) + log p(z) - log q(z|x).
  """
  return posterior.log_prob(codes) - prior.log_prob(codes)


def elbo_terms(images: tf.Tensor, posterior: tfd.Distribution,
               prior: tfd.Distribution, likelihood: tfd.Distribution,
               codes: tf.Tensor, kl_estimator: str = 'analytic'
               ) -> dict[str, tf.Tensor]:
  """Per-example ELBO terms.

  Args:
    images: x, [B, H, W, C].
    posterior: q(z|x), batch [B], event [latent].
    prior: p(z), batch [], event [latent].
    likelihood: p(x|z) at z = `codes`, batch [B], event [H, W, C].
    codes: z ~ q(z|x), [B, latent].
    kl_estimator: 'analytic' or 'sampled'.

  Returns:
    {'distortion', 'rate', 'neg_elbo'}, each [B], in nats.
  """
  d = distortion(likelihood, images)
  if kl_estimator == 'analytic':
    r = analytic_rate(posterior, prior)
  elif kl_estimator == 'sampled':
    r = sampled_rate(posterior, prior, codes)
  else:
    raise ValueError(f'kl_estimator must be analytic or sampled, got '
                     f'{kl_estimator!r}')
  return {'distortion': d, 'rate': r, 'neg_elbo': d + r}


def squared_distances(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """||x_i - y_j||^2 for all pairs, [N, M], without an [N, M, dim] tile."""
  xx = tf.reduce_sum(tf.square(x), axis=-1)[:, None]
  yy = tf.reduce_sum(tf.square(y), axis=-1)[None, :]
  # Cancellation can leave tiny negatives where x_i == y_j.
  return tf.maximum(xx + yy - 2.0 * tf.matmul(x, y, transpose_b=True), 0.0)


def sources_gaussian_kernel(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """The sources' kernel k(x, y) = exp(-mean_d((x_d - y_d)^2) / dim).

  That is exp(-||x - y||^2 / dim^2): a Gaussian kernel whose bandwidth grows
  with the latent size.  Returns [N, M].
  """
  dim = tf.cast(tf.shape(x)[-1], x.dtype)
  return tf.exp(-squared_distances(x, y) / (dim * dim))


def mmd(x: tf.Tensor, y: tf.Tensor,
        kernel: Kernel = sources_gaussian_kernel) -> tf.Tensor:
  """Biased (V-statistic) estimate of MMD^2 between samples x and y.

  MMD^2 = E[k(x, x')] + E[k(y, y')] - 2 E[k(x, y)], each expectation a mean
  over all pairs including i == j, exactly as the sources compute it.

  Args:
    x: [N, dim] samples of one distribution.
    y: [M, dim] samples of the other.
    kernel: k(a, b) -> [len(a), len(b)].

  Returns:
    A scalar >= 0 (up to rounding).
  """
  return (tf.reduce_mean(kernel(x, x)) + tf.reduce_mean(kernel(y, y)) -
          2.0 * tf.reduce_mean(kernel(x, y)))
