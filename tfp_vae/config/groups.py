"""The four groups of a training run's settings, as the Model Garden splits
an experiment:

  model    what is trained: the family member (`tfp_vae.family.members`,
           whose own dataclass holds the settings it uses), likelihood,
           networks, latent size and prior;
  data     what it is trained on;
  trainer  how it is trained: batch, epochs, optimizer, seed, precision;
  runtime  where and how the run executes: directories, data location,
           display, strategy, steps per call.

Each group validates its own fields; `settings.TrainConfig` holds the four.
"""

import dataclasses
from typing import Optional

from tfp_vae.config import declare
from tfp_vae.family import components
from tfp_vae.family import members as family
from tfp_vae.internal import checks
from tfp_vae.internal import errors

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
LR_SCHEDULES = ('constant', 'cosine')
STREAM_CHOICES = ('auto', 'on', 'off')
PRECISIONS = ('auto', 'float32', 'mixed_bfloat16', 'mixed_float16')
XLA_CHOICES = ('auto', 'on', 'off')
GROUPS = ('model', 'data', 'trainer', 'runtime')
MAX_SEED = 2**31 - 1


@dataclasses.dataclass
class ModelConfig:
  """What is trained.  The likelihood, architecture and prior are names in
  their registries (`tfp_vae.family.components`); the help of their flags lists
  every registered value."""
  member: family.Member = declare.field(
      None, 'The family member and its own settings.',
      factory=lambda: family.create(family.DEFAULT))
  likelihood: str = declare.field(components.LIKELIHOODS.default, 'p(x|z).',
                                  components.LIKELIHOODS)
  architecture: str = declare.field(components.ARCHITECTURES.default,
                                    'Encoder and decoder networks.',
                                    components.ARCHITECTURES)
  latent_dim: int = declare.field(2, 'Size of the code z.')
  prior: str = declare.field(components.PRIORS.default, 'p(z).',
                             components.PRIORS)
  prior_components: int = declare.field(
      10, 'Mixture components or VampPrior pseudo-inputs.')
  gaussian_scale: float = declare.field(
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
    # The declarations' class attributes: the parts themselves are looked
    # up once, by the run's plan (`plan.make`).
    encoder = components.ENCODERS.get(self.member.encoder)
    prior = components.PRIORS.get(self.prior)
    components.LIKELIHOODS.get(self.likelihood)
    components.ARCHITECTURES.get(self.architecture)
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
  dataset: str = declare.field(
      'mnist_5k', 'mnist_5k (embedded, offline), fashion_mnist, mnist, any '
      'TFDS image dataset or dataset in IDX files (--idx_dir); or a PATH: '
      'a folder of images (class subfolders are labels), a .npy/.npz file, '
      'or TFRecord files (a glob; gs:// and other tf.io.gfile paths).')
  image_size: int = declare.field(
      0, 'Bring every image to S x S pixels (resize; see --center_crop); '
      '0 keeps the data\'s size, which must then be one size.')
  channels: int = declare.field(
      0, '1 (grey) or 3 (colour): convert every image; 0 keeps the '
      'data\'s channels.')
  center_crop: bool = declare.field(
      False, 'With --image_size: crop the centre square before resizing, '
      'instead of resizing the whole image.')
  stream: str = declare.field(
      'auto', 'Stream the training images from their files batch by batch '
      '(on), read them into memory (off), or stream when they decode to '
      'more than 1 GiB (auto); for --dataset=PATH.',
      STREAM_CHOICES, resumable=True)
  binarize: bool = declare.field(
      False, 'Dynamic binarization of training pixels (Bernoulli only).')
  train_examples: int = declare.field(
      0, 'Train on only this many training examples, class by class in '
      'turn (0: all); 500 is the InfoVAE small-data experiment.')
  validation_examples: int = declare.field(
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
  batch_size: int = declare.field(100, 'Global batch size (over all replicas).')
  epochs: int = declare.field(30, 'Total epochs the run reaches.',
                              resumable=True)
  learning_rate: float = declare.field(1e-3, 'Adam learning rate.',
                                       resumable=True)
  lr_schedule: str = declare.field(
      'constant', 'constant, or cosine decay to 0 over the run.',
      LR_SCHEDULES)
  seed: int = declare.field(0, 'Seed of the weights, the data order and the '
                            'Monte-Carlo draws.')
  early_stopping_patience: int = declare.field(
      0, 'Stop after this many epochs without a better validation loss and '
      'keep the best weights (0: off; needs validation_examples).')
  precision: str = declare.field(
      'auto', 'auto: mixed_bfloat16 for a member measured on this class of '
      'machine to train faster with its test loss within the guard '
      '(docs/performance.md), else float32; a comparison uses one '
      'precision, bfloat16 only where every compared member passes; the '
      'log says which and why.  Or float32, mixed_bfloat16, mixed_float16 (with loss scaling) '
      'for the networks\' hidden layers; their last layers and everything '
      'after them stay float32 (tfp_vae/nn/precision.py).',
      PRECISIONS)
  compared_models: str = declare.field(
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
  model_dir: str = declare.field(
      'runs/vae', 'Where the run lives: checkpoints, config.json, '
      'metrics.json, plots, TensorBoard logs.', resumable=True)
  export_dir: Optional[str] = declare.field(
      None, 'Write a SavedModel to EXPORT_DIR/<version>/.', resumable=True)
  data_dir: Optional[str] = declare.field(
      None, 'TFDS data directory, searched first for prepared data '
      '(default ~/tensorflow_datasets).', resumable=True)
  idx_dir: Optional[str] = declare.field(
      None, 'Directory with the four IDX files of the dataset '
      '(train-images-idx3-ubyte[.gz], ...), searched second; default '
      '/usr/share/datasets/<dataset with - for _>, where apt-get install '
      'dataset-fashion-mnist puts Fashion-MNIST.', resumable=True)
  download: bool = declare.field(
      True, 'Last resort: let TFDS download a dataset found nowhere on this '
      'machine.', resumable=True)
  plot_every: int = declare.field(
      10, 'Also plot every N epochs into plots/epoch_N/ (0: only at the '
      'end).', resumable=True)
  verbose: bool = declare.field(True, 'Show a progress bar.', resumable=True)
  steps_per_execution: int = declare.field(
      0, 'Training steps per call into the compiled graph; the NaN guard, '
      'SIGTERM check and progress bar act every N steps.  0: the value '
      'recorded for this class of machine, for one device or several '
      'replicas, with the ratio of images/s it was measured at (10 where '
      'not measured, and always 10 for multi-worker, whose workers must '
      'agree); the log quotes the measurement (docs/performance.md).',
      resumable=True)
  xla: str = declare.field(
      'auto', 'Compile the training step with XLA: on, off, or auto: on '
      'only where XLA was measured faster on this class of machine, else '
      'off; the log quotes the measurement, or says there was none '
      '(docs/performance.md).  One device only: with several replicas or '
      'workers auto is off and on is refused.', XLA_CHOICES,
      resumable=True)
  strategy: str = declare.field(
      'auto', 'auto: multi_worker if TF_CONFIG (or the Kubeflow Trainer v2 '
      'environment) names several tasks, mirrored with several GPUs or '
      '--cpu_replicas > 1, else default.', STRATEGIES, resumable=True)
  cpu_replicas: int = declare.field(
      1, 'Split the CPU into N logical devices for mirrored training '
      'without GPUs.', resumable=True)
  deterministic: bool = declare.field(
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


def fields_of(group: str) -> list[str]:
  cls = {'model': ModelConfig, 'data': DataConfig, 'trainer': TrainerConfig,
         'runtime': RuntimeConfig}[group]
  return [f.name for f in dataclasses.fields(cls) if f.name != 'member']


def group_of_fields() -> dict[str, str]:
  return {name: group for group in GROUPS for name in fields_of(group)}


def resumable_fields() -> set[str]:
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
