"""Typed configuration of a training run (`TrainConfig`) and of its
evaluation (`EvalConfig`), validated once at the boundary.

tensorflow/models `official/` style, flags -> config -> `validate()` ->
trainer, with the run split as the Model Garden splits an experiment into
four groups (`tfp_vae.config.groups`): model, data, trainer, runtime.  The
model server's settings are `tfp_vae.config.serve_settings`.

Every field states its default, help text and allowed values once; the
command-line flags are generated from them (`trainers/common.py`).  A
checkpoint belongs to the model, data and trainer settings; the runtime
group, `epochs` and `learning_rate` (lowering the rate after a NaN and
resuming is the documented fix) and `compared_models` (it only chooses the
precision a run starts in) may change when a run resumes (fields marked
`resumable`).

The library never reads flags.  Settings are named as users know them
(`lambda` for `info_lambda`) in errors, without the command line's `--`.
"""

import dataclasses
from typing import Any, Optional

from tfp_vae.config import declare
from tfp_vae.config import groups as config_groups
from tfp_vae.family import members as family
from tfp_vae.internal import checks
from tfp_vae.internal import errors

# Examples per request: of an export's batched signatures (encode, decode,
# reconstruct, log_likelihood) and of a served request, unless told
# otherwise (trainers.export and trainers.serve --max_batch).
MAX_BATCH = 1024


