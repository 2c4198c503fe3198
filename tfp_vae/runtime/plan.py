"""A run's decisions, made once at its start: the plan.

  strategy      which tf.distribute strategy, how many replicas, this task
  runtime       precision, XLA and steps per call (what `auto` picked, why)
  member        the family member with its data-dependent defaults filled
                in (the MMD weight from the pixel count, the KL estimator
                a prior allows)
  parts         the encoder, likelihood, prior and architecture
                (`ModelConfig.parts()`, looked up once)
  data          the dataset, its source and shapes
  paths         the run, this process's own and the export directories

This module is the only place where an `auto` setting is decided (from the
measured tables of `tfp_vae.runtime.hardware`) and where a member's defaults are
resolved (`resolve_member`).  `make` is the one function that makes a
plan: `training` calls it in `prepare`, logs the plan, records it in
config.json beside the flags (key `plan`), and every later step (building
the model, its float32 copy for metrics and export, the memory estimate,
the NaN remedy) receives it and never decides again.  Outside a run (the
Python API, a trained model loaded for evaluation, tests) callers make one
with `make` too, on `one_device`.

`check_same_run` is the one answer to "is model_dir's run this run?".  It
compares what the checkpoint depends on, not the flags that produced it:
the precision, the resolved member and the image shape (`differences`),
and the other flags outside the resumable ones (`TrainConfig.differences`).
A run started in float32 continues in float32 on any machine, whatever
`--precision=auto` would pick there (the log says so); an explicit
`--precision` that differs from the recorded one is refused in one line.
The runtime decisions (strategy, XLA, steps per call) are made again on
every start: they may change between a run and its resumption.

This module does not import TensorFlow.
"""

import dataclasses
from typing import Any, Optional

from absl import logging

from tfp_vae.family import components
from tfp_vae.config import groups as config_groups
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.runtime import hardware
from tfp_vae.nn import precision as precision_lib

ImageShape = tuple[int, int, int]


@dataclasses.dataclass(frozen=True)
class Runtime:
  """How this process runs the training step (decided before the data is
  read, so a setting that cannot work is refused first)."""
  strategy: str
  setup: str            # 'one device', 'several replicas' or 'multi-worker'
  replicas: int
  task: str             # 'worker:1'; '' without a cluster
  chief: bool
  precision: str
  xla: bool
  steps_per_execution: int
  reasons: dict[str, str]  # setting -> why it has its value ('asked for')
  # What stays float32 under a 16-bit precision (tfp_vae/nn/precision.py);
  # empty in float32.
  float32_parts: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class Data:
  """The data a run trains on, as loaded."""
  dataset: str
  source: str
  image_shape: ImageShape
  num_train: int
  num_validation: int
  num_test: int
  num_classes: int


Parts = tuple[components.Encoder, components.Likelihood, components.Prior,
              components.Architecture]


@dataclasses.dataclass(frozen=True)
class Recorded:
  """What model_dir's config.json recorded when the run started, read once
  per start (`tfp_vae.training.rundir.read_records`)."""
  config: Optional[config_lib.TrainConfig] = None  # None: no run there
  # The plan as `Plan.to_dict` wrote it; None without a run, or for a run
  # recorded before plans were.
  plan: Optional[dict[str, Any]] = None
  # config.json is there but cannot be read as a config.
  unreadable: Optional[errors.CheckpointError] = None


@dataclasses.dataclass(frozen=True)
class Plan:
  """Every decision of one run (module doc); made by `make` only."""
  runtime: Runtime
  member: family.Member
  notes: tuple[str, ...]  # what resolving the member changed, worth a word
  data: Data
  model_dir: str
  own_dir: str
  export_dir: Optional[str]
  parts: Parts

  @property
  def precision(self) -> str:
    return self.runtime.precision

  @property
  def image_shape(self) -> ImageShape:
    return self.data.image_shape

  def to_dict(self) -> dict[str, Any]:
    """JSON-ready, as config.json's `plan`."""
    runtime = dataclasses.asdict(self.runtime)
    return {'runtime': runtime,
            'member': {'name': self.member.name,
                       'settings': _json(dataclasses.asdict(self.member))},
            'data': {**dataclasses.asdict(self.data),
                     'image_shape': list(self.data.image_shape)},
            'paths': {'model_dir': self.model_dir, 'own_dir': self.own_dir,
                      'export_dir': self.export_dir}}

  def log(self) -> None:
    """One line per decision, with why."""
    rt = self.runtime
    logging.info('strategy %s with %d replica(s)%s', rt.strategy,
                 rt.replicas, f'; this task {rt.task} is '
                 f'{"the chief" if rt.chief else "not the chief"}'
                 if rt.task else '')
    for name, line in (
        ('precision', f'precision {rt.precision}'),
        ('steps_per_execution', f'{rt.steps_per_execution} steps per call'),
        ('xla', f'XLA {"on" if rt.xla else "off"} for the training step')):
      why = rt.reasons.get(name, 'asked for')
      logging.info('%s%s', line, '' if why == 'asked for' else f' ({why})')
    logging.info('model %s: %s', self.member.name, ', '.join(
        f'{k}={family.setting_text(v)}' for k, v in self.member.settings().items()) or
                 'no settings')
    for note in self.notes:
      logging.warning('%s', note)


