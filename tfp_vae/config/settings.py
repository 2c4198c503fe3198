"""Typed configuration of a training run (and of the model server),
validated once at the boundary.

tensorflow/models `official/` style, flags -> config -> `validate()` ->
trainer, with the run split as the Model Garden splits an experiment:

  model    what is trained: the family member (`tfp_vae.family.members`,
           whose own dataclass holds the settings it uses), likelihood,
           networks, latent size and prior;
  data     what it is trained on;
  trainer  how it is trained: batch, epochs, optimizer, seed, precision;
  runtime  where and how the run executes: directories, data location,
           display, strategy, steps per call.

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
import os
from typing import Any, Optional

from tfp_vae.internal import checks
from tfp_vae.family import components
from tfp_vae.internal import errors
from tfp_vae.family import members as family

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
LR_SCHEDULES = ('constant', 'cosine')
STREAM_CHOICES = ('auto', 'on', 'off')
PRECISIONS = ('auto', 'float32', 'mixed_bfloat16', 'mixed_float16')
XLA_CHOICES = ('auto', 'on', 'off')
GROUPS = ('model', 'data', 'trainer', 'runtime')
MAX_SEED = 2**31 - 1
# Examples per request: of an export's batched signatures (encode, decode,
# reconstruct, log_likelihood) and of a served request, unless told
# otherwise (trainers.export and trainers.serve --max_batch).
MAX_BATCH = 1024


def _field(default: Any, help_text: str, choices: tuple = (),
           resumable: bool = False, factory=None):
  metadata = {'help': help_text, 'choices': choices, 'resumable': resumable}
  if factory is not None:
    return dataclasses.field(default_factory=factory, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ModelConfig:
  """What is trained.  The likelihood, architecture and prior are names in
  their registries (`tfp_vae.family.components`); the help of their flags lists
  every registered value."""
  member: family.Member = _field(
      None, 'The family member and its own settings.',
      factory=lambda: family.create(family.DEFAULT))
  likelihood: str = _field(components.LIKELIHOODS.default, 'p(x|z).',
                           components.LIKELIHOODS)
  architecture: str = _field(components.ARCHITECTURES.default,
                             'Encoder and decoder networks.',
                             components.ARCHITECTURES)
  latent_dim: int = _field(2, 'Size of the code z.')
  prior: str = _field(components.PRIORS.default, 'p(z).', components.PRIORS)
  prior_components: int = _field(
      10, 'Mixture components or VampPrior pseudo-inputs.')
  gaussian_scale: float = _field(
      0.1, 'Pixel standard deviation s of the Gaussian likelihoods (the '
      'starting value of a learned one).')

  @property
  def name(self) -> str:
    """The member's `--model` value."""
    return self.member.name

  def parts(self) -> tuple[components.Encoder, components.Likelihood,
                           components.Prior, components.Architecture]:
    """The declarations this config names (validated names)."""
    return (components.ENCODERS.get(self.member.encoder)(),
            components.LIKELIHOODS.get(self.likelihood)(),
            components.PRIORS.get(self.prior)(),
            components.ARCHITECTURES.get(self.architecture)())

  def validate(self) -> None:
    self.member.validate()
    for name in ('likelihood', 'architecture', 'prior'):
      checks.text(name, getattr(self, name), 'a name')
    encoder, _, prior, _ = self.parts()
    checks.positive_int('prior_components', self.prior_components)
    checks.positive_int('latent_dim', self.latent_dim)
    checks.positive_float('gaussian_scale', self.gaussian_scale)
    if prior.needs_density and not encoder.has_density:
      fits = family.MEMBERS.where(
          lambda cls: components.ENCODERS.get(cls.encoder).has_density)
      raise errors.ConfigError(
          'prior', self.prior,
          f'needs an encoder with a density (--model={", ".join(fits)}): '
          f'it is built from q(z|x), and the {self.name} encoder '
          f'({self.member.encoder}) has none')


