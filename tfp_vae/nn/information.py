"""How much a model's codes say about its images: the information metrics.

The average rate of a Gaussian encoder splits in two ("ELBO surgery",
Hoffman and Johnson 2016):

  E_x KL(q(z|x) || p(z)) = I_q(x; z) + KL(q(z) || p(z)),

where q(z) = E_x q(z|x) is the aggregate posterior over the data.  A code
the decoder ignores has I_q = 0; a prior the aggregate posterior misses
(its "holes") has a large marginal KL.  Both are estimated over the test
set with the aggregate posterior of that set, q(z) ~ 1/N sum_n q(z|x_n), at
one code z_i ~ q(z|x_i) per image:

  mutual_information = mean_i [log q(z_i|x_i) - log (1/N sum_n q(z_i|x_n))]
  marginal_kl        = mean_i [log (1/N sum_n q(z_i|x_n)) - log p(z_i)]

The first is InfoNCE (`tfp.vi.mutual_information.lower_bound_info_nce`)
with the encoder's own density as the critic: a lower bound on I_q(x; z),
tight while I_q is well below log N, and never above log N (9.2 nats for
10,000 images).  A model whose codes separate every test image reads as
log N, whatever more it holds.  The two estimates add up to the one-sample
rate mean_i [log q(z_i|x_i) - log p(z_i)] exactly, and to the closed-form
test_rate in expectation.

For a point-mass encoder (the MMD-VAE) both are undefined: q(z|x) has no
density, I_q(x; z) is infinite for an injective code, and q(z) is a sum of
point masses with no KL to a continuous prior.  They are left out of its
metrics, as its ELBO is.

code_gain is defined for every encoder: the nats per image the decoder
gains from an image's own code against the code of another test image,

  code_gain = mean_i [log p(x_i | z_i) - log p(x_i | z_j(i))],

j a fixed random derangement of the test set (a seeded cycle).  It is
zero when the decoder ignores its code, and grows with what the code
carries that the decoder uses.

code_variance is defined for every encoder: each unit's variance under
q(z) (exact for the mixture of the test set's posteriors), averaged over
the units; the standard normal prior's is 1.  The tutorial's Problem 2
says the ELBO spreads q(z) wider than p(z) on small data.

kl_per_unit (a Gaussian encoder and the standard normal prior): each
unit's closed-form KL(q(z_u|x) || N(0, 1)) averaged over the test set;
collapsed units read as 0.
"""

import math
from typing import Optional

import numpy as np

# Codes per block of the [N, N] density matrix (float64: 500 x 10,000 is
# 40 MB).
BLOCK = 500


def _log_densities(codes: np.ndarray, means: np.ndarray,
                   stddevs: np.ndarray) -> np.ndarray:
  """[len(codes), N]: log q(codes_i | x_n) under the diagonal Gaussians
  (means, stddevs) [N, latent], expanded into two matrix products."""
  inv_var = 1.0 / np.square(stddevs)
  const = (-0.5 * np.sum(np.square(means) * inv_var, axis=1)
           - np.sum(np.log(stddevs), axis=1)
           - 0.5 * means.shape[1] * math.log(2 * math.pi))
  return (-0.5 * (np.square(codes) @ inv_var.T) + codes @ (means * inv_var).T
          + const[None, :])


def _logsumexp_rows(scores: np.ndarray) -> np.ndarray:
  top = np.max(scores, axis=1, keepdims=True)
  return (top + np.log(np.sum(np.exp(scores - top), axis=1,
                              keepdims=True)))[:, 0]


def aggregate_posterior(codes: np.ndarray, means: np.ndarray,
                        stddevs: np.ndarray, prior_log_prob: np.ndarray,
                        max_codes: Optional[int] = None, seed: int = 0
                        ) -> dict[str, float]:
  """{'mutual_information', 'marginal_kl'} (module doc) of a diagonal
  Gaussian encoder from one code per image: codes, means, stddevs
  [N, latent], prior_log_prob [N] = log p(codes_i).  With `max_codes`,
  the means over i run over that many codes picked at random (seeded),
  each still against the whole set's aggregate posterior: the same
  estimate, at max_codes x N densities instead of N x N."""
  codes, means, stddevs = (np.asarray(a, np.float64)
                           for a in (codes, means, stddevs))
  n = len(codes)
  if n < 2:
    raise ValueError(f'the aggregate posterior needs at least 2 codes, '
                     f'got {n}')
  picked = np.arange(n)
  if max_codes is not None and n > max_codes:
    picked = np.sort(np.random.default_rng(seed).choice(n, max_codes,
                                                        replace=False))
  own, marginal = np.empty(len(picked)), np.empty(len(picked))
  for start in range(0, len(picked), BLOCK):
    rows = picked[start:start + BLOCK]
    scores = _log_densities(codes[rows], means, stddevs)
    own[start:start + len(rows)] = scores[np.arange(len(rows)), rows]
    marginal[start:start + len(rows)] = (_logsumexp_rows(scores) -
                                         math.log(n))
  prior = np.asarray(prior_log_prob, np.float64)[picked]
  return {'mutual_information': float(np.mean(own - marginal)),
          'marginal_kl': float(np.mean(marginal - prior))}


def derangement(n: int, seed: int) -> np.ndarray:
  """other[i] != i for every i (n > 1): the next image on a seeded random
  cycle through all n."""
  if n < 2:
    raise ValueError(f'another image needs at least 2 images, got {n}')
  order = np.random.default_rng(seed).permutation(n)
  other = np.empty(n, np.int64)
  other[order] = np.roll(order, -1)
  return other


def kl_per_unit(means: np.ndarray, stddevs: np.ndarray) -> np.ndarray:
  """[latent]: each unit's KL(N(mean, stddev^2) || N(0, 1)), averaged over
  the images."""
  means, stddevs = (np.asarray(a, np.float64) for a in (means, stddevs))
  return np.mean(0.5 * (np.square(means) + np.square(stddevs) - 1.0)
                 - np.log(stddevs), axis=0)


def aggregate_variance(codes: np.ndarray,
                       stddevs: Optional[np.ndarray] = None) -> np.ndarray:
  """[latent]: each unit's variance under the aggregate posterior q(z).

  With `stddevs` (a Gaussian encoder; `codes` its means), the law of total
  variance: Var_n(mean_nu) + mean_n(stddev_nu^2), exact for the mixture
  1/N sum_n q(z|x_n).  Without (a point mass), the variance of the codes.
  The standard normal prior's is 1 per unit: above it, q(z) spreads wider
  than p(z) (the InfoVAE tutorial's "variance over-estimation")."""
  codes = np.asarray(codes, np.float64)
  variance = np.var(codes, axis=0)
  if stddevs is not None:
    variance = variance + np.mean(np.square(np.asarray(stddevs, np.float64)),
                                  axis=0)
  return variance


def code_gain(own_nll: np.ndarray, other_nll: np.ndarray) -> float:
  """mean_i [-log p(x_i | other code) - (-log p(x_i | own code))]."""
  return float(np.mean(np.asarray(other_nll, np.float64)
                       - np.asarray(own_nll, np.float64)))


def bound(n: int) -> Optional[float]:
  """The most the mutual-information estimate can read on n images."""
  return math.log(n) if n > 0 else None
