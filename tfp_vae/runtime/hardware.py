"""What machine this is, and what `--precision=auto`,
`--steps_per_execution=0` (auto) and `--xla=auto` pick on it.

The machine class is read, not guessed: the CPU's model name and ISA flags
from /proc/cpuinfo (AMX, AVX-512 BF16 and FP16, AVX-512, AVX2), and the
GPUs TensorFlow sees.  What each auto setting picks on a class rests on what
was measured there (`tfp_vae.runtime.measurements`):

`--precision=auto` decides per member: mixed_bfloat16 only where the
member's own measured rows on the class pass the guard
(`tfp_vae.runtime.bfloat16_guard`); a comparison trains every member in one
precision, bfloat16 only where every compared member passes.  Everywhere
else float32, saying which member and which rows in the log: a member or
class never measured, or measured under an earlier policy, gets float32.

Steps per call: the measured pick per machine class and for one device or
several replicas; where that was never measured, and always for
multi-worker training, 10.  Every recorded pick is 10 today, and where the
measurement did not favour it (several replicas on `cpu-avx512-bf16`) the
record and the log say so.

XLA likewise: on only where it was measured faster on one device; off where
never measured, and with several replicas, where the trainer does not
compile with XLA (`XLA_ONE_DEVICE_ONLY`).

Every decision's log line quotes the figures it rests on, or says that
nothing was measured.
"""

import dataclasses
import functools
import os
import re
from typing import Iterable, Optional

from tfp_vae.internal import errors
from tfp_vae.runtime import bfloat16_guard as guard
from tfp_vae.runtime import measurements

GPU_BF16_COMPUTE_CAPABILITY = (8, 0)  # Ampere and newer: bfloat16 units


@dataclasses.dataclass(frozen=True)
class Machine:
  """What a run's precision depends on."""
  cpu_model: str
  cpu_flags: frozenset
  cores: int
  gpus: tuple  # (name, (major, minor) compute capability) per GPU

  @property
  def cpu_class(self) -> str:
    if {'amx_bf16', 'amx_tile'} & self.cpu_flags:
      return 'cpu-amx'
    if 'avx512_bf16' in self.cpu_flags:
      return 'cpu-avx512-bf16'
    if 'avx512f' in self.cpu_flags:
      return 'cpu-avx512'
    if 'avx2' in self.cpu_flags:
      return 'cpu-avx2'
    return 'cpu-other'

  @property
  def measured_class(self) -> str:
    """The key of the measured tables (`STEPS_PER_CALL`, `XLA`): 'gpu' on
    any machine with a GPU, else the CPU class."""
    return 'gpu' if self.gpus else self.cpu_class

  def describe(self) -> str:
    isa = [f for f in ('amx_bf16', 'amx_tile', 'avx512_fp16', 'avx512_bf16',
                       'avx512f', 'avx2', 'fma') if f in self.cpu_flags]
    gpus = ', '.join(f'{n} (compute {c[0]}.{c[1]})' for n, c in self.gpus)
    return (f'{self.cpu_model}, {self.cores} cores, ISA '
            f'{" ".join(isa) or "baseline"}' + (f'; GPUs: {gpus}' if gpus
                                                else '; no GPU'))


def cpu_info(path: str = '/proc/cpuinfo') -> tuple[str, frozenset]:
  """(model name, ISA flags) of the first CPU listed; ('unknown', {}) when
  the file cannot be read (not Linux)."""
  model, flags = 'unknown', frozenset()
  try:
    with open(path) as f:
      text = f.read()
  except OSError:
    return model, flags
  found = re.search(r'^model name\s*:\s*(.+)$', text, re.M)
  if found:
    model = found.group(1).strip()
  found = re.search(r'^flags\s*:\s*(.+)$', text, re.M)
  if found:
    flags = frozenset(found.group(1).split())
  return model, flags


@functools.lru_cache(maxsize=None)
def _this_machine() -> Machine:
  return this_machine(gpus=None, cached=False)


def this_machine(gpus: Optional[Iterable] = None,
                 cached: bool = True) -> Machine:
  """The machine this process runs on (TensorFlow is asked for GPUs unless
  `gpus` is given)."""
  if gpus is None and cached:
    return _this_machine()
  model, flags = cpu_info()
  if gpus is None:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    gpus = []
    for device in tf.config.list_physical_devices('GPU'):
      details = tf.config.experimental.get_device_details(device)
      gpus.append((details.get('device_name', device.name),
                   tuple(details.get('compute_capability', (0, 0)))))
  return Machine(model, flags, os.cpu_count() or 1, tuple(gpus))


def decide_precision(machine: Machine,
                     models: Iterable[str] = guard.GUARD_MODELS
                     ) -> tuple[str, str]:
  """(precision, why) that `--precision=auto` picks on `machine` for a run
  of each of `models` (one member for trainers.train, every compared member
  for trainers.compare): float32 unless each member's own measured rows on
  the class pass the guard (`judge_bfloat16`)."""
  from tfp_vae.nn import precision as precision_lib  # pylint: disable=g-import-not-at-top
  if machine.gpus:
    capability = min(c for _, c in machine.gpus)
    if capability < GPU_BF16_COMPUTE_CAPABILITY:
      return 'float32', (
          f'GPUs without bfloat16 units (compute capability {capability[0]}.'
          f'{capability[1]}); mixed_float16 needs loss scaling: ask for it '
          f'with --precision=mixed_float16')
    cls = 'gpu'
    what, rows = measurements.BFLOAT16_ROWS.get(
        cls, ('GPUs with bfloat16 units', []))
  else:
    cls = machine.cpu_class
    if cls not in measurements.BFLOAT16_ROWS:
      return 'float32', (f'CPU class {cls} was never measured with 16-bit '
                         f'compute: float32')
    what, rows = measurements.BFLOAT16_ROWS[cls]
    what = what.split(':')[0]
  pick, why = guard.judge_bfloat16(rows, precision_lib.POLICY, models)
  if not rows:
    why = 'bfloat16 was never measured on this class'
  return ('mixed_bfloat16' if pick else 'float32'), (
      f'{"CPU " if cls != "gpu" else ""}class {cls} ({what}): {why}; '
      f'{"mixed_bfloat16" if pick else "float32"} (tfp_vae/runtime/'
      f'measurements.py BFLOAT16_ROWS, docs/performance.md)')