@dataclasses.dataclass
class DataConfig:
  """What the model is trained on."""
  dataset: str = _field(
      'mnist_5k', 'mnist_5k (embedded, offline), fashion_mnist, mnist, any '
      'TFDS image dataset or dataset in IDX files (--idx_dir); or a PATH: '
      'a folder of images (class subfolders are labels), a .npy/.npz file, '
      'or TFRecord files (a glob; gs:// and other tf.io.gfile paths).')
  image_size: int = _field(
      0, 'Bring every image to S x S pixels (resize; see --center_crop); '
      '0 keeps the data\'s size, which must then be one size.')
  channels: int = _field(
      0, '1 (grey) or 3 (colour): convert every image; 0 keeps the '
      'data\'s channels.')
  center_crop: bool = _field(
      False, 'With --image_size: crop the centre square before resizing, '
      'instead of resizing the whole image.')
  stream: str = _field(
      'auto', 'Stream the training images from their files batch by batch '
      '(on), read them into memory (off), or stream when they decode to '
      'more than 1 GiB (auto); for --dataset=PATH.',
      STREAM_CHOICES, resumable=True)
  binarize: bool = _field(
      False, 'Dynamic binarization of training pixels (Bernoulli only).')
  train_examples: int = _field(
      0, 'Train on only this many training examples, class by class in '
      'turn (0: all); 500 is the InfoVAE small-data experiment.')
  validation_examples: int = _field(
      0, 'Hold this many training examples out as a validation split '
      '(val_* after every epoch; never the test split).')

  def validate(self, likelihood: str) -> None:
    checks.text('dataset', self.dataset, 'a dataset name')
    checks.boolean('binarize', self.binarize)
    checks.non_negative_int('train_examples', self.train_examples)
    checks.non_negative_int('validation_examples', self.validation_examples)
    checks.non_negative_int('image_size', self.image_size)
    checks.boolean('center_crop', self.center_crop)
    if self.channels not in (0, 1, 3):
      raise errors.ConfigError('channels', self.channels,
                               'must be 0 (keep), 1 (grey) or 3 (colour)')
    if self.center_crop and not self.image_size:
      raise errors.ConfigError('center_crop', self.center_crop,
                               'needs --image_size, the size to crop to')
    checks.one_of('stream', self.stream, STREAM_CHOICES)
    if self.binarize and not components.LIKELIHOODS.get(likelihood).binary:
      binary = components.LIKELIHOODS.where(lambda cls: cls.binary)
      raise errors.ConfigError(
          'binarize', self.binarize,
          f'needs a likelihood of binary pixels ({", ".join(binary)}), not '
          f'{likelihood}')


