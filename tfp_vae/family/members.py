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
(`metrics.test_set_metrics`), so the test loss is the model's own objective.

Besides its objective a member declares what generic code needs of it: `summary`
(its --model help), `encoder` (a `components.ENCODERS` name), `loss_scales` (the
settings that scale its loss, named in the advice after a NaN),
`samples_setting` (the setting that multiplies the codes drawn per image, for
the memory estimate) and `resolve` (its data-dependent defaults).  Members
register in `MEMBERS` (`tfp_vae.internal.registry`), here or in any installed
plugin; configuration, the command-line flags and their help, the builder, the
comparison, evaluation, the report and export read the declaration.  A setting a
member does not declare cannot be set for it.

This module is a member's declaration and the registry; the built-in members
(VAE, MMD-VAE, InfoVAE, IWAE) and their objectives are in
`tfp_vae.family.objectives`, registered when this module loads.

This module does not import TensorFlow at load time (objectives import it
when they run), so command lines check settings before TensorFlow loads.
"""

import dataclasses
import typing
from typing import Any, Callable, ClassVar, Optional

from tfp_vae.internal import errors
from tfp_vae.internal import registry


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


# The member a run trains when none is named: the articles' VAE.
MEMBERS = registry.Registry('model', 'model', Member, 'vae')
DEFAULT = MEMBERS.default
# What trainers.compare compares when not told: the articles' question.
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


# The built-in members register here when this module loads; they import
# this module, whose names are all defined by now.
# pylint: disable=wrong-import-position,g-import-not-at-top,cyclic-import
# pylint: disable=unused-import
from tfp_vae.family import objectives
