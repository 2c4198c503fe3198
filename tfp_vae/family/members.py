"""The model family: each member declares its encoder, its settings and its
objective, in one class.

A member is a dataclass whose fields are the settings it uses (with their
defaults, help texts and checks) and whose methods are its objective:

  per_example(model, images, seed) -> ({term: [B]}, codes)
      per-example terms, 'loss' among them (minimised), and the codes the
      batch terms need;
  batch_terms(model, codes, seed) -> {term: scalar}
      terms over the whole batch (the MMD), already weighted; added to the
      mean of the per-example loss.

`models.LatentVariableModel` reduces the two the same way in training (a
batch, replicas included), in validation and on the test set
(`metrics.evaluate`), so the test loss is the model's own objective.

Besides its objective a member declares what generic code needs of it: `summary`
(its --model help), `encoder` (a `components.ENCODERS` name), `loss_scales` (the
settings that scale its loss, named in the advice after a NaN),
`samples_setting` (the setting that multiplies the codes drawn per image, for
the memory estimate) and `resolve` (its data-dependent defaults).  Members
register in `MEMBERS` (`tfp_vae.internal.registry`), here or in any installed
plugin; configuration, the command-line flags and their help, the builder, the
comparison, evaluation, the report and export read the declaration.  A setting a
member does not declare cannot be set for it.

This module does not import TensorFlow at load time (objectives import it
when they run), so command lines check settings before TensorFlow loads.
"""

import dataclasses
import typing
from typing import Any, Callable, ClassVar, Optional

from absl import logging

from tfp_vae.internal import checks
from tfp_vae.internal import errors
from tfp_vae.internal import registry

KL_ESTIMATORS = ('analytic', 'sampled')
KERNELS = ('gaussian_dim', 'rbf', 'imq')
# Old names still accepted, each with a deprecation line.
RENAMED_KERNELS = {'sources': 'gaussian_dim'}


def setting(default: Any, help_text: str,
            check: Optional[Callable[[str, Any], None]] = None,
            flag: Optional[str] = None) -> Any:
  """A member's setting: a dataclass field with its help text (the flag's),
  its check (a `tfp_vae.internal.checks` function) and, when it differs from the
  field's name, the name users know it by (`info_lambda` is `--lambda`)."""
  return dataclasses.field(default=default, metadata={
      'help': help_text, 'check': check, 'flag': flag})


def setting_text(value) -> str:
  """A setting's value as logs and reports show it: 0.5, 1,2,4, imq (an
  empty tuple reads 'default')."""
  if isinstance(value, float):
    return f'{value:g}'
  if isinstance(value, tuple):
    return ','.join(f'{v:g}' for v in value) or 'default'
  return str(value)


def public_name(field: dataclasses.Field) -> str:
  """The name a setting has on the command line and in errors."""
  return field.metadata.get('flag') or field.name


@dataclasses.dataclass(frozen=True)
class Context:
  """What resolving a member's defaults may depend on."""
  num_pixels: int          # D = H * W * C
  pixel_weight: float      # `components.Likelihood.pixel_weight` at its scale
  closed_form_kl: bool     # the prior has a closed-form KL to q(z|x)
  prior: str               # its name, for messages


@dataclasses.dataclass(frozen=True)
class Member(registry.Registrable):
  """Base of the family members (see the module doc).

  Class attributes every member sets:
    name: the `--model` value.
    summary: one line for the --model help.
    encoder: a `components.ENCODERS` name: 'gaussian' (q(z|x) = N(mu, diag
      sigma^2)) or 'point_mass' (a deterministic code; no density, so no
      ELBO and no VampPrior).
    terms: the terms `per_example` and `batch_terms` return, 'loss' first
      (shown while training, in history.jsonl and in metrics.json).
    batch_term_names: the terms `batch_terms` returns (none: the codes are
      not gathered across replicas).
    loss_scales: settings that scale the loss (NaN advice).
    samples_setting: the setting holding the codes drawn per image, if it
      is more than one (memory estimate).
  """
  name: ClassVar[str] = ''
  summary: ClassVar[str] = ''
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss',)
  batch_term_names: ClassVar[tuple[str, ...]] = ()
  loss_scales: ClassVar[tuple[str, ...]] = ()
  samples_setting: ClassVar[Optional[str]] = None

  @classmethod
  def validate_declaration(cls) -> None:
    own = {f.name for f in dataclasses.fields(cls)}
    if not cls.terms or cls.terms[0] != 'loss':
      raise ValueError(f'{cls.__name__}.terms must start with "loss"')
    if not set(cls.batch_term_names) <= set(cls.terms):
      raise ValueError(f'{cls.__name__}.batch_term_names must be terms')
    for name in (*cls.loss_scales, *filter(None, [cls.samples_setting])):
      if name not in own:
        raise ValueError(f'{cls.__name__} declares {name!r}, which is not '
                         f'one of its settings')
    _check_shared_settings(cls)

  def validate(self) -> 'Member':
    """Checks every setting; returns self.

    Raises:
      ConfigError: naming the first invalid setting.
    """
    for field in dataclasses.fields(self):
      check = field.metadata.get('check')
      if check is not None:
        check(public_name(field), getattr(self, field.name))
    return self

  def resolve(self, context: Context) -> tuple['Member', list[str]]:
    """This member with its data-dependent defaults filled in, and notes
    worth logging about what was resolved."""
    del context
    return self, []

  def recorded(self) -> dict[str, float]:
    """Resolved weights worth keeping in metrics.json."""
    return {}

  def samples_per_image(self) -> int:
    """Codes drawn per image in a training step."""
    return int(getattr(self, self.samples_setting)) if (
        self.samples_setting) else 1

  def settings(self) -> dict[str, Any]:
    """{public name: value} of every setting (the report and the NaN
    advice show them so)."""
    return {public_name(f): getattr(self, f.name)
            for f in dataclasses.fields(self)}

  def per_example(self, model, images, seed):
    raise NotImplementedError

  def batch_terms(self, model, codes, seed) -> dict[str, Any]:
    del model, codes, seed
    return {}


