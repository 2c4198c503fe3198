"""What the command-line programs share: flags generated from the config's
declarations, grouped help, a quiet start, and one way to report errors.

Each program (`trainers.train`, `evaluate`, `compare`, `export`, `serve`)
defines its flags through `define` (so `--help` can list them by group),
parses them with `run` (which first calls `start`: nothing happens at
import), validates its config before importing TensorFlow
(so a bad value is refused in well under a second), then imports TensorFlow
with `import_tensorflow`, which keeps TensorFlow's start-up chatter out of
the terminal unless `--verbosity` is 1 or more.
"""

import contextlib
import dataclasses
import logging as std_logging
import os
import re
import sys
import tempfile
import textwrap
from typing import Any, Callable, Optional

from absl import app
from absl import flags
from absl import logging

import tfp_vae
from tfp_vae.internal import checks
from tfp_vae.config import groups as config_groups
from tfp_vae.config import serve_settings
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.internal import registry
from tfp_vae.family import specs
from tfp_vae.internal import storage

FLAGS = flags.FLAGS
# tfp_vae/ (all its subpackages) and trainers/.
_PACKAGE_DIRS = tuple(os.path.dirname(os.path.abspath(p)) + os.sep for p in (
    tfp_vae.__file__, __file__))


class _OwnInfoOnly(std_logging.Filter):
  """At the default verbosity, INFO lines come from this package only
  (TensorFlow's are about renamed SavedModel inputs, fingerprints and
  checkpoint sharding); warnings and errors from anywhere still show, but
  for TensorFlow's retracing notice (each evaluated model traces its own
  functions once, by design)."""

  def filter(self, record):
    if FLAGS.is_parsed() and FLAGS['verbosity'].value >= 1:
      return True
    if record.levelno > std_logging.INFO:
      return not (record.pathname.endswith('polymorphic_function.py') and
                  'triggered tf.function retracing' in record.getMessage())
    return record.pathname.startswith(_PACKAGE_DIRS)


def start() -> None:
  """What a command does as it starts, before TensorFlow loads (and what a
  bench script that measures the trainer does likewise); nothing of it
  happens at import.  Idempotent.

  - TensorFlow's C++ logging quietened (`TF_CPP_MIN_LOG_LEVEL=2`, read once
    when TensorFlow is imported; what it prints before its logging starts
    is filtered in `import_tensorflow`);
  - oneDNN kernels for convolutions and matmuls (`TF_ENABLE_ONEDNN_OPTS=1`).
    TensorFlow turns them on by default only on CPUs with AVX512/AMX; on an
    AVX2 EPYC they trained both models faster with less memory (the
    figures, with machine and date: docs/performance.md, machine class
    cpu-avx2).  Results differ from Eigen's kernels by float rounding only.
    `TF_ENABLE_ONEDNN_OPTS=0` in the environment opts out;
  - INFO lines from this package only, unless --verbosity >= 1.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
  absl_logger = logging.get_absl_logger()
  if not any(isinstance(f, _OwnInfoOnly) for f in absl_logger.filters):
    absl_logger.addFilter(_OwnInfoOnly())
  std_logging.getLogger('tensorflow').setLevel(std_logging.WARNING)

# What TensorFlow prints to the process's stderr before its logging is set
# up, on every CPU-only start: not errors, whatever their prefix says.
_NATIVE_NOISE = re.compile('|'.join((
    r'All log messages before absl::InitializeLog\(\) is called',
    r'oneDNN custom operations are on',
    r'Could not find cuda drivers on your machine',
    r'failed call to cuInit',
    r'This TensorFlow binary is optimized to use available CPU instructions',
    r'To enable the following instructions: ',
    r'rebuild TensorFlow with the appropriate compiler flags',
    r'Unable to register cu(DNN|FFT|BLAS) factory',
    r'computation placer already registered',
    r'TF-TRT Warning',
)))


@contextlib.contextmanager
def _native_stderr_filtered():
  """Captures file descriptor 2 (where C++ code writes) and replays what is
  not known start-up noise."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      for line in captured.read().decode(errors='replace').splitlines():
        if line.strip() and not _NATIVE_NOISE.search(line):
          print(line, file=sys.stderr)


