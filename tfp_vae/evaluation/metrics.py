"""The cheap test metrics of a trained model, computed after every epoch and
at the end of a run.

Every metric is an estimate over the test split; likelihoods are in nats per
image (lower negative ELBO is better).

* test_loss: the model's own training objective (`tfp_vae.family.members`) on
  the test set: the mean of its per-example loss (one draw per image) plus its
  batch terms over the set's codes (at most MMD_MAX_CODES of them).
* test_reconstruction_nll: -log p(x|z) at one z ~ q(z|x) per image (for the
  deterministic encoder, z is the code itself).
* test_rate (Gaussian encoders): KL(q(z|x) || p(z)) in closed form, or for
  a prior without one (mixture, vamp) the one-sample estimate
  log q(z|x) - log p(z).
* test_neg_elbo (Gaussian encoders): test_reconstruction_nll + test_rate,
  an unbiased estimate of -ELBO.  Not defined for the MMD-VAE, whose
  point-mass posterior has infinite KL to the prior, so the key is left out
  there.
* test_mmd_to_prior: MMD^2 (the articles' kernel, biased estimate) between one
  code per test image (z ~ q(z|x)) and as many prior samples: how well the
  aggregate posterior q(z) matches p(z).  Near 0 means q(z) fills the prior.
  On test sets larger than MMD_MAX_CODES images, that many random codes
  (seeded).
* test_active_units: the number of latent dimensions u with
  Cov_x(E_q(z|x)[z_u]) > 0.01 (Burda et al. 2016), the posterior means taken
  over the test images.
* test_code_gain, test_mutual_information, test_marginal_kl,
  test_kl_per_unit: how much the codes say about the images
  (`tfp_vae.nn.information`, with each estimator and its bias): the decoder's
  gain from an image's own code over another's (every encoder); I_q(x; z)
  and KL(q(z) || p(z)) from the test set's aggregate posterior (Gaussian
  encoders; at most log N); each unit's rate (the normal prior), a list.
* test_<term> for each of the member's own terms (`Member.terms`, what
  training reports as train_<term>, e.g. the MMD-VAE's weighted `mmd`): a
  per-example term's mean over the test set, a batch term over the set's
  codes as in test_loss.  A term the metrics above already define keeps
  their definition (distortion is test_reconstruction_nll; rate and
  neg_elbo are test_rate and test_neg_elbo).

The costlier metrics are elsewhere: the IWAE log-likelihood in
`tfp_vae.model.likelihood`, the latent probes in `tfp_vae.evaluation.probes`,
the classifier Frechet distance in `tfp_vae.evaluation.frechet`;
`tfp_vae.experiment.evaluate` runs them all.
"""

from typing import Any, Optional

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import information
from tfp_vae.nn import losses
from tfp_vae.model import models as models_lib
from tfp_vae.internal import progress as progress_lib

tfd = tfp.distributions

ACTIVE_UNIT_THRESHOLD = 0.01
MMD_MAX_CODES = 2000
# Codes whose densities under the whole test set's aggregate posterior
# estimate the mutual information and the marginal KL (every image is in
# the mixture; `tfp_vae.nn.information`).
INFORMATION_MAX_CODES = 2000
# Images per call of the test pass: 100 took the same time as 500 with less
# memory (Fashion-MNIST's 10,000 test images; the figures, with machine and
# date: docs/performance.md, "Where the memory goes").
EVAL_BATCH_SIZE = 100
# Member terms the generic metrics define under another name.
TERM_KEYS = {'distortion': 'test_reconstruction_nll'}


def encode_all(model: models_lib.LatentVariableModel, images: np.ndarray,
               batch_size: int = EVAL_BATCH_SIZE, seed: int = 0,
               progress: Optional[str] = None) -> dict[str, np.ndarray]:
  """Per-image terms and codes for `images`, one draw per image; with
  `progress`, a step name to log progress under (`tfp_vae.internal.progress`).

  Returns:
    {'code_mean': [N, latent], 'code_sample': [N, latent],
     'distortion': [N], 'loss': [N] (the member's per-example loss), the
     member's other per-example terms, and for Gaussian posteriors
     'rate': [N] (closed-form KL where there is one) and 'code_stddev':
     [N, latent]}.
  """

  def build():
    @tf.function(reduce_retracing=True, autograph=False)
    def batch_terms(x, seed_and_step):
      member_terms, codes = model.member.per_example(model, x, seed_and_step)
      posterior = model.encode(x)
      if codes is None or 'distortion' not in member_terms:
        codes = model.sample_codes(posterior, seed_and_step)
      out = {f'member_{k}': v for k, v in member_terms.items()}
      out['code_mean'] = posterior.mean()
      out['code_sample'] = codes
      out['distortion'] = member_terms.get('distortion')
      if out['distortion'] is None:
        out['distortion'] = losses.distortion(model.decode(codes), x)
      if isinstance(posterior, tfd.MultivariateNormalDiag):
        out['rate'] = losses.rate(posterior, model.prior_distribution(),
                                  codes, 'analytic')
        out['code_stddev'] = posterior.stddev()
      return out
    return batch_terms

  batch_terms = models_lib.cached_function(model, 'encode_all', build)
  bar = progress_lib.Progress(progress, len(images)) if progress else None
  parts = []
  for i, start in enumerate(range(0, len(images), batch_size)):
    x = tf.constant(images[start:start + batch_size])
    parts.append({k: v.numpy() for k, v in
                  batch_terms(x, tf.constant([seed, i], tf.int32)).items()})
    if bar:
      bar.update(len(x))
  out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
  for key in [k for k in out if k.startswith('member_')]:
    name = key[len('member_'):]
    out['loss' if name == 'loss' else key] = out.pop(key)
  return out