def _declared(cls: type, field: dataclasses.Field) -> tuple[Any, Any, str]:
  """(type, default, public name) of a member's setting, as compared."""
  try:
    kind = typing.get_type_hints(cls).get(field.name, field.type)
  except (NameError, TypeError):  # an annotation that does not resolve
    kind = field.type
  default = (field.default if field.default is not dataclasses.MISSING
             else field.default_factory())
  return kind, default, public_name(field)


def _check_shared_settings(cls: type) -> None:
  """A setting named as another member's is one flag, with one default,
  type and public name (the command line has one --NAME and its help shows
  one default), so a member that declares it differently is refused.

  Raises:
    ValueError: naming the setting, both members and both declarations.
  """
  for name, other in MEMBERS.registered().items():
    if name == cls.name or other is cls:
      continue
    theirs = {f.name: f for f in dataclasses.fields(other)}
    for field in dataclasses.fields(cls):
      if field.name not in theirs:
        continue
      mine, its = _declared(cls, field), _declared(other, theirs[field.name])
      if mine != its:
        what = ', '.join(
            f'{label} {a!r} (--model={name} has {b!r})'
            for label, a, b in zip(('type', 'default', 'flag'), mine, its)
            if a != b)
        raise ValueError(
            f'{cls.__name__} declares setting {field.name!r} with {what}: a '
            f'setting shared by several members is one flag with one type '
            f'and default; give it another name or declare it as '
            f'--model={name} does')


# The member a run trains when none is named: the sources' VAE.
MEMBERS = registry.Registry('model', 'model', Member, 'vae')
DEFAULT = MEMBERS.default
# What trainers.compare compares when not told: the sources' question.
COMPARED_PAIR = ('vae', 'mmd_vae')
register = MEMBERS.register
names = MEMBERS.names
get = MEMBERS.get


def all_settings() -> dict[str, tuple[dataclasses.Field, list[str]]]:
  """Every setting of every member: {field name: (field, member names)}
  (a setting several members share must have one default and help)."""
  out: dict[str, tuple[dataclasses.Field, list[str]]] = {}
  for name, cls in MEMBERS.items():
    for field in dataclasses.fields(cls):
      out.setdefault(field.name, (field, []))[1].append(name)
  return out


def create(name: str, **settings: Any) -> Member:
  """Member `name` with `settings` (field names); a setting it does not
  declare is refused, naming the members that use it.  Lists given for
  tuple settings become tuples.

  Raises:
    ConfigError: unknown member or a setting it does not use.
  """
  cls = get(name)
  own = {f.name: f for f in dataclasses.fields(cls)}
  shared = all_settings()
  for key in settings:
    if key not in own:
      users = shared[key][1] if key in shared else []
      field_name = public_name(shared[key][0]) if key in shared else key
      check = shared[key][0].metadata.get('check') if key in shared else None
      if check is not None:  # a bad value is named as such first
        check(field_name, settings[key])
      where = (f'is used only by --model={" or --model=".join(users)}'
               if users else 'is not a setting of any model')
      raise errors.ConfigError(field_name, settings[key],
                               f'{where}, not --model={name}')
  values = {k: tuple(v) if isinstance(v, list) and isinstance(
      own[k].default, tuple) else v for k, v in settings.items()}
  return cls(**values)


# -- objectives' building blocks -----------------------------------------