def import_tensorflow() -> None:
  """Imports TensorFlow and lists the GPUs (where CUDA's start-up messages
  come from), filtering what they print unless --verbosity >= 1."""
  verbose = FLAGS.is_parsed() and FLAGS['verbosity'].value >= 1
  with (contextlib.nullcontext() if verbose
        else _native_stderr_filtered()):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    tf.config.list_physical_devices('GPU')


# -- flags, grouped for --help ------------------------------------------------

_GROUP_TITLES = {
    'model': 'What is trained (the model and its own settings)',
    'data': 'What it is trained on',
    'trainer': 'How it is trained',
    'runtime': 'Where and how it runs',
    'evaluation': 'Evaluation',
    'command': 'This command',
}
_GROUPS: dict[str, list[str]] = {}


def define(kind: str, name: str, default: Any, help_text: str,
           group: str = 'command', **kwargs) -> None:
  """flags.DEFINE_<kind>(name, default, help_text), listed under `group` in
  --help."""
  if kind == 'enum':
    flags.DEFINE_enum(name, default, kwargs.pop('enum_values'), help_text,
                      **kwargs)
  else:
    getattr(flags, f'DEFINE_{kind}')(name, default, help_text, **kwargs)
  _GROUPS.setdefault(group, []).append(name)


EXIT_USER_ERROR = 1
EXIT_RETRYABLE = errors.RETRYABLE_EXIT_CODE


def _choices(field) -> tuple[list[str], str]:
  """A field's allowed values and what they mean: from its registry
  (`tfp_vae.internal.registry`, plugins included) or its declared tuple."""
  choices = field.metadata.get('choices')
  if isinstance(choices, registry.Registry):
    return list(choices.names()), ' ' + choices.describe() + '.'
  return list(choices or ()), ''


def _define(field, group: str, name: Optional[str] = None) -> None:
  """A flag for a config field or member setting, from its declaration:
  its default, help text and allowed values."""
  name = name or field.metadata.get('flag') or field.name
  choices, described = _choices(field)
  help_text = field.metadata.get('help', '') + described
  default = field.default
  kind = specs.base_type(field.type)
  if choices:
    define('enum', name, default, help_text, group, enum_values=choices)
  elif kind is bool:
    define('bool', name, default, help_text, group)
  elif kind is int:
    define('integer', name, default, help_text, group)
  elif kind is float:
    define('float', name, default, help_text, group)
  elif kind is tuple:
    define('list', name, list(default), help_text, group)
  else:
    define('string', name, default, help_text, group)


def define_config_flags(groups=config_groups.GROUPS, members=None,
                        exclude=()) -> None:
  """Defines a flag for every field of the config `groups` and every
  setting of the family `members` (default: all registered, plugins
  included), except `exclude`."""
  defined = set()
  for group in groups:
    for field in config_groups.group_fields()[group]:
      if field.name not in exclude:
        _define(field, group)
    if group == 'model':
      for name in members or family.names():
        for field in dataclasses.fields(family.get(name)):
          if field.name not in defined and field.name not in exclude:
            defined.add(field.name)
            users = family.all_settings()[field.name][1]
            _define(field, 'model')
            FLAGS[family.public_name(field)].help += (
                f' [--model={"/".join(users)}]')


def define_train_flags() -> None:
  """The flags of `trainers.train` (defaults from the config; --model's
  values and help from the registered members)."""
  define('enum', 'model', family.DEFAULT,
         family.MEMBERS.describe() + '.', 'model',
         enum_values=list(family.names()))
  define_config_flags()


def define_serve_flags() -> None:
  """The flags of `trainers.serve`, one per `ServeConfig` field."""
  for field in dataclasses.fields(serve_settings.ServeConfig):
    _define(field, 'command')


def serve_config_from_flags() -> serve_settings.ServeConfig:
  """The ServeConfig of the parsed flags (not yet validated)."""
  return serve_settings.ServeConfig(**{
      f.name: FLAGS[f.name].value
      for f in dataclasses.fields(serve_settings.ServeConfig)})


