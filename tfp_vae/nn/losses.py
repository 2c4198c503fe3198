"""Loss terms as pure functions over distributions.

Per-example terms return shape [B]; batch statistics (MMD) return a scalar.
Names follow the rate-distortion reading of the ELBO:

  distortion(x) = -E_q(z|x)[log p(x|z)]        (estimated with one z ~ q)
  rate(x)       = KL(q(z|x) || p(z))
  -ELBO(x)      = distortion(x) + rate(x)

Likelihood bounds come from one set of log importance weights
(`log_importance_weights`, [k, B] for k codes z_i ~ r(z|x)):

  log w_i = log p(x|z_i) + log p(z_i) - log r(z_i|x)
  ELBO    = mean_i log w_i                      (`elbo`; r = q)
  IWAE    = logsumexp_i log w_i - log k         (`iwae_bound`)

TensorFlow Probability's VAE example reduces its [samples, batch] tensor the
same two ways.  Reduction over the batch happens in one place,
`models.LatentVariableModel`.
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


def squared_distances(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """||x_i - y_j||^2 for all pairs, [N, M], without an [N, M, dim] tile."""
  xx = tf.reduce_sum(tf.square(x), axis=-1)[:, None]
  yy = tf.reduce_sum(tf.square(y), axis=-1)[None, :]
  # Cancellation can leave tiny negatives where x_i == y_j.
  return tf.maximum(xx + yy - 2.0 * tf.matmul(x, y, transpose_b=True), 0.0)


def gaussian_dim_kernel(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
  """The MMD-VAE article's kernel k(x, y) = exp(-mean_d((x_d - y_d)^2) / dim).

  That is exp(-||x - y||^2 / dim^2): a Gaussian kernel whose bandwidth grows
  with the latent size.  Returns [N, M].
  """
  dim = tf.cast(tf.shape(x)[-1], x.dtype)
  return tf.exp(-squared_distances(x, y) / (dim * dim))


def rbf_kernel(bandwidth: float) -> Kernel:
  """k(x, y) = exp(-||x - y||^2 / (2 bandwidth^2))."""
  def kernel(x, y):
    return tf.exp(-squared_distances(x, y) / (2.0 * bandwidth**2))
  return kernel


IMQ_SCALES = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)


def imq_kernel(scales=IMQ_SCALES) -> Kernel:
  """Inverse multiquadrics summed over scales (Tolstikhin et al., WAE):
  k(x, y) = sum_s C_s / (C_s + ||x - y||^2), C_s = 2 dim s^2.  Heavy tails:
  the gradient does not vanish for codes far from the prior's mass."""
  def kernel(x, y):
    dim = tf.cast(tf.shape(x)[-1], x.dtype)
    d2 = squared_distances(x, y)
    return tf.add_n([2.0 * dim * s**2 / (2.0 * dim * s**2 + d2)
                     for s in scales])
  return kernel


def make_kernel(name: str = 'gaussian_dim',
                scales: tuple[float, ...] = ()) -> Kernel:
  """'gaussian_dim' (the MMD-VAE article's Gaussian kernel, bandwidth from
  the latent dimension), 'rbf' (bandwidth scales[0], default 1) or 'imq'
  (scales, default IMQ_SCALES)."""
  if name == 'gaussian_dim':
    return gaussian_dim_kernel
  if name == 'rbf':
    return rbf_kernel(float(scales[0]) if scales else 1.0)
  if name == 'imq':
    return imq_kernel(tuple(scales) or IMQ_SCALES)
  raise ValueError(f"kernel must be one of ['gaussian_dim', 'rbf', 'imq'], got "
                   f'{name!r}')


MMD_BLOCK_ROWS = 500


def _kernel_sums(kernel: Kernel, a: tf.Tensor, b: tf.Tensor,
                 diagonal: bool = False) -> tuple[tf.Tensor, tf.Tensor]:
  """(sum_ij k(a_i, b_j), and with `diagonal` (b is a) sum_i k(a_i, a_i)),
  in blocks of MMD_BLOCK_ROWS rows of a, so that at most MMD_BLOCK_ROWS x
  len(b) kernel values exist at once.  A training batch is one block: one
  kernel call."""
  rows = a.shape[0]
  if rows is None or rows <= MMD_BLOCK_ROWS:
    bounds = [(None, None)]
  else:
    bounds = [(start, min(start + MMD_BLOCK_ROWS, rows))
              for start in range(0, rows, MMD_BLOCK_ROWS)]
  total = trace = tf.zeros([], a.dtype)
  for start, end in bounds:
    k = kernel(a if start is None else a[start:end], b)
    total += tf.reduce_sum(k)
    if diagonal:
      trace += tf.linalg.trace(k if start is None else k[:, start:end])
  return total, trace


