"""Typed configuration of a training run (and of the model server),
validated once at the boundary.

tensorflow/models `official/` style: flags -> `TrainConfig` -> `validate()` ->
trainer. The library never reads flags; `trainers/` builds this object.
"""

import dataclasses
import json
import math
import os
from typing import Any, Optional

from tfp_vae import errors

MODELS = ('vae', 'mmd_vae', 'info_vae', 'iwae')
LIKELIHOODS = ('bernoulli', 'gaussian', 'gaussian_learned',
               'gaussian_per_pixel')
ARCHITECTURES = ('conv', 'conv_dense16', 'mlp', 'conv_deep')
KL_ESTIMATORS = ('analytic', 'sampled')
PRIORS = ('normal', 'mixture', 'vamp')
KERNELS = ('sources', 'rbf', 'imq')
# Settings that only some models use: (field, models).
MODEL_FIELDS = (
    ('beta', ('vae',)), ('alpha', ('info_vae',)),
    ('info_lambda', ('info_vae',)), ('iwae_samples', ('iwae',)),
    ('kl_estimator', ('vae', 'info_vae')),
    ('mmd_weight', ('mmd_vae', 'info_vae')),
    ('kernel', ('mmd_vae', 'info_vae')),
    ('kernel_scales', ('mmd_vae', 'info_vae')),
    ('unbiased_mmd', ('mmd_vae', 'info_vae')),
)
# Models with a Gaussian encoder q(z|x) (the VampPrior needs one).
GAUSSIAN_ENCODER_MODELS = ('vae', 'info_vae', 'iwae')

# Settings that may differ between the run that wrote a checkpoint and the run
# that resumes from it: where things live, how long to train, how fast to
# learn (lowering the rate after a NaN and resuming is the documented fix) and
# how often to draw.  Everything else defines what is being trained.
RESUMABLE_FIELDS = frozenset({
    'epochs', 'learning_rate', 'model_dir', 'export_dir', 'data_dir',
    'idx_dir', 'download', 'plot_every', 'verbose', 'steps_per_execution', 'strategy',
    'cpu_replicas',
})
STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
LR_SCHEDULES = ('constant', 'cosine')
PRECISIONS = ('float32', 'mixed_bfloat16', 'mixed_float16')