def _setting_value(field, flag: str) -> Any:
  """A member setting's flag value, as the field's type (a list flag's
  items as numbers for a tuple of numbers)."""
  value = FLAGS[flag].value
  if specs.base_type(field.type) is not tuple:
    return value
  try:
    return specs.value_of(field, value)
  except ValueError:
    numbers = specs.item_type(field) in (int, float)
    _fail(f'invalid flag --{flag}={",".join(value)}: must be comma-separated '
          f'{"numbers" if numbers else "values"}')


def member_settings_from_flags() -> dict[str, Any]:
  """The member settings given on the command line, whatever their value
  (a flag's presence, not its value, says it was set): a setting of
  another member that was given is kept, so that `TrainConfig.create`
  refuses it with the reason."""
  values = {}
  for setting, (field, _) in family.all_settings().items():
    flag = family.public_name(field)
    if flag in FLAGS and FLAGS[flag].present:
      values[setting] = _setting_value(field, flag)
  return values


def _config_values() -> dict[str, Any]:
  """Every config field that has a flag, at the flag's value."""
  values = {}
  for fields in config_groups.group_fields().values():
    for field in fields:
      if field.name in FLAGS:
        values[field.name] = FLAGS[field.name].value
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
  return config_lib.TrainConfig.create(
      model=name, **_config_values(), **member_settings_from_flags())


EVAL_FLAGS = {'iwae_samples': 'eval_iwae_samples'}


def define_run_dir_flag() -> None:
  """--model_dir of a trainers.train run, for the programs that read one
  (evaluate, export); they mark it required."""
  define('string', 'model_dir', None,
         'Directory of a trainers.train run (required).')


def define_eval_flags() -> None:
  """The flags of `config.EvalConfig` (--eval_iwae_samples, ...)."""
  for field in dataclasses.fields(config_lib.EvalConfig):
    _define(field, 'evaluation', name=EVAL_FLAGS.get(field.name))


def eval_config_from_flags() -> config_lib.EvalConfig:
  values = {f.name: FLAGS[EVAL_FLAGS.get(f.name, f.name)].value
            for f in dataclasses.fields(config_lib.EvalConfig)}
  return config_lib.EvalConfig(**values).validate()


def compare_configs_from_flags(models: list[str], seeds: int = 1,
                               parallel: int = 1
                               ) -> tuple[config_lib.TrainConfig,
                                          list[tuple[str, family.Member]],
                                          config_lib.EvalConfig]:
  """trainers.compare's shared config, its compared members (`--models`
  specs, `tfp_vae.family.specs`, each with the setting flags given that it
  declares) and evaluation, all validated before TensorFlow loads.

  Raises:
    ConfigError: a bad spec, or a setting flag no compared member has.
  """
  checks.positive_int('seeds', seeds)
  checks.positive_int('parallel', parallel)
  base = config_lib.TrainConfig.create(**_config_values())
  if base.trainer.seed + seeds - 1 > config_groups.MAX_SEED:
    raise errors.ConfigError('seeds', seeds, f'with --seed='
                             f'{base.trainer.seed} goes past the largest '
                             f'seed {config_groups.MAX_SEED}')
  members = specs.parse_all(models, member_settings_from_flags())
  for _, member in members:
    base.with_member(member).validate()
  return base, members, eval_config_from_flags()


def format_metric(value: Any) -> str:
  """A metric for a log line: a number to 4 digits, a list (per unit) of
  numbers to 3."""
  if isinstance(value, (list, tuple)):
    return '[' + ', '.join(f'{v:.3g}' for v in value) + ']'
  return f'{value:.4g}'


def exit_on_user_error(fn, *args, **kwargs):
  """Calls fn; any error becomes one line on stderr and an exit code: 1 for
  what the user can fix (and anything unexpected, so that a job controller
  does not retry it forever), 143 for what running again resolves
  (preemption, a lost peer).  TFP_VAE_TRACEBACK=1 re-raises unexpected
  errors with their traceback."""
  try:
    return fn(*args, **kwargs)
  except Exception as e:  # pylint: disable=broad-except
    message, code = describe_error(e)
    if message is None:
      raise
    _fail(message, code)


