"""Flags shared by the trainers and the one way they report errors."""

import dataclasses
import os
import sys
import typing
from typing import Any, Optional

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
from tfp_vae import family

FLAGS = flags.FLAGS

# Exit codes: 1 for an error the user can fix (bad flag, missing data,
# mismatched checkpoint, non-finite loss), as absl uses for flag errors; a
# TFJob with `restartPolicy: ExitCode` treats 1-127 as permanent.  143
# (128 + SIGTERM) after a preemption was checkpointed, or when a peer worker
# was lost: retryable (128-255), so the job restarts and resumes.
EXIT_USER_ERROR = 1
EXIT_RETRYABLE = 143


def _base_type(annotation):
  """int for Optional[int], and so on."""
  if typing.get_origin(annotation) is typing.Union:
    return next(a for a in typing.get_args(annotation) if a is not type(None))
  return annotation


def _define(field, module_name=None, name=None) -> None:
  """A flag for a config field or member setting, from its declaration:
  its default, help text and allowed values."""
  name = name or field.metadata.get('flag') or field.name
  help_text = field.metadata.get('help', '')
  choices = field.metadata.get('choices')
  default = field.default
  kwargs = {'module_name': module_name} if module_name else {}
  kind = _base_type(field.type)
  if choices:
    flags.DEFINE_enum(name, default, list(choices), help_text, **kwargs)
  elif kind is bool:
    flags.DEFINE_bool(name, default, help_text, **kwargs)
  elif kind is int:
    flags.DEFINE_integer(name, default, help_text, **kwargs)
  elif kind is float:
    flags.DEFINE_float(name, default, help_text, **kwargs)
  elif kind is tuple:
    flags.DEFINE_list(name, list(default), help_text, **kwargs)
  else:
    flags.DEFINE_string(name, default, help_text, **kwargs)


def define_config_flags(groups=config_lib.GROUPS, members=None,
                        exclude=(), module_name=None) -> None:
  """Defines a flag for every field of the config `groups` and every
  setting of the family `members` (default: all), except `exclude`."""
  for group in groups:
    for field in config_lib.group_fields()[group]:
      if field.name not in exclude:
        _define(field, module_name=module_name)
  defined = set()
  for name in members or family.names():
    for field in dataclasses.fields(family.get(name)):
      if field.name not in defined and field.name not in exclude:
        defined.add(field.name)
        _define(field, module_name=module_name)


def define_train_flags() -> None:
  """The flags of `trainers.train` (defaults from the config)."""
  flags.DEFINE_enum('model', 'vae', list(family.names()),
                    'vae: ELBO (beta-VAE with --beta); mmd_vae: '
                    'reconstruction + MMD; info_vae: InfoVAE with --alpha '
                    'and --lambda; iwae: k-sample bound (--iwae_samples).')
  define_config_flags()


def member_settings_from_flags(name: str) -> dict[str, Any]:
  """The settings of member `name` the user set (flags away from their
  default); a setting of another member that was set is kept, so that
  `TrainConfig.create` refuses it with the reason."""
  values = {}
  for setting, (field, _) in family.all_settings().items():
    flag = field.metadata.get('flag') or setting
    if flag not in FLAGS:
      continue
    value = FLAGS[flag].value
    if setting == 'kernel_scales':
      try:
        value = tuple(float(v) for v in value)
      except ValueError:
        _fail(f'invalid flag --kernel_scales={",".join(value)}: must be '
              f'comma-separated numbers')
    if value != field.default:
      values[setting] = value
  del name
  return values


def train_config_from_flags(model: Optional[str] = None
                            ) -> config_lib.TrainConfig:
  """Builds the TrainConfig from parsed flags (not yet validated); config
  fields without a flag keep their defaults.

  Args:
    model: the member to build for (default: the --model flag).

  Raises:
    ConfigError: a setting the member does not use was set.
  """
  name = model or FLAGS['model'].value
  values = {}
  for fields in config_lib.group_fields().values():
    for field in fields:
      if field.name in FLAGS:
        values[field.name] = FLAGS[field.name].value
  values.update(member_settings_from_flags(name))
  return config_lib.TrainConfig.create(model=name, **values)


EVAL_FLAGS = {'iwae_samples': 'eval_iwae_samples'}


def define_eval_flags() -> None:
  """The flags of `config.EvalConfig` (--eval_iwae_samples, ...)."""
  for field in dataclasses.fields(config_lib.EvalConfig):
    _define(field, name=EVAL_FLAGS.get(field.name))


def eval_config_from_flags() -> config_lib.EvalConfig:
  values = {f.name: FLAGS[EVAL_FLAGS.get(f.name, f.name)].value
            for f in dataclasses.fields(config_lib.EvalConfig)}
  return config_lib.EvalConfig(**values).validate()


def compare_configs_from_flags() -> tuple[config_lib.TrainConfig,
                                          dict[str, Any],
                                          config_lib.EvalConfig]:
  """trainers.compare's shared config, member settings and evaluation."""
  values = {}
  for fields in config_lib.group_fields().values():
    for field in fields:
      if field.name in FLAGS:
        values[field.name] = FLAGS[field.name].value
  return (config_lib.TrainConfig.create(model='vae', **values),
          member_settings_from_flags('vae'), eval_config_from_flags())


def exit_on_user_error(fn, *args, **kwargs):
  """Calls fn; any error becomes one line on stderr and an exit code: 1 for
  what the user can fix (and anything unexpected, so that a job controller
  does not retry it forever), 143 for what running again resolves
  (preemption, a lost peer).  TFP_VAE_TRACEBACK=1 re-raises unexpected
  errors with their traceback."""
  try:
    return fn(*args, **kwargs)
  except errors.EnvironmentConfigError as e:
    _fail(f'invalid environment: {e}')
  except errors.ConfigError as e:
    _fail(f'invalid flag --{e}')
  except errors.RetryableError as e:
    _fail(str(e), EXIT_RETRYABLE)
  except errors.TfpVaeError as e:
    _fail(str(e))
  except OSError as e:  # a full or read-only disk, a vanished directory
    where = f'{e.filename}: ' if getattr(e, 'filename', None) else ''
    _fail(f'{where}{e.strerror or e}')
  except Exception as e:  # pylint: disable=broad-except
    if os.environ.get('TFP_VAE_TRACEBACK'):
      raise
    first = (str(e).strip().splitlines() or [''])[0][:300]
    _fail(f'unexpected {type(e).__name__}: {first} (set TFP_VAE_TRACEBACK=1 '
          f'to see where)')


def _fail(message: str, code: int = EXIT_USER_ERROR):
  logging.error(message)
  # absl logs to stderr too; the plain line is what a user reads first.
  print(f'error: {message}', file=sys.stderr)
  sys.exit(code)