@dataclasses.dataclass
class TrainerConfig:
  """How the model is trained."""
  batch_size: int = _field(100, 'Global batch size (over all replicas).')
  epochs: int = _field(30, 'Total epochs the run reaches.', resumable=True)
  learning_rate: float = _field(1e-3, 'Adam learning rate.', resumable=True)
  lr_schedule: str = _field(
      'constant', 'constant, or cosine decay to 0 over the run.',
      LR_SCHEDULES)
  seed: int = _field(0, 'Seed of the weights, the data order and the '
                     'Monte-Carlo draws.')
  early_stopping_patience: int = _field(
      0, 'Stop after this many epochs without a better validation loss and '
      'keep the best weights (0: off; needs validation_examples).')
  precision: str = _field(
      'auto', 'auto: mixed_bfloat16 for a member measured on this class of '
      'machine to train faster with its test loss within the guard '
      '(docs/performance.md), else float32; a comparison uses one '
      'precision, bfloat16 only where every compared member passes; the '
      'log says which and why.  Or float32, mixed_bfloat16, mixed_float16 (with loss scaling) '
      'for the networks\' hidden layers; their last layers and everything '
      'after them stay float32 (tfp_vae/nn/precision.py).',
      PRECISIONS)
  compared_models: str = _field(
      '', 'This run is one of a comparison of these members '
      '(comma-separated --model names): --precision=auto then decides for '
      'all of them together, as trainers.compare does, so that runs trained '
      'apart (the compare pipeline\'s pods) get the precision the comparison '
      'gets.  Empty: for this run\'s member alone.', resumable=True)

  def compared_members(self) -> tuple[str, ...]:
    """The members named by compared_models, each once, in order."""
    return tuple(dict.fromkeys(
        m.strip() for m in self.compared_models.split(',') if m.strip()))

  def validate(self, data: DataConfig) -> None:
    checks.positive_int('batch_size', self.batch_size)
    checks.positive_int('epochs', self.epochs)
    checks.positive_float('learning_rate', self.learning_rate)
    checks.one_of('lr_schedule', self.lr_schedule, LR_SCHEDULES)
    checks.non_negative_int('seed', self.seed)
    if self.seed > MAX_SEED:
      raise errors.ConfigError('seed', self.seed,
                               f'must be at most {MAX_SEED} (2^31 - 1: '
                               f'seeds are 32-bit in TensorFlow)')
    checks.non_negative_int('early_stopping_patience',
                            self.early_stopping_patience)
    checks.one_of('precision', self.precision, PRECISIONS)
    if not isinstance(self.compared_models, str):
      raise errors.ConfigError('compared_models', self.compared_models,
                               'must be comma-separated --model names')
    unknown = [m for m in self.compared_members()
               if m not in family.names()]
    if unknown:
      raise errors.ConfigError(
          'compared_models', self.compared_models,
          f'names no registered member: {", ".join(unknown)} (registered: '
          f'{", ".join(family.names())})')
    if self.early_stopping_patience and not data.validation_examples:
      raise errors.ConfigError(
          'early_stopping_patience', self.early_stopping_patience,
          'needs validation_examples > 0 (early stopping watches a '
          'validation split held out from the training data, never the test '
          'split)')


@dataclasses.dataclass
class RuntimeConfig:
  """Where and how the run executes; may change between a run and its
  resumption."""
  model_dir: str = _field(
      'runs/vae', 'Where the run lives: checkpoints, config.json, '
      'metrics.json, plots, TensorBoard logs.', resumable=True)
  export_dir: Optional[str] = _field(
      None, 'Write a SavedModel to EXPORT_DIR/<version>/.', resumable=True)
  data_dir: Optional[str] = _field(
      None, 'TFDS data directory, searched first for prepared data '
      '(default ~/tensorflow_datasets).', resumable=True)
  idx_dir: Optional[str] = _field(
      None, 'Directory with the four IDX files of the dataset '
      '(train-images-idx3-ubyte[.gz], ...), searched second; default '
      '/usr/share/datasets/<dataset with - for _>, where apt-get install '
      'dataset-fashion-mnist puts Fashion-MNIST.', resumable=True)
  download: bool = _field(
      True, 'Last resort: let TFDS download a dataset found nowhere on this '
      'machine.', resumable=True)
  plot_every: int = _field(
      10, 'Also plot every N epochs into plots/epoch_N/ (0: only at the '
      'end).', resumable=True)
  verbose: bool = _field(True, 'Show a progress bar.', resumable=True)
  steps_per_execution: int = _field(
      0, 'Training steps per call into the compiled graph; the NaN guard, '
      'SIGTERM check and progress bar act every N steps.  0: the value '
      'recorded for this class of machine, for one device or several '
      'replicas, with the ratio of images/s it was measured at (10 where '
      'not measured, and always 10 for multi-worker, whose workers must '
      'agree); the log quotes the measurement (docs/performance.md).',
      resumable=True)
  xla: str = _field(
      'auto', 'Compile the training step with XLA: on, off, or auto: on '
      'only where XLA was measured faster on this class of machine, else '
      'off; the log quotes the measurement, or says there was none '
      '(docs/performance.md).  One device only: with several replicas or '
      'workers auto is off and on is refused.', XLA_CHOICES,
      resumable=True)
  strategy: str = _field(
      'auto', 'auto: multi_worker if TF_CONFIG (or the Kubeflow Trainer v2 '
      'environment) names several tasks, mirrored with several GPUs or '
      '--cpu_replicas > 1, else default.', STRATEGIES, resumable=True)
  cpu_replicas: int = _field(
      1, 'Split the CPU into N logical devices for mirrored training '
      'without GPUs.', resumable=True)
  deterministic: bool = _field(
      False, "TensorFlow's op determinism: a run, interrupted and resumed "
      'or not, gives the same weights bit for bit (slower).', resumable=True)

  def validate(self) -> None:
    checks.text('model_dir', self.model_dir, 'a directory path')
    for name in ('export_dir', 'data_dir', 'idx_dir'):
      value = getattr(self, name)
      if value is not None:
        checks.text(name, value, 'a directory path')
    checks.boolean('download', self.download)
    checks.non_negative_int('plot_every', self.plot_every)
    checks.boolean('verbose', self.verbose)
    checks.non_negative_int('steps_per_execution',
                            self.steps_per_execution)
    checks.one_of('xla', self.xla, XLA_CHOICES)
    checks.one_of('strategy', self.strategy, STRATEGIES)
    checks.positive_int('cpu_replicas', self.cpu_replicas)
    checks.boolean('deterministic', self.deterministic)