def _default_mmd_weight(context: Context) -> float:
  """The sources' balance of reconstruction and MMD.

  The sources' MMD-VAE minimises `mean((x - x_hat)^2) + MMD`, the mean over
  the D pixel values of a batch.  A likelihood whose -log p(x|z) is w *
  sum((x - x_hat)^2) + const (`components.Likelihood.pixel_weight`: w = 1 /
  (2 s^2) for a Gaussian of scale s) makes that D w * mean(...) + const per
  image, so weight D w reproduces the sources' objective up to a constant
  factor and offset.  The Bernoulli likelihood's w is 1, the same balance
  with the cross-entropy sum in place of the squared-error sum (equivalent
  to s^2 = 1/2).  Learned scales start at s.
  """
  return context.num_pixels * context.pixel_weight


def _resolved_kl(kl_estimator: str, context: Context) -> tuple[str, list[str]]:
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
_UNBIASED_HELP = ("Unbiased (U-statistic) MMD instead of the sources' biased "
                  'estimate.')
_KL_HELP = ('Rate: analytic KL, or sampled: log q(z|x) - log p(z) at the '
            "drawn z (the MMD-VAE article's VAE estimate).")


@dataclasses.dataclass(frozen=True)
class _MMDMember(Member):
  """A member with an MMD(q(z), p(z)) term between the batch's codes and as
  many prior samples, weighted by its `mmd_weight`, and the kernel settings
  it uses."""
  kernel: str = setting('gaussian_dim', _KERNEL_HELP, _check_kernel)
  kernel_scales: tuple[float, ...] = setting((), _SCALES_HELP, _check_kernel_scales)
  unbiased_mmd: bool = setting(False, _UNBIASED_HELP, checks.boolean)

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


@register
@dataclasses.dataclass(frozen=True)
class VAE(Member):
  """Gaussian encoder trained on distortion + beta * rate: the negative ELBO
  at beta = 1 (the sources' VAE), the beta-VAE otherwise."""
  name: ClassVar[str] = 'vae'
  summary: ClassVar[str] = 'the ELBO (the beta-VAE with --beta)'
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate')
  loss_scales: ClassVar[tuple[str, ...]] = ('beta',)

  beta: float = setting(1.0, 'Weight of the KL term (1: the ELBO; '
                        'beta-VAE otherwise).', checks.finite_non_negative)
  kl_estimator: str = setting('analytic', _KL_HELP, _check_kl_estimator)

  def resolve(self, context):
    kl, notes = _resolved_kl(self.kl_estimator, context)
    return dataclasses.replace(self, kl_estimator=kl), notes

  def per_example(self, model, images, seed):
    _, codes, distortion, rate = _distortion_and_rate(
        model, images, seed, self.kl_estimator)
    return {'loss': distortion + self.beta * rate,
            'distortion': distortion, 'rate': rate}, codes


@register
@dataclasses.dataclass(frozen=True)
class MMDVAE(_MMDMember):
  """Deterministic encoder trained on distortion + mmd_weight *
  MMD(q(z), p(z)), with the sources' Gaussian kernel by default."""
  name: ClassVar[str] = 'mmd_vae'
  summary: ClassVar[str] = 'reconstruction + MMD to the prior (--mmd_weight)'
  encoder: ClassVar[str] = 'point_mass'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'mmd')
  batch_term_names: ClassVar[tuple[str, ...]] = ('mmd',)
  loss_scales: ClassVar[tuple[str, ...]] = ('mmd_weight',)

  mmd_weight: Optional[float] = setting(
      None, "Weight of MMD(q(z), p(z)); default: the sources' balance "
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


@register
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

  alpha: float = setting(0.0, 'The objective is distortion + (1 - alpha) KL '
                         '+ (alpha + lambda - 1) MMD.', checks.finite)
  info_lambda: Optional[float] = setting(
      None, "See --alpha; default 1 + the MMD-VAE's default weight.",
      _check_optional_finite, flag='lambda')
  kl_estimator: str = setting('analytic', _KL_HELP, _check_kl_estimator)

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


@register
@dataclasses.dataclass(frozen=True)
class IWAE(Member):
  """Gaussian encoder trained on the k-sample importance-weighted bound
  (Burda et al.): loss = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),
  z_i ~ q(z|x).  k = 1 is the single-sample ELBO estimate."""
  name: ClassVar[str] = 'iwae'
  summary: ClassVar[str] = ('the k-sample importance-weighted bound '
                            '(--iwae_samples)')
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'neg_elbo')
  samples_setting: ClassVar[Optional[str]] = 'iwae_samples'

  iwae_samples: int = setting(5, 'Importance samples k of the training '
                              'bound.', checks.positive_int)

  def per_example(self, model, images, seed):
    from tfp_vae.nn import losses  # pylint: disable=g-import-not-at-top
    posterior = model.encode(images)
    codes = model.sample_codes(posterior, seed, self.iwae_samples)
    log_w = model.log_weights(images, posterior, codes)
    return {'loss': -losses.iwae_bound(log_w),
            'neg_elbo': -losses.elbo(log_w)}, codes[0]