@dataclasses.dataclass
class TrainConfig:
  """Everything that defines one training run, in four groups (module
  doc).  `TrainConfig.create(**settings)` builds one from flat settings,
  as the command line names them."""
  model: config_groups.ModelConfig = dataclasses.field(
      default_factory=config_groups.ModelConfig)
  data: config_groups.DataConfig = dataclasses.field(
      default_factory=config_groups.DataConfig)
  trainer: config_groups.TrainerConfig = dataclasses.field(
      default_factory=config_groups.TrainerConfig)
  runtime: config_groups.RuntimeConfig = dataclasses.field(
      default_factory=config_groups.RuntimeConfig)

  def validate(self) -> 'TrainConfig':
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the first invalid setting and its value.
    """
    self.model.validate()
    self.data.validate(self.model.likelihood)
    self.trainer.validate(self.data)
    self.runtime.validate()
    return self

  # -- flat settings, as the command line names them ---------------------

  @classmethod
  def create(cls, model: str = family.DEFAULT, **settings: Any) -> 'TrainConfig':
    """A config from flat settings (`latent_dim=8, beta=2.0, epochs=5`).

    `model` picks the family member; its own settings go to it, and a
    setting it does not use is refused.  Not yet validated.

    Raises:
      ConfigError: an unknown setting, or one the member does not use.
    """
    member_settings = family.all_settings()
    groups: dict[str, dict[str, Any]] = {g: {} for g in config_groups.GROUPS}
    owner = config_groups.group_of_fields()
    member_values = {}
    for key, value in settings.items():
      if key in member_settings:
        member_values[key] = value
      elif key in owner:
        groups[owner[key]][key] = value
      else:
        raise errors.ConfigError(key, value, 'is not a setting')
    groups['model']['member'] = family.create(model, **member_values)
    return cls(model=config_groups.ModelConfig(**groups['model']),
               data=config_groups.DataConfig(**groups['data']),
               trainer=config_groups.TrainerConfig(**groups['trainer']),
               runtime=config_groups.RuntimeConfig(**groups['runtime']))

  def flat(self) -> dict[str, Any]:
    """{setting: value} over every group and the member's settings."""
    out = {'model': self.model.name}
    out.update(_public_fields(self.model.member))
    for group in config_groups.GROUPS:
      for f in dataclasses.fields(getattr(self, group)):
        if f.name != 'member':
          out[f.name] = getattr(getattr(self, group), f.name)
    return out

  def to_flags(self, exclude: tuple[str, ...] = ()) -> list[str]:
    """The command line of `trainers.train` that builds this config:
    `--name=value` for every setting (the member's by their public names),
    `--name`/`--noname` for booleans; unset optional ones are left out."""
    flat = {k: v for k, v in self.flat().items()
            if k not in family.all_settings()}
    flat.update(self.model.member.settings())
    out = []
    for name, value in flat.items():
      if name in exclude or value is None:
        continue
      if isinstance(value, bool):
        out.append(f'--{name}' if value else f'--no{name}')
      elif isinstance(value, tuple):
        out.append(f'--{name}={",".join(repr(v) for v in value)}')
      else:
        out.append(f'--{name}={value}')
    return out

  def with_member(self, member: family.Member) -> 'TrainConfig':
    """A copy training `member` (a compared member) with every other
    setting kept."""
    return dataclasses.replace(self, model=dataclasses.replace(
        self.model, member=member))

  def replace(self, **settings: Any) -> 'TrainConfig':
    """A copy with flat settings changed (member settings included)."""
    flat = self.flat()
    flat.update(settings)
    return TrainConfig.create(**flat)

  # -- config.json --------------------------------------------------------

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready: {'model': {'name': ..., 'settings': {...}, ...},
    'data': {...}, 'trainer': {...}, 'runtime': {...}}."""
    out = {}
    for group in config_groups.GROUPS:
      values = {}
      for f in dataclasses.fields(getattr(self, group)):
        value = getattr(getattr(self, group), f.name)
        if f.name == 'member':
          values['name'] = value.name
          values['settings'] = {k: list(v) if isinstance(v, tuple) else v
                                for k, v in _public_fields(value).items()}
        else:
          values[f.name] = value
      out[group] = values
    return out

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> 'TrainConfig':
    """The inverse of `to_dict`.

    Raises:
      ConfigError: not an object of the groups, unknown keys or settings.
    """
    if not isinstance(values, dict):
      raise errors.ConfigError('config', values, 'must be a JSON object')
    # config.json also records the run's plan (`tfp_vae.runtime.plan`), which is
    # not a setting.
    values = {k: v for k, v in values.items() if k != 'plan'}
    unknown = sorted(set(values) - set(config_groups.GROUPS))
    if unknown or not values:
      raise errors.ConfigError(
          'config', unknown or values,
          f'{"has unknown keys" if unknown else "is empty"}: a config holds '
          f'the groups {", ".join(config_groups.GROUPS)} '
          f'(`TrainConfig.to_dict`)')
    flat: dict[str, Any] = {}
    for group, body in values.items():
      if not isinstance(body, dict):
        raise errors.ConfigError(group, body, 'must be a JSON object')
      body = dict(body)
      if group == 'model':
        flat['model'] = body.pop('name', family.DEFAULT)
        flat.update(body.pop('settings', {}))
      unknown = sorted(set(body) - set(config_groups.fields_of(group)))
      if unknown:
        raise errors.ConfigError(group, unknown, 'has unknown keys')
      flat.update(body)
    return cls.create(**flat)

  def differences(self, other: 'TrainConfig',
                  ignore_member_settings: bool = False,
                  ignore: tuple[str, ...] = ()
                  ) -> list[tuple[str, Any, Any]]:
    """Settings outside the resumable ones (and `ignore`) whose values
    differ: (name, self's value, other's value), in declaration order.
    `ignore_member_settings`: the members' settings are compared resolved,
    elsewhere (`plan.differences`)."""
    resumable = config_groups.resumable_fields() | set(ignore)
    a, b = self.flat(), other.flat()
    if a['model'] != b['model'] or ignore_member_settings:
      resumable |= set(family.all_settings())
    out = []
    for name in dict.fromkeys(list(a) + list(b)):
      if name in resumable:
        continue
      if a.get(name) != b.get(name):
        out.append((name, a.get(name), b.get(name)))
    return out


def _public_fields(member: family.Member) -> dict[str, Any]:
  return {f.name: getattr(member, f.name)
          for f in dataclasses.fields(member)}



@dataclasses.dataclass
class EvalConfig:
  """How a trained model is evaluated (`tfp_vae.experiment.evaluate`); every
  evaluation default is stated here.

  Attributes:
    iwae_samples: k of the importance-weighted log-likelihood (0: skip it).
    proposal_scale: standard deviation of the Gaussian IWAE proposal around
      a point-mass (MMD-VAE) code.
    images_per_call: latent samples decoded per call of the IWAE estimate
      (a memory/throughput knob).
    test_examples: evaluate on only this many test examples, class by class
      in turn (0: the whole test split).
    cache_dir: where the Frechet feature classifier is cached (None: the
      default cache, $TFP_VAE_CACHE or ~/.cache/tfp_vae).
  """
  iwae_samples: int = declare.field(
      100, 'k of the importance-weighted log-likelihood bound (0: skip it).')
  proposal_scale: float = declare.field(
      0.1, 'Scale of the Gaussian IWAE proposal around the code of a '
      'point-mass (MMD-VAE) encoder.')
  images_per_call: int = declare.field(
      1000, 'Latent samples decoded per call of the IWAE estimate (memory '
      'against speed; 1000 was measured as fast as 2000 with less memory: '
      'docs/performance.md, IWAE evaluation).')
  cache_dir: Optional[str] = declare.field(
      None, 'Where the Frechet feature classifier is cached (default '
      '$TFP_VAE_CACHE or ~/.cache/tfp_vae).')
  test_examples: int = declare.field(
      0, 'Evaluate on only this many test examples, class by class in turn '
      '(0: the whole test split); for a decoder that generates pixel by '
      'pixel (--likelihood=pixel_cnn), whose evaluation draws one sample '
      'per test image.')

  def validate(self) -> 'EvalConfig':
    """Raises ConfigError naming the first invalid setting."""
    if not isinstance(self.iwae_samples, int) or self.iwae_samples < 0:
      raise errors.ConfigError('eval_iwae_samples', self.iwae_samples,
                               'must be >= 0 (0 skips the IWAE estimate)')
    checks.positive_float('proposal_scale', self.proposal_scale)
    checks.positive_int('images_per_call', self.images_per_call)
    checks.non_negative_int('test_examples', self.test_examples)
    return self
