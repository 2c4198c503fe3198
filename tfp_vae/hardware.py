"""What machine this is, and what `--precision=auto`,
`--steps_per_execution=0` (auto) and `--xla=auto` pick on it.

The machine class is read, not guessed: the CPU's model name and ISA flags
from /proc/cpuinfo (AMX, AVX-512 BF16 and FP16, AVX-512, AVX2), and the
GPUs TensorFlow sees.

`--precision=auto` picks 16-bit compute only where it was measured to pay at
the same quality on that class of machine (`MEASURED`, from
bench/train_throughput.py: train images/s against float32 in the same run,
and the test loss at equal epochs within 0.5% of float32's), and float32
everywhere else, saying why in the log.  A class that was never measured
gets float32: the speed of 16-bit compute on it is not known.

Steps per call are chosen the same way (`STEPS_PER_CALL`, from
bench/train_throughput.py and bench/replica_throughput.py: images/s at 1
and 10 steps per call in the same run), per machine class and for one
device or several replicas; where that was never measured, and always for
multi-worker training, 10.

XLA likewise (`XLA`, from bench/train_throughput.py's `trainer:xla=on`
against `trainer`): on only where it was measured faster on one device; off
where never measured, and with several replicas, where the trainer does not
compile with XLA (`XLA_ONE_DEVICE_ONLY`).
"""

import dataclasses
import functools
import os
import re
from typing import Iterable, Optional

from tfp_vae import errors

# Decisions measured per machine class: (precision, what was measured).
MEASURED = {
    'cpu-amx': (
        'mixed_bfloat16',
        'Intel Xeon with AMX and AVX-512 BF16: 1.48x the images/s of float32, '
        'test loss within noise (VAE, 4 epochs, one interleaved run)'),
    'cpu-avx512-bf16': (
        'float32',
        'AMD EPYC (Zen 5 family) with AVX-512 BF16, no AMX: mixed_bfloat16 '
        'trained 1.13-1.36x the images/s of float32, but after 20 epochs of '
        'Fashion-MNIST the MMD-VAE\'s test loss was 0.60% and 0.52% worse '
        '(seeds 0 and 1; float32 itself moved 0.03% between them), outside '
        'the 0.5% guard; the VAE\'s was within 0.3%'),
    'cpu-avx2': (
        'float32',
        'AMD EPYC (Zen 3) with AVX2 only: mixed_bfloat16 ran at 0.1x the '
        'images/s of float32 (emulated 16-bit arithmetic)'),
}
# Steps per call measured per (machine class, 'one device' or 'several
# replicas' in one process): (steps, what was measured).  Multi-worker
# training always gets DEFAULT_STEPS_PER_CALL (`decide_steps_per_execution`).
STEPS_PER_CALL = {
    ('cpu-avx2', 'one device'): (
        10, 'AMD EPYC (Zen 3) with AVX2 only: 10 steps per call trained '
        '1.04x the images/s of 1 for both models (mnist_5k, 3 interleaved '
        'runs)'),
    ('cpu-avx512-bf16', 'one device'): (
        10, 'AMD EPYC (Zen 5 family) with AVX-512 BF16: 10 steps per call '
        'trained 1.13x (VAE) and 1.20x (MMD-VAE) the images/s of 1 '
        '(Fashion-MNIST, 2 interleaved runs; earlier runs that favoured 1 '
        'were hit by the end-of-epoch stall of tf.data\'s autotuner, see '
        'data._pipeline_options)'),
    ('cpu-avx512-bf16', 'several replicas'): (
        10, 'AMD EPYC (Zen 5 family) with AVX-512 BF16: mirrored over 2 '
        'logical CPUs, 10 steps per call trained 0.91x [0.73, 1.10] the '
        'images/s of 1 (1.38x before the stall fix: no clear winner, 10 '
        'kept); multi-worker on 2 processes 1.28x (1.09x before)'),
}
DEFAULT_STEPS_PER_CALL = 10
# XLA for the training step, measured per machine class ('gpu' for any GPU):
# (on, what was measured).
XLA = {
    'cpu-avx512-bf16': (
        False, 'AMD EPYC (Zen 5 family) with AVX-512 BF16: the trainer with '
        'XLA trained 0.61x (VAE) and 0.68x (MMD-VAE) the images/s of the '
        'trainer without it, with 230-320 MB more peak memory '
        '(Fashion-MNIST, 3 epochs, 2 interleaved runs)'),
}
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


def decide_precision(machine: Machine) -> tuple[str, str]:
  """(precision, why) that `--precision=auto` picks on `machine`."""
  if machine.gpus:
    capability = min(c for _, c in machine.gpus)
    if capability >= GPU_BF16_COMPUTE_CAPABILITY:
      return 'mixed_bfloat16', (
          f'GPUs with bfloat16 units (compute capability {capability[0]}.'
          f'{capability[1]} >= 8.0)')
    return 'float32', (
        f'GPUs without bfloat16 units (compute capability {capability[0]}.'
        f'{capability[1]}); mixed_float16 needs loss scaling: ask for it '
        f'with --precision=mixed_float16')
  cls = machine.cpu_class
  if cls in MEASURED:
    precision, why = MEASURED[cls]
    verdict = ('16-bit compute measured faster at the same quality'
               if precision != 'float32' else
               '16-bit compute measured not to pay here')
    return precision, (f'CPU class {cls}: {verdict} (docs/performance.md; '
                       f'tfp_vae/hardware.py: {why.split(":")[0]})')
  return 'float32', (f'CPU class {cls} was never measured with 16-bit '
                     f'compute: float32')


def resolve_precision(precision: str,
                      machine: Optional[Machine] = None) -> tuple[str, str]:
  """A concrete precision for `precision` ('auto' or a policy name), and
  why."""
  if precision != 'auto':
    return precision, 'asked for'
  return decide_precision(machine or this_machine())


def decide_steps_per_execution(machine: Machine,
                               setup: str) -> tuple[int, str]:
  """(steps per call, why) that `--steps_per_execution=0` picks on
  `machine` for `setup` ('one device', 'several replicas' or
  'multi-worker', as `distribute.replica_setup` names it)."""
  if setup == 'multi-worker':
    # Workers' collectives must line up call for call, and workers may run
    # on different machine classes: one fixed value for all of them.
    return DEFAULT_STEPS_PER_CALL, (
        f'multi-worker: every worker must run the same number, so auto is '
        f'{DEFAULT_STEPS_PER_CALL} whatever the machine; set '
        f'--steps_per_execution to choose')
  cls = machine.measured_class
  if (cls, setup) in STEPS_PER_CALL:
    steps, why = STEPS_PER_CALL[(cls, setup)]
    return steps, (f'measured fastest on class {cls} with {setup} '
                   f'(tfp_vae/hardware.py: {why.split(":")[0]})')
  return DEFAULT_STEPS_PER_CALL, (
      f'class {cls} with {setup} was never measured: '
      f'{DEFAULT_STEPS_PER_CALL}')


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
  if cls in XLA:
    on, why = XLA[cls]
    return on, (f'measured {"faster" if on else "slower"} on class {cls} '
                f'(tfp_vae/hardware.py: {why.split(":")[0]})')
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
