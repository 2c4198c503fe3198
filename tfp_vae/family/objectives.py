"""The built-in members of the family (`tfp_vae.family.members` declares
what a member is): the VAE (the ELBO, or the beta-VAE), the MMD-VAE, the
InfoVAE and the IWAE, each with its settings and its objective, and the
building blocks their objectives share (distortion and rate, the MMD term,
the articles' default MMD weight).

This module does not import TensorFlow at load time (objectives import it
when they run).
"""

import dataclasses
from typing import Any, ClassVar, Optional

from absl import logging

from tfp_vae.family import members as family
from tfp_vae.internal import checks
from tfp_vae.internal import errors

KL_ESTIMATORS = ('analytic', 'sampled')
KERNELS = ('gaussian_dim', 'rbf', 'imq')
# Old names still accepted, each with a deprecation line.
RENAMED_KERNELS = {'sources': 'gaussian_dim'}


# -- objectives' building blocks -----------------------------------------


def _default_mmd_weight(context: family.Context) -> float:
  """The articles' balance of reconstruction and MMD.

  The articles' MMD-VAE minimises `mean((x - x_hat)^2) + MMD`, the mean over
  the D pixel values of a batch.  A likelihood whose -log p(x|z) is w *
  sum((x - x_hat)^2) + const (`components.Likelihood.pixel_weight`: w = 1 /
  (2 s^2) for a Gaussian of scale s) makes that D w * mean(...) + const per
  image, so weight D w reproduces the articles' objective up to a constant
  factor and offset.  The Bernoulli likelihood's w is 1, the same balance
  with the cross-entropy sum in place of the squared-error sum (equivalent
  to s^2 = 1/2).  Learned scales start at s.
  """
  return context.num_pixels * context.pixel_weight


def _resolved_kl(kl_estimator: str, context: family.Context
                 ) -> tuple[str, list[str]]:
  """'analytic' becomes 'sampled' for priors without a closed-form KL."""
  if kl_estimator == 'analytic' and not context.closed_form_kl:
    return 'sampled', [
        f'--prior={context.prior} has no closed-form KL to q(z|x): the rate '
        f'uses the one-sample estimate log q(z|x) - log p(z) instead of '
        f'--kl_estimator=analytic']
  return kl_estimator, []


def _check_kernel_scales(name: str, value: Any) -> None:
  if not isinstance(value, tuple) or not all(
      checks.is_number(v) and v > 0 and v != float('inf') for v in value):
    raise errors.ConfigError(name, list(value) if isinstance(
        value, (list, tuple)) else value, 'must be positive finite numbers')


def _check_kl_estimator(name: str, value: Any) -> None:
  checks.one_of(name, value, KL_ESTIMATORS)


def _check_kernel(name: str, value: Any) -> None:
  checks.one_of(name, value, KERNELS)


def _check_optional_weight(name: str, value: Any) -> None:
  if value is not None:
    checks.finite_non_negative(name, value)


def _check_optional_finite(name: str, value: Any) -> None:
  if value is not None:
    checks.finite(name, value)


def _distortion_and_rate(model, images, seed, kl_estimator: Optional[str]):
  """One reparameterised z per image: (posterior, codes, distortion [B],
  rate [B] or None)."""
  from tfp_vae.nn import losses  # pylint: disable=g-import-not-at-top
  posterior = model.encode(images)
  codes = model.sample_codes(posterior, seed)
  distortion = losses.distortion(model.decode(codes), images)
  rate = None
  if kl_estimator is not None:
    rate = losses.rate(posterior, model.prior_distribution(), codes,
                       kl_estimator)
  return posterior, codes, distortion, rate


_KERNEL_HELP = ("MMD kernel: gaussian_dim (the MMD-VAE article's Gaussian, "
                'exp(-|x-y|^2 / dim^2), its bandwidth set by the latent '
                'dimension; formerly named sources), rbf (bandwidth '
                '--kernel_scales), imq (inverse multiquadrics summed over '
                '--kernel_scales).')