# The CPU flags of units that compute each 16-bit type natively.
_16_BIT_UNITS = {'mixed_bfloat16': ('avx512_bf16', 'amx_bf16'),
                 'mixed_float16': ('avx512_fp16', 'amx_fp16')}


def emulated_16_bit(precision: str, machine: Machine) -> Optional[str]:
  """Why `precision`, asked for on `machine`, is likely slow, or None.

  A CPU-only machine whose CPU lacks the units of the 16-bit type
  (`_16_BIT_UNITS`) has TensorFlow emulate it; where the class's rows
  measured the slowdown, the figure is quoted.
  """
  units = _16_BIT_UNITS.get(precision)
  if not units or machine.gpus or set(units) & machine.cpu_flags:
    return None
  kind = precision.split('_')[1]
  measured = ''
  if precision == 'mixed_bfloat16':
    rows = measurements.BFLOAT16_ROWS.get(machine.cpu_class, ('', []))[1]
    if rows:
      slowest = guard.slowest(rows)
      measured = (f'; measured on class {machine.cpu_class}: '
                  f'{slowest.speedup:.2f}x the images/s of float32')
  return (f'--precision={precision}: this CPU has no {kind} units '
          f'({" or ".join(units)} not in its flags), so TensorFlow emulates '
          f'{kind}, usually slower than float32{measured}; '
          f'--precision=auto picks float32 unless bfloat16 was measured to '
          f'pay on this class')


def resolve_precision(precision: str,
                      machine: Optional[Machine] = None,
                      models: Iterable[str] = guard.GUARD_MODELS
                      ) -> tuple[str, str]:
  """A concrete precision for `precision` ('auto' or a policy name) for a
  run of each of `models`, and why."""
  if precision != 'auto':
    return precision, 'asked for'
  return decide_precision(machine or this_machine(), tuple(models))


def decide_steps_per_execution(machine: Machine,
                               setup: str) -> tuple[int, str]:
  """(steps per call, why) that `--steps_per_execution=0` picks on
  `machine` for `setup` ('one device', 'several replicas' or
  'multi-worker', as `distribute.replica_setup` names it)."""
  if setup == 'multi-worker':
    # Workers' collectives must line up call for call, and workers may run
    # on different machine classes: one fixed value for all of them.
    return measurements.DEFAULT_STEPS_PER_CALL, (
        f'multi-worker: every worker must run the same number, so auto is '
        f'{measurements.DEFAULT_STEPS_PER_CALL} whatever the machine; set '
        f'--steps_per_execution to choose')
  cls = machine.measured_class
  if (cls, setup) in measurements.STEPS_PER_CALL:
    decision = measurements.STEPS_PER_CALL[(cls, setup)]
    return decision.pick, (
        f'class {cls} with {setup}: {decision.quote()}; {decision.pick} '
        f'(tfp_vae/runtime/measurements.py STEPS_PER_CALL, '
        f'docs/performance.md)')
  return measurements.DEFAULT_STEPS_PER_CALL, (
      f'class {cls} with {setup}: not measured: default '
      f'{measurements.DEFAULT_STEPS_PER_CALL}')


def resolve_steps_per_execution(steps: int, setup: str,
                                machine: Optional[Machine] = None
                                ) -> tuple[int, str]:
  """A concrete number of steps per call for `steps` (0: auto) in `setup`
  (see `decide_steps_per_execution`), and why."""
  if steps:
    return steps, 'asked for'
  return decide_steps_per_execution(machine or this_machine(), setup)


def decide_xla(machine: Machine, setup: str) -> tuple[bool, str]:
  """(XLA on, why) that `--xla=auto` picks on `machine` for `setup` (as
  `decide_steps_per_execution` names it)."""
  if setup != 'one device':
    return False, f'{setup}: the trainer compiles with XLA on one device only'
  cls = machine.measured_class
  if cls in measurements.XLA:
    decision = measurements.XLA[cls]
    return decision.pick, (
        f'class {cls}: {decision.quote()}; {"on" if decision.pick else "off"} '
        f'(tfp_vae/runtime/measurements.py XLA, docs/performance.md)')
  return False, f'class {cls} was never measured with XLA: off'


XLA_ONE_DEVICE_ONLY = (
    'compiles the training step with XLA on one device only: with several '
    'replicas the step failed to run here (MirroredStrategy over logical '
    'CPUs: XLA cannot reach variables on other devices; '
    'MultiWorkerMirroredStrategy: its collectives are not implemented under '
    'XLA on CPU)')


def resolve_xla(xla: str, setup: str,
                machine: Optional[Machine] = None) -> tuple[bool, str]:
  """Whether the training step is compiled by XLA for `xla` ('auto', 'on'
  or 'off') in `setup`, and why.

  Raises:
    ConfigError: `xla` is 'on' with several replicas or workers.
  """
  if xla == 'on' and setup != 'one device':
    raise errors.ConfigError(
        'xla', xla, f'is not available with {setup}: the trainer '
        f'{XLA_ONE_DEVICE_ONLY}; set xla to off or auto')
  if xla != 'auto':
    return xla == 'on', 'asked for'
  return decide_xla(machine or this_machine(), setup)