def active_units(code_means: np.ndarray,
                 threshold: float = ACTIVE_UNIT_THRESHOLD
                 ) -> tuple[int, np.ndarray]:
  """Number of units with Cov_x(E_q[z_u]) > threshold, and every variance."""
  variances = np.var(np.asarray(code_means, np.float64), axis=0)
  return int(np.sum(variances > threshold)), variances


def test_set_metrics(model: models_lib.LatentVariableModel,
                     images: np.ndarray, seed: int = 0
                     ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """The test metrics of the module doc and the per-image arrays behind
  them."""
  terms = encode_all(model, images, seed=seed)
  out: dict[str, Any] = {
      'test_reconstruction_nll': float(terms['distortion'].mean()),
  }
  codes = terms['code_sample']
  if len(codes) > MMD_MAX_CODES:  # the kernel matrices are N x N
    picks = np.random.default_rng(seed).choice(len(codes), MMD_MAX_CODES,
                                               replace=False)
    codes = codes[np.sort(picks)]
  codes = tf.constant(codes)
  prior_samples = model.prior_distribution().sample(
      len(codes), seed=(seed, 2))
  out['test_mmd_to_prior'] = float(losses.mmd(codes, prior_samples))
  out['test_active_units'] = active_units(terms['code_mean'])[0]
  if 'rate' in terms:
    out['test_rate'] = float(terms['rate'].mean())
    out['test_neg_elbo'] = float((terms['distortion'] + terms['rate']).mean())
  batch = model.member.batch_terms(model, codes,
                                   tf.constant([seed, 2], tf.int32))
  out['test_loss'] = float(terms['loss'].mean()) + sum(
      float(v) for v in batch.values())
  out.update(member_terms(model.member.terms, terms, batch, out))
  out.update(information_metrics(model, images, terms, seed))
  return out, terms


def information_metrics(model: models_lib.LatentVariableModel,
                        images: np.ndarray, terms: dict[str, np.ndarray],
                        seed: int = 0) -> dict[str, Any]:
  """test_code_gain and test_code_variance for every encoder;
  test_mutual_information and
  test_marginal_kl for Gaussian encoders; test_kl_per_unit for Gaussian
  encoders under the standard normal prior (`tfp_vae.nn.information`)."""
  n = len(images)
  if n < 2:
    return {}
  other = information.derangement(n, seed)

  def build():
    @tf.function(reduce_retracing=True, autograph=False)
    def nll(x, codes):
      return losses.distortion(model.decode(codes), x)
    return nll

  nll = models_lib.cached_function(model, 'other_code_nll', build)
  codes = terms['code_sample'][other]
  other_nll = np.concatenate([
      nll(tf.constant(images[i:i + EVAL_BATCH_SIZE]),
          tf.constant(codes[i:i + EVAL_BATCH_SIZE])).numpy()
      for i in range(0, n, EVAL_BATCH_SIZE)])
  out: dict[str, Any] = {
      'test_code_gain': information.code_gain(terms['distortion'],
                                              other_nll)}
  out['test_code_variance'] = float(np.mean(information.aggregate_variance(
      terms['code_mean'], terms.get('code_stddev'))))
  if 'code_stddev' not in terms:
    return out  # a point-mass encoder: no density (module doc)
  prior = model.prior_distribution()
  prior_log_prob = np.concatenate([
      prior.log_prob(tf.constant(terms['code_sample'][i:i + 1000])).numpy()
      for i in range(0, n, 1000)])
  split = information.aggregate_posterior(
      terms['code_sample'], terms['code_mean'], terms['code_stddev'],
      prior_log_prob, max_codes=INFORMATION_MAX_CODES, seed=seed)
  out['test_mutual_information'] = split['mutual_information']
  out['test_marginal_kl'] = split['marginal_kl']
  if _standard_normal(prior):
    out['test_kl_per_unit'] = [
        float(v) for v in information.kl_per_unit(terms['code_mean'],
                                                  terms['code_stddev'])]
  return out


def _standard_normal(prior) -> bool:
  if not isinstance(prior, tfd.MultivariateNormalDiag):
    return False
  return bool(np.all(prior.mean().numpy() == 0) and
              np.all(prior.stddev().numpy() == 1))


def term_key(term: str) -> str:
  """The test metric of a member's term."""
  return TERM_KEYS.get(term, f'test_{term}')


def member_terms(names: tuple[str, ...], terms: dict[str, np.ndarray],
                 batch: dict[str, Any], defined: dict[str, Any]
                 ) -> dict[str, float]:
  """test_<term> of the member's own terms (module doc) that `defined`
  does not hold already."""
  out = {}
  for name in names:
    key = term_key(name)
    if name == 'loss' or key in defined:
      continue
    if name in batch:
      out[key] = float(batch[name])
    elif f'member_{name}' in terms:
      out[key] = float(np.mean(terms[f'member_{name}']))
  return out
