"""Flags shared by the trainers and the one way they report errors."""

import dataclasses
import os
import sys

# Quieten TensorFlow's C++ start-up chatter before it is imported.
os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# oneDNN kernels for convolutions and matmuls.  TensorFlow turns them on by
# default only on CPUs with AVX512/AMX; on this AVX2 machine they trained
# the VAE 20% and the MMD-VAE 4% faster with 15% less memory
# (bench/train_throughput.py, README: Performance).  Results differ from
# Eigen's kernels by float rounding only.  TF_ENABLE_ONEDNN_OPTS=0 opts out.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')

import logging as std_logging  # pylint: disable=g-import-not-at-top

from absl import flags
from absl import logging

# TensorFlow's own INFO lines (one per checkpoint write, "Sharding callback
# duration", logged through absl by functional_saver.py) drown the progress
# bars; its warnings and errors still show.
std_logging.getLogger('tensorflow').setLevel(std_logging.WARNING)


class _QuietCheckpointInfo(std_logging.Filter):

  def filter(self, record):
    return not (record.levelno <= std_logging.INFO and
                record.pathname.endswith('functional_saver.py'))


logging.get_absl_logger().addFilter(_QuietCheckpointInfo())

from tfp_vae import config as config_lib  # pylint: disable=g-import-not-at-top
from tfp_vae import errors

FLAGS = flags.FLAGS

# Exit codes: 1 for an error the user can fix (bad flag, missing data,
# mismatched checkpoint, non-finite loss), as absl uses for flag errors; a
# TFJob with `restartPolicy: ExitCode` treats 1-127 as permanent.  143
# (128 + SIGTERM) after a preemption was checkpointed, or when a peer worker
# was lost: retryable (128-255), so the job restarts and resumes.
EXIT_USER_ERROR = 1
EXIT_RETRYABLE = 143


def define_shared_flags() -> None:
  """Flags that define what is trained, shared by train and compare."""
  d = config_lib.TrainConfig()
  flags.DEFINE_enum('likelihood', d.likelihood, config_lib.LIKELIHOODS,
                    'p(x|z): Bernoulli logits, or Gaussian with fixed scale '
                    '--gaussian_scale.')
  flags.DEFINE_enum('architecture', d.architecture, config_lib.ARCHITECTURES,
                    'conv: the network of the source document 000.')
  flags.DEFINE_integer('latent_dim', d.latent_dim, 'Size of the code z.')
  flags.DEFINE_enum('prior', d.prior, config_lib.PRIORS,
                    'p(z): normal N(0, I); mixture: learned mixture of '
                    'Gaussians; vamp: VampPrior (Gaussian encoders only).')
  flags.DEFINE_integer('prior_components', d.prior_components,
                       'Mixture components / VampPrior pseudo-inputs.')
  flags.DEFINE_enum('kernel', d.kernel, config_lib.KERNELS,
                    "MMD kernel: the sources' Gaussian, rbf (bandwidth "
                    '--kernel_scales), imq (inverse multiquadrics summed '
                    'over --kernel_scales).')
  flags.DEFINE_list('kernel_scales', [],
                    'rbf: one bandwidth (default 1); imq: scales (default '
                    '0.1,0.2,0.5,1,2,5,10).')
  flags.DEFINE_bool('unbiased_mmd', d.unbiased_mmd,
                    "Unbiased (U-statistic) MMD instead of the sources' "
                    'biased estimate.')
  flags.DEFINE_string('dataset', d.dataset,
                      'mnist_5k (embedded, offline) or a TFDS image dataset '
                      '(mnist, fashion_mnist, ...).')
  flags.DEFINE_string('data_dir', d.data_dir,
                      'TFDS data directory, searched first for prepared '
                      'data (default ~/tensorflow_datasets).')
  flags.DEFINE_string('idx_dir', d.idx_dir,
                      'Directory with the four IDX files of the dataset '
                      '(train-images-idx3-ubyte[.gz], ...), searched second; '
                      'default /usr/share/datasets/<dataset with - for _>, '
                      'where apt-get install dataset-fashion-mnist puts '
                      'Fashion-MNIST.')
  flags.DEFINE_bool('download', d.download,
                    'Last resort: let TFDS download a dataset found nowhere '
                    'on this machine.')
  flags.DEFINE_bool('binarize', d.binarize,
                    'Dynamic binarization of training pixels (Bernoulli).')
  flags.DEFINE_integer('train_examples', d.train_examples,
                       'Train on only this many training examples, class by '
                       'class in turn (0: all); 500 is the InfoVAE small-data '
                       'experiment.')
  flags.DEFINE_integer('validation_examples', d.validation_examples,
                       'Hold this many training examples out as a validation '
                       'split (val_* after every epoch; never the test '
                       'split).')
  flags.DEFINE_integer('early_stopping_patience', d.early_stopping_patience,
                       'Stop after this many epochs without a better '
                       'validation loss and keep the best weights (0: off).')
  flags.DEFINE_enum('lr_schedule', d.lr_schedule, config_lib.LR_SCHEDULES,
                    'constant, or cosine decay to 0 over the run.')
  flags.DEFINE_integer('batch_size', d.batch_size,
                       'Global batch size (over all replicas).')
  flags.DEFINE_integer('epochs', d.epochs, 'Total epochs to reach.')
  flags.DEFINE_float('learning_rate', d.learning_rate, 'Adam learning rate.')
  flags.DEFINE_integer('seed', d.seed, 'Seed for weights, data order, noise.')
  flags.DEFINE_enum('kl_estimator', d.kl_estimator, config_lib.KL_ESTIMATORS,
                    'VAE rate: analytic KL, or the sampled log q - log p of '
                    'the source.')
  flags.DEFINE_float('mmd_weight', d.mmd_weight,
                     'MMD-VAE weight of MMD(q(z), p(z)); default: the '
                     "sources' balance (number of pixels D; D / (2 s^2) for "
                     'the Gaussian likelihood).')
  flags.DEFINE_enum('precision', d.precision, config_lib.PRECISIONS,
                    'float32, or mixed precision for the networks: pays '
                    'on GPUs and CPUs with 16-bit units, slower on AVX2 '
                    'CPUs (README: Performance).')
  flags.DEFINE_float('gaussian_scale', d.gaussian_scale,
                     'Fixed pixel standard deviation of the Gaussian '
                     'likelihood.')