@dataclasses.dataclass
class TrainConfig:
  """Everything that defines one training run, in four groups (module
  doc).  `TrainConfig.create(**settings)` builds one from flat settings,
  as the command line names them."""
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  trainer: TrainerConfig = dataclasses.field(default_factory=TrainerConfig)
  runtime: RuntimeConfig = dataclasses.field(default_factory=RuntimeConfig)

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
    groups: dict[str, dict[str, Any]] = {g: {} for g in GROUPS}
    owner = _group_of_fields()
    member_values = {}
    for key, value in settings.items():
      if key in member_settings:
        member_values[key] = value
      elif key in owner:
        groups[owner[key]][key] = value
      else:
        raise errors.ConfigError(key, value, 'is not a setting')
    groups['model']['member'] = family.create(model, **member_values)
    return cls(model=ModelConfig(**groups['model']),
               data=DataConfig(**groups['data']),
               trainer=TrainerConfig(**groups['trainer']),
               runtime=RuntimeConfig(**groups['runtime']))

  def flat(self) -> dict[str, Any]:
    """{setting: value} over every group and the member's settings."""
    out = {'model': self.model.name}
    out.update(_public_fields(self.model.member))
    for group in GROUPS:
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
    for group in GROUPS:
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
    """The inverse of `to_dict`; also reads the flat config.json of runs
    written before the settings were grouped.

    Raises:
      ConfigError: unknown keys or settings.
    """
    if not isinstance(values, dict):
      raise errors.ConfigError('config', values, 'must be a JSON object')
    # config.json also records the run's plan (`tfp_vae.runtime.plan`), which is
    # not a setting.
    values = {k: v for k, v in values.items() if k != 'plan'}
    if set(values) <= set(GROUPS) and values:
      flat: dict[str, Any] = {}
      for group, body in values.items():
        if not isinstance(body, dict):
          raise errors.ConfigError(group, body, 'must be a JSON object')
        body = dict(body)
        if group == 'model':
          flat['model'] = body.pop('name', family.DEFAULT)
          flat.update(body.pop('settings', {}))
        unknown = sorted(set(body) - set(_fields_of(group)))
        if unknown:
          raise errors.ConfigError(group, unknown, 'has unknown keys')
        flat.update(body)
    else:
      flat = dict(values)
      known = set(_group_of_fields()) | set(family.all_settings()) | {
          'model'}
      unknown = sorted(set(flat) - known)
      if unknown:
        raise errors.ConfigError('config', unknown, 'has unknown keys')
      flat = _legacy_member_settings(flat)
    return cls.create(**flat)

  def differences(self, other: 'TrainConfig',
                  ignore_member_settings: bool = False,
                  ignore: tuple[str, ...] = ()
                  ) -> list[tuple[str, Any, Any]]:
    """Settings outside the resumable ones (and `ignore`) whose values
    differ: (name, self's value, other's value), in declaration order.
    `ignore_member_settings`: the members' settings are compared resolved,
    elsewhere (`plan.differences`)."""
    resumable = _resumable() | set(ignore)
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