@dataclasses.dataclass
class TrainConfig:
  """Everything that defines one training run.

  Attributes:
    model: 'vae' (ELBO; beta-VAE with `beta`), 'mmd_vae' (reconstruction +
      MMD), 'info_vae' (the general InfoVAE objective with `alpha` and
      `info_lambda`) or 'iwae' (k-sample importance-weighted bound).
    likelihood: 'bernoulli' (logits), 'gaussian' (fixed `gaussian_scale`),
      'gaussian_learned' (one learned scale, starting at `gaussian_scale`)
      or 'gaussian_per_pixel' (a learned scale per pixel).
    architecture: 'conv' (source document 000), 'conv_dense16' (003, with
      the dense-16 bottleneck), 'mlp' (004, hidden 128, elu) or 'conv_deep'
      (three strided convs, for 32x32 colour images such as cifar10).
    prior: 'normal', 'mixture' (learned mixture of Gaussians) or 'vamp'
      (VampPrior; Gaussian-encoder models only).
    prior_components: mixture components / VampPrior pseudo-inputs.
    beta: weight of the rate in the VAE objective (model 'vae').
    alpha, info_lambda: InfoVAE weights (model 'info_vae'): the objective is
      distortion + (1 - alpha) rate + (alpha + lambda - 1) MMD; None for
      lambda picks 1 + the MMD-VAE's default weight.
    iwae_samples: k of the IWAE training bound (model 'iwae').
    kernel, kernel_scales: MMD kernel ('sources', 'rbf' with bandwidth
      kernel_scales[0], 'imq' summed over kernel_scales).
    unbiased_mmd: the U-statistic MMD estimate instead of the sources'
      biased one.
    latent_dim: size of the code z.
    dataset: 'mnist_5k' (embedded, offline) or any TFDS image dataset name.
    data_dir: TFDS data directory (None: TFDS's default).
    idx_dir: a directory holding the dataset's four IDX files (None: the
      distribution's location, /usr/share/datasets/<name>; see
      `tfp_vae.data.load` for the lookup order).
    download: let TFDS download and prepare a dataset that is not prepared.
    binarize: dynamic binarization of training pixels (Bernoulli only).
    validation_examples: hold this many examples out of the training split
      (never the test split) and report the objective on them after every
      epoch as val_* (`data.split_validation`).
    early_stopping_patience: stop when the validation loss has not improved
      for this many epochs and keep the best epoch's weights (0: off; needs
      validation_examples), as source document 003 does.
    lr_schedule: 'constant' or 'cosine' (cosine decay from learning_rate to
      0 over all the run's steps).
    train_examples: train on only this many training examples (0: all),
      picked class by class in turn from the training split in its order
      (`data.subset`), so 500 means 50 per class on a 10-class dataset; the
      InfoVAE tutorial's small-data experiment.
    batch_size: global batch size (summed over all replicas).
    epochs: total number of epochs the run should reach.
    learning_rate: Adam learning rate.
    seed: seed for weights, shuffling and the Monte-Carlo draws.
    kl_estimator: 'analytic' (tfd.kl_divergence) or 'sampled'
      (log q(z|x) - log p(z) at the sampled z, the source's estimate).
    mmd_weight: weight of MMD(q(z), p(z)) in the MMD-VAE objective; None picks
      the weight that reproduces the source's `MSE + MMD` balance (see
      `resolved_mmd_weight`).
    gaussian_scale: fixed standard deviation of the Gaussian likelihood.
    model_dir: where checkpoints, config.json, metrics.json, plots and
      TensorBoard logs go.
    export_dir: if set, a SavedModel is written to export_dir/<version>/.
    plot_every: also draw the plots every this many epochs (0: only at the end).
    steps_per_execution: training steps run per call into the compiled
      graph (Keras `steps_per_execution`): fewer Python round trips; the NaN
      guard and progress bar see the loss every this many steps.
    precision: 'float32', or a Keras mixed-precision policy for the encoder
      and decoder networks ('mixed_bfloat16', 'mixed_float16' with dynamic
      loss scaling): layers compute in 16 bits and keep float32 weights;
      network outputs are cast back to float32 before the distributions
      and losses.  Pays only on hardware with fast 16-bit units (GPUs,
      AVX512-BF16/AMX CPUs): on an AVX2 CPU it is slower (see the README's
      Performance section).
    verbose: show a progress bar.
    strategy: 'auto', 'default', 'mirrored' or 'multi_worker' (see
      `tfp_vae.distribute`).
    cpu_replicas: split the CPU into this many logical devices so that
      mirrored training runs without GPUs.
  """
  model: str = 'vae'
  likelihood: str = 'bernoulli'
  architecture: str = 'conv'
  latent_dim: int = 2
  prior: str = 'normal'
  prior_components: int = 10
  beta: float = 1.0
  alpha: float = 0.0
  info_lambda: Optional[float] = None
  iwae_samples: int = 5
  kernel: str = 'sources'
  kernel_scales: tuple = ()
  unbiased_mmd: bool = False
  dataset: str = 'mnist_5k'
  data_dir: Optional[str] = None
  idx_dir: Optional[str] = None
  download: bool = True
  binarize: bool = False
  train_examples: int = 0
  validation_examples: int = 0
  early_stopping_patience: int = 0
  lr_schedule: str = 'constant'
  batch_size: int = 100
  epochs: int = 30
  learning_rate: float = 1e-3
  seed: int = 0
  kl_estimator: str = 'analytic'
  mmd_weight: Optional[float] = None
  gaussian_scale: float = 0.1
  model_dir: str = 'runs/vae'
  export_dir: Optional[str] = None
  plot_every: int = 10
  steps_per_execution: int = 10
  precision: str = 'float32'
  strategy: str = 'auto'
  cpu_replicas: int = 1
  verbose: bool = True

  def validate(self) -> 'TrainConfig':
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the first invalid field and its value.
    """
    _one_of('model', self.model, MODELS)
    _one_of('likelihood', self.likelihood, LIKELIHOODS)
    _one_of('architecture', self.architecture, ARCHITECTURES)
    _one_of('kl_estimator', self.kl_estimator, KL_ESTIMATORS)
    _one_of('prior', self.prior, PRIORS)
    _one_of('kernel', self.kernel, KERNELS)
    _one_of('precision', self.precision, PRECISIONS)
    _positive_int('prior_components', self.prior_components)
    _positive_int('iwae_samples', self.iwae_samples)
    if not _is_number(self.beta) or not math.isfinite(self.beta) or (
        self.beta < 0):
      raise errors.ConfigError('beta', self.beta, 'must be a finite number '
                               '>= 0')
    for name in ('alpha',) + (('info_lambda',) if self.info_lambda
                              is not None else ()):
      value = getattr(self, name)
      if not _is_number(value) or not math.isfinite(value):
        raise errors.ConfigError(name.replace('info_', ''), value,
                                 'must be a finite number')
    self.kernel_scales = tuple(self.kernel_scales or ())
    for value in self.kernel_scales:
      if not _is_number(value) or not value > 0 or not math.isfinite(value):
        raise errors.ConfigError('kernel_scales', list(self.kernel_scales),
                                 'must be positive finite numbers')
    _positive_int('latent_dim', self.latent_dim)
    _positive_int('batch_size', self.batch_size)
    _positive_int('epochs', self.epochs)
    _positive_int('steps_per_execution', self.steps_per_execution)
    _one_of('strategy', self.strategy, STRATEGIES)
    _positive_int('cpu_replicas', self.cpu_replicas)
    _non_negative_int('seed', self.seed)
    _non_negative_int('train_examples', self.train_examples)
    _non_negative_int('validation_examples', self.validation_examples)
    _non_negative_int('early_stopping_patience', self.early_stopping_patience)
    _one_of('lr_schedule', self.lr_schedule, LR_SCHEDULES)
    if self.early_stopping_patience and not self.validation_examples:
      raise errors.ConfigError(
          'early_stopping_patience', self.early_stopping_patience,
          'needs --validation_examples > 0 (early stopping watches a '
          'validation split held out from the training data, never the test '
          'split)')
    _non_negative_int('plot_every', self.plot_every)
    _positive_float('learning_rate', self.learning_rate)
    _positive_float('gaussian_scale', self.gaussian_scale)
    if self.mmd_weight is not None:
      if not _is_number(self.mmd_weight) or not self.mmd_weight >= 0 or (
          not math.isfinite(self.mmd_weight)):
        raise errors.ConfigError('mmd_weight', self.mmd_weight,
                                 'must be a finite number >= 0')
    if not isinstance(self.dataset, str) or not self.dataset:
      raise errors.ConfigError('dataset', self.dataset,
                               'must be a dataset name')
    if not isinstance(self.model_dir, str) or not self.model_dir:
      raise errors.ConfigError('model_dir', self.model_dir,
                               'must be a directory path')
    if self.binarize and self.likelihood != 'bernoulli':
      raise errors.ConfigError(
          'binarize', self.binarize,
          'needs --likelihood=bernoulli (binary pixels under a Gaussian '
          'likelihood are not what the flag is for)')
    self._check_combination()
    return self

  def _check_combination(self) -> None:
    """Refuses settings the chosen model would silently ignore, and
    combinations that have no meaning."""
    default = TrainConfig()
    for name, models in MODEL_FIELDS:
      if getattr(self, name) != getattr(default, name) and (
          self.model not in models):
        flag = 'lambda' if name == 'info_lambda' else name
        raise errors.ConfigError(
            flag, getattr(self, name),
            f'is used only by --model={" or --model=".join(models)}, not '
            f'--model={self.model}')
    if self.prior == 'vamp' and self.model not in GAUSSIAN_ENCODER_MODELS:
      raise errors.ConfigError(
          'prior', self.prior,
          f'needs a Gaussian encoder (--model='
          f'{", ".join(GAUSSIAN_ENCODER_MODELS)}): the VampPrior is a '
          f'mixture of q(z|u_k), and the {self.model} encoder is a point '
          f'mass with no density')
    if self.kernel == 'rbf' and len(self.kernel_scales) > 1:
      raise errors.ConfigError('kernel_scales', list(self.kernel_scales),
                               'takes one bandwidth for --kernel=rbf')

  def for_model(self, model: str) -> 'TrainConfig':
    """A copy for `model`, with the settings only other models use reset
    to their defaults (trainers.compare shares one set of flags)."""
    default = TrainConfig()
    changes = {name: getattr(default, name) for name, models in MODEL_FIELDS
               if model not in models}
    return dataclasses.replace(self, model=model, **changes)

  def resolved_kl_estimator(self) -> str:
    """'analytic' becomes 'sampled' for priors without a closed-form KL."""
    if self.kl_estimator == 'analytic' and self.prior != 'normal':
      return 'sampled'
    return self.kl_estimator

  def resolved_info_lambda(self, num_pixels: int) -> float:
    if self.info_lambda is not None:
      return float(self.info_lambda)
    return 1.0 + self.resolved_mmd_weight(num_pixels)

  def resolved_mmd_weight(self, num_pixels: int) -> float:
    """The MMD weight used in the objective.

    The sources' MMD-VAE minimises `mean((x - x_hat)^2) + MMD`, the mean over
    the D pixel values of a batch.  With a Gaussian likelihood of fixed scale s,
    -log p(x|z) = sum((x - x_hat)^2) / (2 s^2) + const = D / (2 s^2) * mean(...)
    + const per image, so weight D / (2 s^2) reproduces the sources' objective
    up to a constant factor and offset.  For the Bernoulli likelihood the
    default is D, the same balance with the cross-entropy sum in place of the
    squared-error sum (equivalent to s^2 = 1/2).

    Args:
      num_pixels: D, the number of values in one image (H * W * C).

    Returns:
      `mmd_weight` if set, else the default above.
    """
    if self.mmd_weight is not None:
      return float(self.mmd_weight)
    if self.likelihood.startswith('gaussian'):
      # Learned scales start at gaussian_scale.
      return num_pixels / (2.0 * self.gaussian_scale**2)
    return float(num_pixels)

  def to_dict(self) -> dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True)

  @classmethod
  def from_dict(cls, values: dict[str, Any]) -> 'TrainConfig':
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
      raise errors.ConfigError('config', unknown, 'has unknown keys')
    values = dict(values)
    if 'kernel_scales' in values:  # a list in JSON
      values['kernel_scales'] = tuple(values['kernel_scales'] or ())
    return cls(**values)

  def differences(self, other: 'TrainConfig') -> list[tuple[str, Any, Any]]:
    """Fields outside RESUMABLE_FIELDS whose values differ: (name, self, other)."""
    out = []
    for f in dataclasses.fields(self):
      if f.name in RESUMABLE_FIELDS:
        continue
      a, b = getattr(self, f.name), getattr(other, f.name)
      if a != b:
        out.append((f.name, a, b))
    return out


@dataclasses.dataclass
class ServeConfig:
  """How `trainers.serve` serves an export directory (`tfp_vae.serving`).

  Attributes:
    export_dir: the model base path: the folder holding the integer version
      folders that `trainers.export` and `trainers.train --export_dir`
      write.
    model_name: the NAME in /v1/models/NAME; default the export
      directory's name, as in the models.config the exporter writes.
    host: the address to listen on: 0.0.0.0 every interface (a container),
      127.0.0.1 this machine only.
    rest_api_port: port of TF Serving's REST API (TF Serving's default 8501).
    grpc_port: port of TF Serving's gRPC API (8500); 0 turns gRPC off.
    max_batch: the largest batch a request may carry: instances, the
      leading dimension of an input, `num_samples`.
    max_request_bytes: the largest REST request body or gRPC message.
    poll_seconds: how often to look for new and removed versions, like TF
      Serving's --file_system_poll_wait_seconds; 0 loads once at start.
    max_versions: serve only the newest N versions (0: every version).
    grace_seconds: after SIGTERM, how long requests in flight may take
      before they are cancelled.
  """
  export_dir: str = ''
  model_name: Optional[str] = None
  host: str = '0.0.0.0'
  rest_api_port: int = 8501
  grpc_port: int = 8500
  max_batch: int = 1024
  max_request_bytes: int = 64 * 2**20
  poll_seconds: float = 1.0
  max_versions: int = 0
  grace_seconds: float = 30.0

  def validate(self) -> 'ServeConfig':
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the first invalid field and its value.
    """
    if not isinstance(self.export_dir, str) or not self.export_dir:
      raise errors.ConfigError('export_dir', self.export_dir,
                               'must be a directory path')
    name = self.resolved_model_name()
    if not name or any(c in name for c in '/: \t\n'):
      raise errors.ConfigError('model_name', name,
                               "must be a name without '/', ':' or spaces "
                               '(it is a URL path segment)')
    if not isinstance(self.host, str) or not self.host:
      raise errors.ConfigError('host', self.host, 'must be an address')
    _port('rest_api_port', self.rest_api_port, allow_zero=False)
    _port('grpc_port', self.grpc_port, allow_zero=True)
    if self.grpc_port == self.rest_api_port:
      raise errors.ConfigError('grpc_port', self.grpc_port,
                               'must differ from --rest_api_port')
    _positive_int('max_batch', self.max_batch)
    _positive_int('max_request_bytes', self.max_request_bytes)
    for field in ('poll_seconds', 'grace_seconds'):
      value = getattr(self, field)
      if not _is_number(value) or not math.isfinite(value) or value < 0:
        raise errors.ConfigError(field, value,
                                 'must be a finite number >= 0')
    _non_negative_int('max_versions', self.max_versions)
    return self

  def resolved_model_name(self) -> str:
    """`model_name`, else the export directory's name."""
    if self.model_name:
      return self.model_name
    return os.path.basename(os.path.abspath(self.export_dir))


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _one_of(name, value, allowed):
  if value not in allowed:
    raise errors.ConfigError(name, value, f'must be one of {list(allowed)}')


def _positive_int(name, value):
  if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
    raise errors.ConfigError(name, value, 'must be a positive integer')


def _non_negative_int(name, value):
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise errors.ConfigError(name, value, 'must be a non-negative integer')


def _port(name, value, allow_zero):
  low = 0 if allow_zero else 1
  if not isinstance(value, int) or isinstance(value, bool) or not (
      low <= value <= 65535):
    raise errors.ConfigError(name, value, f'must be a port in [{low}, 65535]'
                             + (' (0: off)' if allow_zero else ''))


def _positive_float(name, value):
  if not _is_number(value) or not math.isfinite(value) or value <= 0:
    raise errors.ConfigError(name, value, 'must be a positive finite number')