def define_train_flags() -> None:
  """Defines the flags of `trainers.train` (defaults from TrainConfig)."""
  define_shared_flags()
  d = config_lib.TrainConfig()
  flags.DEFINE_enum('model', d.model, config_lib.MODELS,
                    'vae: ELBO (beta-VAE with --beta); mmd_vae: '
                    'reconstruction + MMD; info_vae: InfoVAE with --alpha '
                    'and --lambda; iwae: k-sample bound (--iwae_samples).')
  flags.DEFINE_float('beta', d.beta, 'vae: weight of the KL term.')
  flags.DEFINE_float('alpha', d.alpha,
                     'info_vae: the objective is distortion + (1 - alpha) '
                     'KL + (alpha + lambda - 1) MMD.')
  flags.DEFINE_float('lambda', d.info_lambda,
                     "info_vae: see --alpha; default 1 + the MMD-VAE's "
                     'default weight.')
  flags.DEFINE_integer('iwae_samples', d.iwae_samples,
                       'iwae: importance samples k of the training bound.')
  flags.DEFINE_string('model_dir', d.model_dir,
                      'Checkpoints, config.json, metrics.json, plots, '
                      'TensorBoard logs.')
  flags.DEFINE_string('export_dir', d.export_dir,
                      'Write a SavedModel to EXPORT_DIR/<version>/.')
  flags.DEFINE_integer('plot_every', d.plot_every,
                       'Also plot every N epochs into plots/epoch_N/ '
                       '(0: only at the end).')
  flags.DEFINE_bool('verbose', d.verbose, 'Show a progress bar.')
  flags.DEFINE_enum('strategy', d.strategy, config_lib.STRATEGIES,
                    'auto: multi_worker if TF_CONFIG (or the Kubeflow '
                    'Trainer v2 environment) names several tasks, mirrored '
                    'with several GPUs or --cpu_replicas > 1, else default.')
  flags.DEFINE_integer('cpu_replicas', d.cpu_replicas,
                       'Split the CPU into N logical devices for mirrored '
                       'training without GPUs.')
  flags.DEFINE_integer('steps_per_execution', d.steps_per_execution,
                       'Training steps per call into the compiled graph.')


def train_config_from_flags() -> config_lib.TrainConfig:
  """Builds the TrainConfig from parsed flags (not yet validated); fields
  without a flag (compare defines only the shared ones) keep defaults."""
  values = {field.name: FLAGS[field.name].value
            for field in dataclasses.fields(config_lib.TrainConfig)
            if field.name in FLAGS}
  if 'lambda' in FLAGS:
    values['info_lambda'] = FLAGS['lambda'].value
  if 'kernel_scales' in values:
    try:
      values['kernel_scales'] = tuple(float(v) for v in values[
          'kernel_scales'])
    except ValueError:
      _fail(f'invalid flag --kernel_scales={",".join(values["kernel_scales"])}'
            f' must be comma-separated numbers')
  return config_lib.TrainConfig(**values)


def exit_on_user_error(fn, *args, **kwargs):
  """Calls fn; a TfpVaeError becomes one line on stderr and exit code 1."""
  try:
    return fn(*args, **kwargs)
  except errors.ConfigError as e:
    _fail(f'invalid flag --{e}' if not str(e).startswith(('TF_CONFIG',
                                                          'TFP_VAE', 'JOB'))
          else f'invalid environment: {e}')
  except errors.RetryableError as e:
    _fail(str(e), EXIT_RETRYABLE)
  except errors.TfpVaeError as e:
    _fail(str(e))


def _fail(message: str, code: int = EXIT_USER_ERROR):
  logging.error(message)
  # absl logs to stderr too; the plain line is what a user reads first.
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)