def _fields_of(group: str) -> list[str]:
  cls = {'model': ModelConfig, 'data': DataConfig, 'trainer': TrainerConfig,
         'runtime': RuntimeConfig}[group]
  return [f.name for f in dataclasses.fields(cls) if f.name != 'member']


def _group_of_fields() -> dict[str, str]:
  return {name: group for group in GROUPS for name in _fields_of(group)}


def _resumable() -> set[str]:
  out = set()
  for cls in (ModelConfig, DataConfig, TrainerConfig, RuntimeConfig):
    out |= {f.name for f in dataclasses.fields(cls)
            if f.metadata.get('resumable')}
  return out


def group_fields() -> dict[str, list[dataclasses.Field]]:
  """{group: its fields} (the member excluded): what the command line
  defines a flag for, in order."""
  classes = {'model': ModelConfig, 'data': DataConfig,
             'trainer': TrainerConfig, 'runtime': RuntimeConfig}
  return {g: [f for f in dataclasses.fields(c) if f.name != 'member']
          for g, c in classes.items()}


def _legacy_member_settings(flat: dict[str, Any]) -> dict[str, Any]:
  """A flat config.json of the earlier layout stored every member's setting
  at its default; keep only those the run's member declares."""
  name = flat.get('model', family.DEFAULT)
  try:
    own = {f.name: f for f in dataclasses.fields(family.get(name))}
  except errors.ConfigError:
    return flat
  out = {}
  for key, value in flat.items():
    if key in family.all_settings() and key not in own:
      continue
    out[key] = value
  return out


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
    cache_dir: where the Frechet feature classifier is cached (None: the
      default cache, $TFP_VAE_CACHE or ~/.cache/tfp_vae).
  """
  iwae_samples: int = _field(
      100, 'k of the importance-weighted log-likelihood bound (0: skip it).')
  proposal_scale: float = _field(
      0.1, 'Scale of the Gaussian IWAE proposal around the code of a '
      'point-mass (MMD-VAE) encoder.')
  images_per_call: int = _field(
      1000, 'Latent samples decoded per call of the IWAE estimate (memory '
      'against speed; 1000 was measured as fast as 2000 with less memory: '
      'docs/performance.md, IWAE evaluation).')
  cache_dir: Optional[str] = _field(
      None, 'Where the Frechet feature classifier is cached (default '
      '$TFP_VAE_CACHE or ~/.cache/tfp_vae).')

  def validate(self) -> 'EvalConfig':
    """Raises ConfigError naming the first invalid setting."""
    if not isinstance(self.iwae_samples, int) or self.iwae_samples < 0:
      raise errors.ConfigError('eval_iwae_samples', self.iwae_samples,
                               'must be >= 0 (0 skips the IWAE estimate)')
    checks.positive_float('proposal_scale', self.proposal_scale)
    checks.positive_int('images_per_call', self.images_per_call)
    return self


@dataclasses.dataclass
class ServeConfig:
  """How `trainers.serve` serves SavedModels (`tfp_vae.serving`).

  Each field's help is its `trainers.serve` flag's help (the flags are
  generated from these fields, `trainers/common.py`).
  """
  export_dir: str = _field(
      '', "The model base path: the folder holding the version folders 1/, "
      "2/, ... (trainers.export --export_dir; TF Serving's "
      "--model_base_path).")
  model_config_file: str = _field(
      '', "Instead of --export_dir: TF Serving's model config file (a text "
      'ModelServerConfig with a model_config_list), for several models, '
      'version policies and labels.')
  model_name: Optional[str] = _field(
      None, 'NAME in /v1/models/NAME for --export_dir (default: '
      "export_dir's name, as in its models.config).")
  host: str = _field(
      '0.0.0.0', 'Address to listen on (127.0.0.1: this machine only).')
  rest_api_port: int = _field(
      8501, "Port of the REST APIs (TF Serving's default).")
  grpc_port: int = _field(
      8500, "Port of the gRPC services: TF Serving's and KServe V2's (0: no "
      'gRPC).')
  max_batch: int = _field(
      MAX_BATCH, "Largest batch a request may carry: instances, examples, "
      "an input's leading dimension, num_samples.")
  max_request_bytes: int = _field(
      64 * 2**20, 'Largest REST request body (HTTP 413 above it) or gRPC '
      'message.')
  poll_seconds: float = _field(
      1.0, "Look for new and removed versions this often (TF Serving's "
      '--file_system_poll_wait_seconds; 0: never).')
  max_versions: int = _field(
      1, "--export_dir's version policy: serve the newest N versions (TF "
      "Serving's default policy serves 1); 0: all.")
  grace_seconds: float = _field(
      30.0, 'After SIGTERM, how long requests in flight may take.')
  monitoring_config_file: str = _field(
      '', "TF Serving's monitoring config (a text MonitoringConfig): its "
      'prometheus_config moves or turns off the Prometheus page (default '
      '/monitoring/prometheus/metrics).')

  def validate(self) -> 'ServeConfig':
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the first invalid field and its value.
    """
    for field in ('export_dir', 'model_config_file', 'monitoring_config_file'):
      if not isinstance(getattr(self, field), str):
        raise errors.ConfigError(field, getattr(self, field),
                                 'must be a path')
    if not self.export_dir and not self.model_config_file:
      raise errors.ConfigError(
          'export_dir', self.export_dir,
          'is required (the folder holding the version folders 1/, 2/, ...)'
          ' unless --model_config_file lists the models')
    if self.export_dir and self.model_config_file:
      raise errors.ConfigError(
          'model_config_file', self.model_config_file,
          'and --export_dir cannot both be given: one names one model, the '
          'other lists them')
    if self.model_config_file and self.model_name:
      raise errors.ConfigError('model_name', self.model_name,
                               'names the --export_dir model; with '
                               '--model_config_file the file names them')
    if self.export_dir:
      name = self.resolved_model_name()
      if not name or any(c in name for c in '/: \t\n'):
        raise errors.ConfigError('model_name', name,
                                 "must be a name without '/', ':' or spaces "
                                 '(it is a URL path segment)')
    if not isinstance(self.host, str) or not self.host:
      raise errors.ConfigError('host', self.host, 'must be an address')
    checks.port('rest_api_port', self.rest_api_port, allow_zero=False)
    checks.port('grpc_port', self.grpc_port, allow_zero=True)
    if self.grpc_port == self.rest_api_port:
      raise errors.ConfigError('grpc_port', self.grpc_port,
                               'must differ from --rest_api_port')
    checks.positive_int('max_batch', self.max_batch)
    checks.positive_int('max_request_bytes', self.max_request_bytes)
    for field in ('poll_seconds', 'grace_seconds'):
      value = getattr(self, field)
      checks.finite_non_negative(field, value)
    checks.non_negative_int('max_versions', self.max_versions)
    return self

  def resolved_model_name(self) -> str:
    """`model_name`, else the export directory's name."""
    if self.model_name:
      return self.model_name
    return os.path.basename(os.path.abspath(self.export_dir))