_SCALES_HELP = ('rbf: one bandwidth (default 1); imq: scales (default '
                '0.1,0.2,0.5,1,2,5,10).')
_UNBIASED_HELP = ("Unbiased (U-statistic) MMD instead of the articles' biased "
                  'estimate.')
_KL_HELP = ('Rate: analytic KL, or sampled: log q(z|x) - log p(z) at the '
            "drawn z (the MMD-VAE article's VAE estimate).")


@dataclasses.dataclass(frozen=True)
class _MMDMember(family.Member):
  """A member with an MMD(q(z), p(z)) term between the batch's codes and as
  many prior samples, weighted by its `mmd_weight`, and the kernel settings
  it uses."""
  kernel: str = family.setting('gaussian_dim', _KERNEL_HELP, _check_kernel)
  kernel_scales: tuple[float, ...] = family.setting(
      (), _SCALES_HELP, _check_kernel_scales)
  unbiased_mmd: bool = family.setting(False, _UNBIASED_HELP, checks.boolean)

  def __post_init__(self):
    new = RENAMED_KERNELS.get(self.kernel)
    if new is not None:
      logging.warning('--kernel=%s is deprecated: it is now named '
                      '--kernel=%s (the same kernel)', self.kernel, new)
      object.__setattr__(self, 'kernel', new)

  def validate(self):
    super().validate()
    if self.kernel == 'rbf' and len(self.kernel_scales) > 1:
      raise errors.ConfigError('kernel_scales', list(self.kernel_scales),
                               'takes one bandwidth for --kernel=rbf')
    return self

  def batch_terms(self, model, codes, seed):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
    from tfp_vae.family import components  # pylint: disable=g-import-not-at-top
    from tfp_vae.nn import losses  # pylint: disable=g-import-not-at-top
    # One name scope, so that profiles (bench/op_profile.py) can tell what
    # the MMD term costs.
    with tf.name_scope('mmd'):
      # An encoder with a density drew the codes' noise from the step seed;
      # a point mass drew none, so the seed is free for the prior.
      prior_seed = (tfp.random.split_seed(seed, 2)[1]
                    if components.ENCODERS.get(self.encoder).has_density
                    else seed)
      prior_samples = model.prior_distribution().sample(
          tf.shape(codes)[0], seed=prior_seed)
      kernel = losses.make_kernel(self.kernel, self.kernel_scales)
      return {'mmd': self.mmd_weight * losses.mmd(
          codes, prior_samples, kernel, self.unbiased_mmd)}


# -- the members ------------------------------------------------------------


@family.register
@dataclasses.dataclass(frozen=True)
class VAE(family.Member):
  """Gaussian encoder trained on distortion + beta * rate: the negative ELBO
  at beta = 1 (the articles' VAE), the beta-VAE otherwise."""
  name: ClassVar[str] = 'vae'
  summary: ClassVar[str] = 'the ELBO (the beta-VAE with --beta)'
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate')
  loss_scales: ClassVar[tuple[str, ...]] = ('beta',)

  beta: float = family.setting(1.0, 'Weight of the KL term (1: the ELBO; '
                               'beta-VAE otherwise).',
                               checks.finite_non_negative)
  kl_estimator: str = family.setting('analytic', _KL_HELP,
                                     _check_kl_estimator)

  def resolve(self, context):
    kl, notes = _resolved_kl(self.kl_estimator, context)
    return dataclasses.replace(self, kl_estimator=kl), notes

  def per_example(self, model, images, seed):
    _, codes, distortion, rate = _distortion_and_rate(
        model, images, seed, self.kl_estimator)
    return {'loss': distortion + self.beta * rate,
            'distortion': distortion, 'rate': rate}, codes