def _json(settings: dict[str, Any]) -> dict[str, Any]:
  return {k: list(v) if isinstance(v, tuple) else v
          for k, v in settings.items()}


# -- the decisions ------------------------------------------------------------


def recorded_member(recorded: dict[str, Any]) -> family.Member:
  """The resolved member a recorded plan (`Plan.to_dict`) holds.

  Raises:
    ConfigError: the member or a setting is not known (any more).
  """
  member = recorded.get('member', {})
  return family.create(member.get('name', ''),
                       **member.get('settings', {}))


def resolve_member(model: config_groups.ModelConfig, image_shape: ImageShape,
                   parts: Optional[Parts] = None
                   ) -> tuple[family.Member, list[str]]:
  """The member with its data-dependent defaults filled in, and notes about
  what was resolved (`family.Member.resolve`); `parts`: the model's
  (default: `model.parts()`)."""
  _, likelihood, prior, _ = parts or model.parts()
  h, w, c = image_shape
  return model.member.resolve(family.Context(
      num_pixels=h * w * c,
      pixel_weight=likelihood.pixel_weight(model.gaussian_scale),
      closed_form_kl=prior.closed_form_kl, prior=model.prior))


def resolve_runtime(config: config_lib.TrainConfig, strategy: str,
                    setup: str, replicas: int, task: str, chief: bool,
                    previous: Optional[dict[str, Any]] = None,
                    machine: Optional[hardware.Machine] = None) -> Runtime:
  """Precision, XLA and steps per call for this process.

  Args:
    config: the validated run.
    strategy, setup, replicas, task, chief: what the strategy is
      (`distribute.describe`, `distribute.replica_setup`, ...).
    previous: the plan recorded when the run started (config.json), if any.
    machine: the machine to decide for (default: this one).

  Raises:
    ConfigError: --xla=on with several replicas or workers.
    CheckpointError: --precision differs from the one the run started in
      (`check_same_run`).
  """
  # Before deciding: a precision the run was not started in is refused.
  check_same_run(config, Recorded(plan=previous))
  machine = machine or hardware.this_machine()
  runtime = config.runtime
  xla, why_xla = hardware.resolve_xla(runtime.xla, setup, machine)
  steps, why_steps = hardware.resolve_steps_per_execution(
      runtime.steps_per_execution, setup, machine)
  precision, why_precision = _precision(config, previous, machine)
  reasons = {
      'xla': _flagged('xla', runtime.xla, 'auto', why_xla),
      'steps_per_execution': _flagged(
          'steps_per_execution', runtime.steps_per_execution, 0, why_steps),
      'precision': _flagged('precision', config.trainer.precision, 'auto',
                            why_precision)}
  parts = ()
  if precision != 'float32':
    parts = tuple(sorted(precision_lib.kept()))
    before = (previous or {}).get('runtime', {})
    if 'precision' in before and tuple(before.get(
        'float32_parts', _EARLIER_PARTS)) != parts:
      reasons['precision'] += (
          f'; the run started under an earlier mixed-precision policy '
          f'(float32: {", ".join(before.get("float32_parts", _EARLIER_PARTS))}'
          f') and goes on under today\'s (float32: {", ".join(parts)})')
  return Runtime(strategy=strategy, setup=setup, replicas=replicas,
                 task=task, chief=chief, precision=precision, xla=xla,
                 steps_per_execution=steps, reasons=reasons,
                 float32_parts=parts)


# What a 16-bit run recorded before runs recorded their float32 parts kept.
_EARLIER_PARTS = ('distributions',)


def _flagged(name: str, value: Any, auto: Any, why: str) -> str:
  """`why`, prefixed with the flag when it was left to decide."""
  return f'--{name}={value}: {why}' if value == auto else why


def precision_members(config: config_lib.TrainConfig) -> tuple[str, ...]:
  """The members whose rows --precision=auto must all pass for this run:
  its own, and those of the comparison it belongs to (compared_models)."""
  return tuple(dict.fromkeys(
      (config.model.name, *config.trainer.compared_members())))


def _precision(config: config_lib.TrainConfig,
               previous: Optional[dict[str, Any]],
               machine: hardware.Machine) -> tuple[str, str]:
  asked = config.trainer.precision
  slow = hardware.emulated_16_bit(asked, machine)
  if slow:
    logging.warning('%s', slow)
  recorded = (previous or {}).get('runtime', {}).get('precision')
  member = precision_members(config)
  if recorded is None:
    return hardware.resolve_precision(asked, machine, member)
  if asked != 'auto':  # the recorded one (`check_same_run` refused others)
    return recorded, 'asked for'
  auto, why = hardware.resolve_precision('auto', machine, member)
  if auto == recorded:
    return recorded, why
  return recorded, (f'recorded when the run started; on this machine auto '
                    f'would pick {auto} ({why}), which takes a new '
                    f'--model_dir')


