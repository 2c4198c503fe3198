"""The importance-weighted estimate of log p(x) on held-out images.

test_iwae_log_likelihood is the bound of Burda et al.,
log p(x) >= E[log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x)], z_i ~ r(z|x),
computed from the model's one log-weight function
(`LatentVariableModel.log_weights`) and reduced by logsumexp.  r is q(z|x)
for a Gaussian encoder.  The MMD-VAE's q(z|x) is a point mass, which cannot
be a proposal (its density ratio is undefined), so r = N(f(x), s^2 I) around
the code f(x), s = the proposal scale.  Any proposal gives a lower bound in
expectation that tightens to log p(x) as k grows; the proposal only changes
how fast.  With the Bernoulli likelihood on grey-level pixels p(x|z) is the
articles' cross-entropy, not a normalised density: compare these numbers
between models, not with binarised-MNIST literature.
"""

import numpy as np
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.nn import losses
from tfp_vae.model import models as models_lib
from tfp_vae.internal import progress as progress_lib

_DEFAULTS = config_lib.EvalConfig()
DEFAULT_SAMPLES = _DEFAULTS.iwae_samples
DEFAULT_PROPOSAL_SCALE = _DEFAULTS.proposal_scale
DEFAULT_IMAGES_PER_CALL = _DEFAULTS.images_per_call


def log_importance_weights(model, images: tf.Tensor, num_samples,
                           seed: tf.Tensor,
                           proposal_scale: float = DEFAULT_PROPOSAL_SCALE
                           ) -> tf.Tensor:
  """log w_i for k = `num_samples` codes z_i ~ r(z|x), [k, B]; r is q(z|x),
  or for a point-mass q a Gaussian of scale `proposal_scale` around it.
  `model` needs `encode`, `decode` and `prior_distribution`."""
  proposal = losses.proposal(model.encode(images), proposal_scale)
  codes = proposal.sample(num_samples, seed=seed)  # [k, B, latent]
  return losses.log_importance_weights(
      images, proposal, model.prior_distribution(), model.decode, codes)


def iwae_log_likelihood(model, images: np.ndarray,
                        num_samples: int = DEFAULT_SAMPLES, seed: int = 0,
                        proposal_scale: float = DEFAULT_PROPOSAL_SCALE,
                        images_per_call: int = DEFAULT_IMAGES_PER_CALL
                        ) -> np.ndarray:
  """The k-sample importance-weighted estimate of log p(x), per image [N].

  Work is batched so that one call decodes about `images_per_call` latent
  samples (images x samples), whatever k is: memory stays bounded and k =
  1000 on 1,000 test images is 1M decodes in 500 calls.  The k samples of an
  image are drawn in chunks and combined with a running logsumexp.  Progress
  is logged (`tfp_vae.internal.progress`).

  Args:
    model: a `models.LatentVariableModel`.
    images: [N, H, W, C] float32.
    num_samples: k >= 1.
    seed: draws are a deterministic function of (seed, batch, chunk).
    proposal_scale: see `log_importance_weights`.
    images_per_call: memory/throughput knob.

  Returns:
    float64 [N] estimates in nats.
  """
  if num_samples < 1:
    raise ValueError(f'num_samples must be >= 1, got {num_samples}')
  chunk = min(num_samples, images_per_call)
  batch = max(1, images_per_call // chunk)
  weights = _traced(model)
  bar = progress_lib.Progress(f'IWAE log-likelihood (k={num_samples})',
                              len(images))
  out = np.empty(len(images), np.float64)
  for b, start in enumerate(range(0, len(images), batch)):
    x = tf.constant(images[start:start + batch])
    total = np.full(len(x), -np.inf)
    for c, first in enumerate(range(0, num_samples, chunk)):
      k = min(chunk, num_samples - first)
      seed_pair = tf.constant([seed, b * 100003 + c], tf.int32)
      logw = weights(x, tf.constant(k), seed_pair,
                     tf.constant(proposal_scale, tf.float32)).numpy()
      total = np.logaddexp(total, np.logaddexp.reduce(
          logw.astype(np.float64), axis=0))
    out[start:start + len(x)] = total - np.log(num_samples)
    bar.update(len(x))
  return out


def _traced(model):
  """The log-weight function traced once per model."""

  def build():
    @tf.function(reduce_retracing=True, autograph=False)
    def weights(x, k, seed_pair, scale):
      return log_importance_weights(model, x, k, seed_pair, scale)
    return weights

  return models_lib.cached_function(model, 'log_importance_weights', build)