def describe_error(e: Exception) -> tuple[Optional[str], int]:
  """(the one line after 'error: ', exit code) a command reports for `e`;
  (None, 1) for an unexpected error under TFP_VAE_TRACEBACK=1, which is
  re-raised with its traceback."""
  if (isinstance(e, OSError) and e.errno in storage.WRITE_FAULTS and
      e.filename):
    # A full or read-only storage that no write site named (a library's
    # own file): the same words and exit code.
    e = storage.describe(e.errno, 'a file', e.filename)
  if isinstance(e, errors.EnvironmentConfigError):
    return f'invalid environment: {e}', EXIT_USER_ERROR
  if isinstance(e, errors.ConfigError):
    return f'invalid flag --{e}', EXIT_USER_ERROR
  if isinstance(e, errors.RetryableError):
    return str(e), EXIT_RETRYABLE
  if isinstance(e, errors.TfpVaeError):
    return str(e), EXIT_USER_ERROR
  if isinstance(e, OSError):  # a vanished directory, a file that is not there
    where = f'{e.filename}: ' if getattr(e, 'filename', None) else ''
    return f'{where}{e.strerror or e}', EXIT_USER_ERROR
  if os.environ.get('TFP_VAE_TRACEBACK'):
    return None, EXIT_USER_ERROR
  first = (str(e).strip().splitlines() or [''])[0][:300]
  return (f'unexpected {type(e).__name__}: {first} (set TFP_VAE_TRACEBACK=1 '
          f'to see where)', EXIT_USER_ERROR)


def _fail(message: str, code: int = EXIT_USER_ERROR):
  print(f'error: {message}', file=sys.stderr, flush=True)
  # Leave without Python's finalization.  A streamed run stopped mid-epoch
  # (a bad image, preemption) still has tf.data threads waiting for the GIL
  # to read the next batch in Python (numpy_function); finalization destroys
  # their iterator while holding the GIL and waits for them: a deadlock
  # (seen: the error printed, then the process hung until killed, about one
  # run in three).  Everything a run writes is closed by now (the library's
  # own `finally` blocks ran as the error left it).
  logging.flush()
  sys.stdout.flush()
  os._exit(code)  # pylint: disable=protected-access


# -- running a program --------------------------------------------------------

_HELP_ARGS = ('--help', '-h', '-?', '--helpshort', '--help=true')


def help_text(program: str, doc: str) -> str:
  """The command's own flags by group, with defaults and help."""
  lines = [f'usage: {program} [flags]', '', textwrap.dedent(
      doc).strip(), '']
  for group in _GROUP_TITLES:
    names = _GROUPS.get(group)
    if not names:
      continue
    lines.append(f'{_GROUP_TITLES[group]}:')
    for name in names:
      flag = FLAGS[name]
      default = flag.default_as_str or "''"
      if flag.flag_type() == 'bool':
        head = f'  --[no]{name} (default {"on" if flag.default else "off"})'
      else:
        head = f'  --{name}={default.strip(chr(39))}'
      lines.append(head)
      lines.extend(textwrap.wrap(flag.help, 74, initial_indent='      ',
                                 subsequent_indent='      '))
    lines.append('')
  lines.append('--helpfull lists every flag, absl\'s own (--verbosity: 1 '
               'shows TensorFlow\'s own log lines) included.')
  return '\n'.join(lines)


def run(main: Callable[[list[str]], None], doc: str) -> None:
  """Runs an absl `main` after `start`: --help prints `help_text`; a flag
  that does not parse is one line on stderr and exit 1; arguments that are
  not flags are refused (absl's usage error)."""
  start()
  program = os.path.basename(sys.argv[0])
  if program.endswith('.py'):  # python -m trainers.<program>
    program = f'python -m trainers.{program[:-3]}'

  if any(a in _HELP_ARGS for a in sys.argv[1:]):
    print(help_text(program, doc))
    sys.exit(0)

  def parse(argv):
    try:
      return FLAGS(argv)
    except flags.Error as e:
      _fail(f'{e} (see {program} --help)')

  def checked(argv):
    if len(argv) > 1:
      raise app.UsageError(f'unexpected arguments: {argv[1:]}')
    return main(argv)

  app.run(checked, flags_parser=parse)