def make(config: config_lib.TrainConfig, data: Data | ImageShape,
         runtime: Optional[Runtime] = None,
         own_dir: Optional[str] = None) -> Plan:
  """The plan: the one function that makes one (module doc).

  Args:
    config: the validated run.
    data: the data as loaded; or only its image shape (H, W, C), to build
      a model outside a run.
    runtime: this process's decisions (`resolve_runtime`); default:
      `one_device(config)`.
    own_dir: where this process writes (default: the model_dir).

  Raises:
    ConfigError: the architecture cannot take the data's image shape.
  """
  if not isinstance(data, Data):
    data = Data(dataset=config.data.dataset, source='', image_shape=tuple(
        int(d) for d in data), num_train=0, num_validation=0, num_test=0,
                num_classes=0)
  components.check_architecture(config.model.architecture, data.image_shape)
  parts = config.model.parts()
  member, notes = resolve_member(config.model, data.image_shape, parts)
  return Plan(runtime=runtime or one_device(config), member=member,
              notes=tuple(notes), data=data,
              model_dir=config.runtime.model_dir,
              own_dir=own_dir or config.runtime.model_dir,
              export_dir=config.runtime.export_dir, parts=parts)


def one_device(config: config_lib.TrainConfig,
               precision: Optional[str] = None) -> Runtime:
  """The runtime of a model built outside a run (the Python API, a trained
  model loaded for evaluation, tests): one device, `precision` (default:
  what the config's precision resolves to here)."""
  if precision is None:
    precision, why = hardware.resolve_precision(
        config.trainer.precision, models=precision_members(config))
  else:
    why = 'asked for'
  return Runtime(strategy='default strategy', setup='one device',
                 replicas=1, task='', chief=True, precision=precision,
                 xla=False, steps_per_execution=1,
                 reasons={'precision': why})


# -- is this the same run? ----------------------------------------------------


def check_same_run(config: config_lib.TrainConfig, recorded: Recorded,
                   the_plan: Optional[Plan] = None) -> None:
  """Refuses a model_dir whose config.json records a different run: the
  one place that answers "is this the same run?" (module doc).

  Without `the_plan` (`resolve_runtime`, before the data are read) only the
  precision is compared; with it, everything: an explicit --precision
  other than the recorded one, a setting outside the resumable ones
  (`TrainConfig.differences`), or what the checkpoint depends on (the
  resolved member, the image shape: `differences`) against the plan
  recorded there.

  Raises:
    CheckpointError: config.json is unreadable; or naming the differing
      precision, or each differing setting with both values.
  """
  asked = config.trainer.precision
  started = (recorded.plan or {}).get('runtime', {}).get('precision')
  if started is not None and asked not in ('auto', started):
    raise errors.CheckpointError(
        f'model_dir {config.runtime.model_dir} was trained in {started}: '
        f'--precision={asked} would continue it in another precision; use '
        f'--precision={started} or auto to resume, or another --model_dir')
  if the_plan is None:
    return
  if recorded.unreadable is not None:
    raise errors.CheckpointError(
        f'{recorded.unreadable}; use another --model_dir or remove that '
        f'file') from recorded.unreadable
  if recorded.config is None:
    return
  if recorded.plan:  # resolved values instead of the flags that led to them
    diffs = recorded.config.differences(config, ignore_member_settings=True,
                                        ignore=('precision',))
    diffs += differences(recorded.plan, the_plan)
  else:
    diffs = recorded.config.differences(config)
  if diffs:
    listed = ', '.join(f'--{name}={new!r} (checkpoint has {old!r})'
                       for name, old, new in diffs)
    raise errors.CheckpointError(
        f'model_dir {config.runtime.model_dir} holds a checkpoint of a '
        f'different configuration: {listed}; use another --model_dir or the '
        f'same flags')


def differences(previous: Optional[dict[str, Any]], plan: Plan
                ) -> list[tuple[str, Any, Any]]:
  """What the checkpoint depends on and differs from the recorded plan:
  (name, recorded value, new value).  Nothing for runs recorded before
  plans were (their flags are compared instead)."""
  if not previous:
    return []
  out = []
  old_member = previous.get('member', {})
  new_member = plan.to_dict()['member']
  if old_member.get('name') == new_member['name']:
    public = {f.name: family.public_name(f)
              for f in dataclasses.fields(plan.member)}
    # The recorded settings as a member made from them holds them (an old
    # name of a value, such as --kernel=sources, read as today's).
    recorded = _json(dataclasses.asdict(recorded_member(previous)))
    for key, value in new_member['settings'].items():
      old = recorded.get(key)
      if old != value:
        out.append((public.get(key, key), old, value))
  old_shape = previous.get('data', {}).get('image_shape')
  if old_shape is not None and list(old_shape) != list(plan.image_shape):
    out.append(('image_shape', old_shape, list(plan.image_shape)))
  return out