def mmd(x: tf.Tensor, y: tf.Tensor,
        kernel: Kernel = gaussian_dim_kernel,
        unbiased: bool = False) -> tf.Tensor:
  """Estimate of MMD^2 between samples x and y.

  MMD^2 = E[k(x, x')] + E[k(y, y')] - 2 E[k(x, y)].  The biased
  (V-statistic) estimate takes each expectation as a mean over all pairs
  including i == j, exactly as the articles compute it; it is >= 0.  The
  unbiased (U-statistic) estimate leaves the i == j terms out of the first
  two means; its expectation is the true MMD^2 (0 when x and y come from the
  same distribution), so it can be slightly negative.  More than
  MMD_BLOCK_ROWS samples (the test set's 2,000 codes) are summed in blocks
  of rows, which bounds memory and changes the result by float rounding
  only.

  Args:
    x: [N, dim] samples of one distribution.
    y: [M, dim] samples of the other.
    kernel: k(a, b) -> [len(a), len(b)].
    unbiased: the U-statistic instead of the V-statistic.

  Returns:
    A scalar.
  """
  n = tf.cast(tf.shape(x)[0], x.dtype)
  m = tf.cast(tf.shape(y)[0], y.dtype)
  sum_xx, trace_xx = _kernel_sums(kernel, x, x, diagonal=unbiased)
  sum_yy, trace_yy = _kernel_sums(kernel, y, y, diagonal=unbiased)
  mean_xy = _kernel_sums(kernel, x, y)[0] / (n * m)
  if not unbiased:
    return sum_xx / (n * n) + sum_yy / (m * m) - 2.0 * mean_xy
  within_x = (sum_xx - trace_xx) / (n * (n - 1.0))
  within_y = (sum_yy - trace_yy) / (m * (m - 1.0))
  return within_x + within_y - 2.0 * mean_xy


def rate(posterior: tfd.Distribution, prior: tfd.Distribution,
         codes: tf.Tensor, estimator: str = 'analytic') -> tf.Tensor:
  """KL(q(z|x) || p(z)) per example: closed form when asked and TFP has one
  for this pair, else the one-sample estimate at `codes`.  [B]."""
  if estimator == 'analytic':
    try:
      return analytic_rate(posterior, prior)
    except NotImplementedError:
      pass  # e.g. a mixture prior: no closed form
  return sampled_rate(posterior, prior, codes)


def proposal(posterior: tfd.Distribution,
             point_mass_scale: float) -> tfd.Distribution:
  """The importance-sampling proposal r(z|x): q(z|x) itself, or for a point
  mass (which has no density) a Gaussian of standard deviation
  `point_mass_scale` around it."""
  if isinstance(posterior, tfd.VectorDeterministic):
    loc = posterior.loc
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.fill(
        tf.shape(loc), tf.cast(point_mass_scale, loc.dtype)))
  return posterior


def log_importance_weights(images: tf.Tensor, proposal: tfd.Distribution,
                           prior: tfd.Distribution, decode,
                           codes: tf.Tensor) -> tf.Tensor:
  """log p(x|z_i) + log p(z_i) - log r(z_i|x) at codes z_i ~ r(z|x), [k, B].

  Args:
    images: x, [B, ...].
    proposal: r(z|x), batch [B], event [latent].
    prior: p(z).
    decode: z [N, latent] -> p(x|z) with batch [N].
    codes: [k, B, latent].
  """
  k = tf.shape(codes)[0]
  batch = tf.shape(images)[0]
  flat = tf.reshape(codes, tf.concat([[-1], tf.shape(codes)[2:]], 0))
  tiled = tf.reshape(
      tf.broadcast_to(images[None], tf.concat([[k], tf.shape(images)], 0)),
      tf.concat([[-1], tf.shape(images)[1:]], 0))
  log_lik = tf.reshape(decode(flat).log_prob(tiled), [k, batch])
  return log_lik + prior.log_prob(codes) - proposal.log_prob(codes)


def elbo(log_weights: tf.Tensor) -> tf.Tensor:
  """The ELBO estimate from log weights [k, B] drawn from q: mean over k,
  [B]."""
  return tf.reduce_mean(log_weights, axis=0)


def iwae_bound(log_weights: tf.Tensor) -> tf.Tensor:
  """The k-sample importance-weighted bound from log weights [k, B]:
  log (1/k) sum_i w_i, [B]."""
  k = tf.cast(tf.shape(log_weights)[0], log_weights.dtype)
  return tf.reduce_logsumexp(log_weights, axis=0) - tf.math.log(k)