@family.register
@dataclasses.dataclass(frozen=True)
class MMDVAE(_MMDMember):
  """Deterministic encoder trained on distortion + mmd_weight *
  MMD(q(z), p(z)), with the articles' Gaussian kernel by default."""
  name: ClassVar[str] = 'mmd_vae'
  summary: ClassVar[str] = 'reconstruction + MMD to the prior (--mmd_weight)'
  encoder: ClassVar[str] = 'point_mass'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'mmd')
  batch_term_names: ClassVar[tuple[str, ...]] = ('mmd',)
  loss_scales: ClassVar[tuple[str, ...]] = ('mmd_weight',)

  mmd_weight: Optional[float] = family.setting(
      None, "Weight of MMD(q(z), p(z)); default: the articles' balance "
      '(number of pixels D; D / (2 s^2) for a Gaussian likelihood).',
      _check_optional_weight)

  def resolve(self, context):
    if self.mmd_weight is not None:
      return self, []
    return dataclasses.replace(
        self, mmd_weight=_default_mmd_weight(context)), []

  def recorded(self):
    return {'mmd_weight': float(self.mmd_weight)}

  def per_example(self, model, images, seed):
    _, codes, distortion, _ = _distortion_and_rate(model, images, seed, None)
    return {'loss': distortion, 'distortion': distortion}, codes


@family.register
@dataclasses.dataclass(frozen=True)
class InfoVAE(_MMDMember):
  """The InfoVAE objective (Zhao et al.), minimised:

    distortion + (1 - alpha) KL(q(z|x) || p(z))
               + (alpha + lambda - 1) MMD(q(z), p(z))

  alpha = 0, lambda = 1 is the ELBO; the MMD compares the codes of the whole
  (global) batch with as many prior samples.
  """
  name: ClassVar[str] = 'info_vae'
  summary: ClassVar[str] = 'InfoVAE (--alpha, --lambda)'
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate', 'mmd')
  batch_term_names: ClassVar[tuple[str, ...]] = ('mmd',)
  loss_scales: ClassVar[tuple[str, ...]] = ('info_lambda',)

  alpha: float = family.setting(
      0.0, 'The objective is distortion + (1 - alpha) KL + (alpha + lambda '
      '- 1) MMD.', checks.finite)
  info_lambda: Optional[float] = family.setting(
      None, "See --alpha; default 1 + the MMD-VAE's default weight.",
      _check_optional_finite, flag='lambda')
  kl_estimator: str = family.setting('analytic', _KL_HELP,
                                     _check_kl_estimator)

  def resolve(self, context):
    kl, notes = _resolved_kl(self.kl_estimator, context)
    lam = self.info_lambda
    if lam is None:
      lam = 1.0 + _default_mmd_weight(context)
    return dataclasses.replace(self, kl_estimator=kl, info_lambda=lam), notes

  @property
  def rate_weight(self) -> float:
    return 1.0 - self.alpha

  @property
  def mmd_weight(self) -> float:
    return self.alpha + self.info_lambda - 1.0

  def recorded(self):
    return {'mmd_weight': self.mmd_weight,
            'rate_weight': self.rate_weight}

  def per_example(self, model, images, seed):
    _, codes, distortion, rate = _distortion_and_rate(
        model, images, seed, self.kl_estimator)
    return {'loss': distortion + self.rate_weight * rate,
            'distortion': distortion, 'rate': rate}, codes


@family.register
@dataclasses.dataclass(frozen=True)
class IWAE(family.Member):
  """Gaussian encoder trained on the k-sample importance-weighted bound
  (Burda et al.): loss = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),
  z_i ~ q(z|x).  k = 1 is the single-sample ELBO estimate."""
  name: ClassVar[str] = 'iwae'
  summary: ClassVar[str] = ('the k-sample importance-weighted bound '
                            '(--iwae_samples)')
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'neg_elbo')
  samples_setting: ClassVar[Optional[str]] = 'iwae_samples'

  iwae_samples: int = family.setting(
      5, 'Importance samples k of the training bound.', checks.positive_int)

  def per_example(self, model, images, seed):
    from tfp_vae.nn import losses  # pylint: disable=g-import-not-at-top
    posterior = model.encode(images)
    codes = model.sample_codes(posterior, seed, self.iwae_samples)
    log_w = model.log_weights(images, posterior, codes)
    return {'loss': -losses.iwae_bound(log_w),
            'neg_elbo': -losses.elbo(log_w)}, codes[0]
