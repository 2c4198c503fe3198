"""Evaluation of a trained model on held-out images.

Estimators (all in nats per image, averaged over the test set):

* test_reconstruction_nll: -log p(x|z) at one z ~ q(z|x) per image (for the
  deterministic encoder, z is the code itself).
* test_rate (VAE): KL(q(z|x) || p(z)) in closed form.
* test_neg_elbo (VAE): test_reconstruction_nll + test_rate, an unbiased
  estimate of -ELBO.  Not defined for the MMD-VAE, whose point-mass posterior
  has infinite KL to the prior, so the key is left out there.
* test_mmd_to_prior: MMD^2 (sources' kernel, biased estimate) between one
  code per test image (z ~ q(z|x)) and as many prior samples: how well the
  aggregate posterior q(z) matches p(z).
* test_loss: the training objective on the test set.
"""

from typing import Any

import numpy as np
import tensorflow as tf

from tfp_vae import losses
from tfp_vae import models as models_lib


def encode_all(model: models_lib.LatentVariableModel, images: np.ndarray,
               batch_size: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
  """Per-image terms and codes for `images`.

  Returns:
    {'code_mean': [N, latent], 'code_sample': [N, latent],
     'distortion': [N], and for Gaussian posteriors 'rate': [N]}.
  """

  @tf.function
  def batch_terms(x, step):
    posterior = model.encode(x)
    codes = model.sample_codes(posterior,
                               tf.stack([tf.constant(seed, tf.int32), step]))
    out = {'code_mean': posterior.mean(), 'code_sample': codes,
           'distortion': losses.distortion(model.decode(codes), x)}
    if isinstance(model, models_lib.VAE):
      out['rate'] = losses.analytic_rate(posterior,
                                         model.prior_distribution())
    return out

  parts = []
  for i, start in enumerate(range(0, len(images), batch_size)):
    x = tf.constant(images[start:start + batch_size])
    parts.append({k: v.numpy() for k, v in
                  batch_terms(x, tf.constant(i, tf.int32)).items()})
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def evaluate(model: models_lib.LatentVariableModel, images: np.ndarray,
             seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Test metrics (see module doc) and the per-image arrays behind them."""
  terms = encode_all(model, images, seed=seed)
  out: dict[str, Any] = {
      'test_reconstruction_nll': float(terms['distortion'].mean()),
  }
  codes = tf.constant(terms['code_sample'])
  prior_samples = model.prior_distribution().sample(
      len(images), seed=(seed, 2))
  mmd = float(losses.mmd(codes, prior_samples))
  out['test_mmd_to_prior'] = mmd
  if 'rate' in terms:
    out['test_rate'] = float(terms['rate'].mean())
    out['test_neg_elbo'] = float((terms['distortion'] + terms['rate']).mean())
    out['test_loss'] = out['test_neg_elbo']
  else:
    out['test_loss'] = (out['test_reconstruction_nll'] +
                        model.mmd_weight * mmd)
  return out, terms
