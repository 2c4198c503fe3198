"""What machine this is, and what `--precision=auto`,
`--steps_per_execution=0` (auto) and `--xla=auto` pick on it.

The machine class is read, not guessed: the CPU's model name and ISA flags
from /proc/cpuinfo (AMX, AVX-512 BF16 and FP16, AVX-512, AVX2), and the
GPUs TensorFlow sees.

`--precision=auto` decides per member: a member trains in mixed_bfloat16
only where its own measured rows (`BFLOAT16_ROWS`, from
bench/train_throughput.py: float32 and bfloat16 in the same run, per model
and seed) pass the guard (`judge_member`): faster, and after 20 epochs a
test loss within 0.1% of float32's or within float32's spread over seeds,
whichever is larger, over at least 2 seeds, measured under today's
mixed-precision policy (`tfp_vae.nn.precision.POLICY`).  A comparison trains
every member in one precision: bfloat16 only where every compared member
passes (`judge_bfloat16`).  Everywhere else float32, saying which member
and which rows in the log: a member or class never measured, or measured
under an earlier policy, gets float32.

Steps per call are recorded the same way (`STEPS_PER_CALL`, from
bench/train_throughput.py and bench/replica_throughput.py: images/s at 1
and 10 steps per call in the same run), per machine class and for one
device or several replicas; where that was never measured, and always for
multi-worker training, 10.  Every recorded pick is 10 today, and where the
measurement did not favour it (several replicas on `cpu-avx512-bf16`) the
record and the log say so.

XLA likewise (`XLA`, from bench/train_throughput.py's `trainer:xla=on`
against `trainer`): on only where it was measured faster on one device; off
where never measured, and with several replicas, where the trainer does not
compile with XLA (`XLA_ONE_DEVICE_ONLY`).

Every measured row carries its `Provenance` (date, machine, bench command;
'not recorded' where the record did not keep it), and every decision's log
line quotes the figures it rests on, or says that nothing was measured.
"""

import dataclasses
import functools
import os
import re
from typing import Iterable, Optional

from tfp_vae.internal import errors
from tfp_vae.family import members as family



NOT_RECORDED = 'not recorded'


@dataclasses.dataclass(frozen=True)
class Provenance:
  """Where a measured row came from.

  Attributes:
    date: the day its figures entered the repository with the decision
      (YYYY-MM-DD; the runs themselves were not dated separately), or
      NOT_RECORDED.
    machine: the CPU (or GPU) it ran on, as the record named it.
    command: the bench command that printed the figures, or NOT_RECORDED.
  """
  date: str
  machine: str
  command: str


@dataclasses.dataclass(frozen=True)
class Ratio:
  """One measured ratio of images/s, a variant over its baseline in the
  same bench run, for one model.

  Attributes:
    model: the family member measured.
    ratio: the ratio of the runs' median images/s.
    runs: the per-run ratios (repeat i of the variant over repeat i of the
      baseline), () where only the median was recorded.
  """
  model: str
  ratio: float
  runs: tuple = ()

  def __str__(self) -> str:
    bracket = (f' [{min(self.runs):.2f}, {max(self.runs):.2f}]'
               if self.runs else ' [per-run values not recorded]')
    return f'{self.ratio:.2f}x{bracket} ({self.model})'


@dataclasses.dataclass(frozen=True)
class Decision:
  """What an auto setting picks on a machine class, and the measurement it
  rests on (`STEPS_PER_CALL`, `XLA`).

  Attributes:
    pick: the value picked (steps per call, or whether XLA is on).
    measured: what was compared, e.g. '10 steps per call against 1'.
    ratios: images/s of the first over the second, per model.
    setting: the data and runs, e.g. 'mnist_5k, 4 epochs, 2 interleaved
      runs'.
    provenance: date, machine and command.
    note: why the pick follows (or does not follow) from the ratios.
  """
  pick: object
  measured: str
  ratios: tuple
  setting: str
  provenance: Provenance
  note: str = ''

  def quote(self) -> str:
    """The measurement in one phrase, as the log quotes it."""
    ratios = ' and '.join(str(r) for r in self.ratios)
    note = f'; {self.note}' if self.note else ''
    return (f'{self.measured}, images/s ratio {ratios} ({self.setting}; '
            f'{self.provenance.date}{note})')


@dataclasses.dataclass(frozen=True)
class PrecisionRow:
  """One seed of one model trained in float32 and in mixed_bfloat16 in the
  same bench run (bench/train_throughput.py), as `--precision=auto` reads
  it.

  Attributes:
    model: the family member.
    seed: the seed both runs used.
    epochs: epochs trained (the first is not timed).
    images_per_second: (float32, mixed_bfloat16) training images/s; None
      where only their ratio was recorded.
    test_loss: (float32, mixed_bfloat16) test loss after `epochs`, both
      computed in float32; None where only speed was recorded.
    kept: the parts of `tfp_vae.nn.precision.PARTS` kept in float32 when it
      was measured: a row measured under another policy than today's does
      not decide anything.
    provenance: date, machine and command (every recorded row has one).
    ratio: mixed_bfloat16's images/s over float32's where only the ratio
      was recorded (then images_per_second is None).
  """
  model: str
  seed: int
  epochs: int
  images_per_second: Optional[tuple]
  test_loss: Optional[tuple]
  kept: frozenset
  provenance: Optional[Provenance] = None
  ratio: Optional[float] = None

  def __post_init__(self):
    if (self.images_per_second is None) == (self.ratio is None):
      raise ValueError('a PrecisionRow records images_per_second or, where '
                       'only that was recorded, their ratio: exactly one')

  @property
  def speedup(self) -> float:
    if self.images_per_second is None:
      return self.ratio
    return self.images_per_second[1] / self.images_per_second[0]

  @property
  def loss_change(self) -> float:
    """(bf16 - float32) / |float32| test loss: positive is worse (a
    Gaussian likelihood's loss can be negative)."""
    return (self.test_loss[1] - self.test_loss[0]) / abs(self.test_loss[0])


# The guard (`judge_bfloat16`): bfloat16 only where it trains faster and its
# test loss after GUARD_EPOCHS is within GUARD_FLOOR of float32's, or within
# float32's own spread over seeds where that is larger, for every model in
# GUARD_MODELS, each over at least GUARD_SEEDS seeds.
GUARD_EPOCHS = 20
GUARD_FLOOR = 0.001
GUARD_MODELS = family.COMPARED_PAIR  # the VAE and the MMD-VAE
_VAE, _MMD_VAE = GUARD_MODELS
GUARD_SEEDS = 2

# float32 against mixed_bfloat16, measured per machine class ('gpu' for
# GPUs with bfloat16 units): (the machine, [rows]).
_EARLIER_POLICY = frozenset({'distributions'})  # before `outputs`
_EPYC_AVX512_BF16 = ('AMD EPYC (Zen 5 family) with AVX-512 BF16, no AMX, '
                     '2 cores')
_EPYC_AVX2 = 'AMD EPYC exposing AVX2 only, 2 cores'
_BF16_VARIANTS = ('--variants=trainer:precision=float32,'
                  'trainer:precision=mixed_bfloat16,'
                  'trainer:precision=float32:seed=1,'
                  'trainer:precision=mixed_bfloat16:seed=1')
_AVX512_BF16_4_EPOCHS = Provenance(
    '2026-11-26', _EPYC_AVX512_BF16,
    'bench/train_throughput.py --dataset=fashion_mnist --repeats=2 '
    f'--epochs=4 {_BF16_VARIANTS}')
_AVX512_BF16_20_EPOCHS = Provenance(
    '2026-11-26', _EPYC_AVX512_BF16,
    'bench/train_throughput.py --dataset=fashion_mnist --repeats=1 '
    f'--epochs=20 {_BF16_VARIANTS}')
_AVX512_BF16_ROWS = [
    PrecisionRow(model, seed, epochs, speed, loss, _EARLIER_POLICY,
                 _AVX512_BF16_4_EPOCHS if epochs == 4 else
                 _AVX512_BF16_20_EPOCHS)
    for model, seed, epochs, speed, loss in (
        (_VAE, 0, 4, (6837, 8409), (269.85, 269.99)),
        (_VAE, 1, 4, (6710, 7964), (270.24, 270.43)),
        (_MMD_VAE, 0, 4, (6318, 8527), (266.02, 266.39)),
        (_MMD_VAE, 1, 4, (5995, 8169), (266.88, 267.90)),
        (_VAE, 0, 20, (6135, 7523), (264.37, 265.09)),
        (_VAE, 1, 20, (6644, 7528), (265.00, 264.69)),
        (_MMD_VAE, 0, 20, (6340, 7296), (259.06, 260.61)),
        (_MMD_VAE, 1, 20, (6598, 7862), (259.13, 260.48)))]
_POLICY_OUTPUTS = frozenset({'outputs', 'distributions'})  # today's
_EPYC_AVX512_BF16_F25M17 = ('AMD EPYC (CPU family 25, model 17) exposing '
                            'AVX-512 with BF16, no AMX, 2 cores')
_AVX512_BF16_2026_12_07 = Provenance(
    '2026-12-07', _EPYC_AVX512_BF16_F25M17,
    'bench/train_throughput.py --dataset=fashion_mnist --epochs=20 '
    f'--repeats=1 {_BF16_VARIANTS} (main at 83e65b6; its float32 2048x2048 '
    'matmul ran at 206.8 GFLOP/s)')
_AVX512_BF16_ROWS += [
    PrecisionRow(model, seed, 20, speed, loss, _POLICY_OUTPUTS,
                 _AVX512_BF16_2026_12_07)
    for model, seed, speed, loss in (
        (_VAE, 0, (2750, 3264), (264.37, 264.76)),
        (_VAE, 1, (2754, 3240), (265.00, 264.69)),
        (_MMD_VAE, 0, (2496, 3552), (259.06, 260.25)),
        (_MMD_VAE, 1, (2868, 3590), (259.13, 260.20)))]
BFLOAT16_ROWS = {
    'cpu-amx': (
        'Intel Xeon with AMX and AVX-512 BF16: VAE, 4 epochs, one '
        'interleaved run; test loss within noise; the dataset and the loss '
        'values not recorded',
        # Only the ratio was kept, in an earlier session's notes; the
        # repository first has it on 2026-11-26 (commit 5553f45).
        [PrecisionRow(_VAE, 0, 4, None, None, _EARLIER_POLICY, Provenance(
            NOT_RECORDED, 'Intel Xeon with AMX and AVX-512 BF16/FP16 (model '
            'not recorded)', NOT_RECORDED), ratio=1.48)]),
    'cpu-avx512-bf16': (
        'AMD EPYC (Zen 5 family) with AVX-512 BF16, no AMX: Fashion-MNIST, '
        'latent 2, batch 100; docs/performance.md', _AVX512_BF16_ROWS),
    'cpu-avx2': (
        'AMD EPYC exposing AVX2 only: bfloat16 is emulated; VAE, '
        'mnist_5k, 3 epochs, one run',
        [PrecisionRow(_VAE, 0, 3, (2145, 225), None, _EARLIER_POLICY,
                      Provenance('2026-11-22', _EPYC_AVX2, NOT_RECORDED))]),
}


def _slowest(rows: Iterable[PrecisionRow]) -> PrecisionRow:
  """The row where bfloat16 gained least (or lost most) on float32."""
  return min(rows, key=lambda r: r.speedup)


def judge_member(rows: Iterable[PrecisionRow], kept: Iterable[str],
                 model: str) -> tuple[bool, str]:
  """(pick mixed_bfloat16 for `model`, why) from a class's `rows`: `model`'s
  own rows only, counting for the loss those measured with the policy
  `kept` (`tfp_vae.nn.precision.POLICY`).  A member without rows, or whose
  rows fail, trains in float32."""
  rows = [r for r in rows if r.model == model]
  kept = frozenset(kept)
  if not rows:
    return False, f'{model} has no bfloat16 rows on this class'
  # A slowdown measured under any policy holds under today's: keeping more
  # in float32 is not faster.
  slowest = _slowest(rows)
  if slowest.speedup <= 1:
    return False, (f'{model}: bfloat16 trained {slowest.speedup:.2f}x the '
                   f'images/s of float32 (seed {slowest.seed})')
  current = [r for r in rows if r.kept == kept]
  if not current:
    older = sorted({', '.join(sorted(r.kept)) for r in rows})
    return False, (f'{model}: bfloat16 was not measured with today\'s '
                   f'float32 parts ({", ".join(sorted(kept))}); its rows '
                   f'were measured keeping {"; ".join(older)}')
  judged = [r for r in current if r.test_loss and r.epochs == GUARD_EPOCHS]
  if len({r.seed for r in judged}) < GUARD_SEEDS:
    return False, (f'the guard needs {model}\'s test loss after '
                   f'{GUARD_EPOCHS} epochs over {GUARD_SEEDS} seeds; '
                   f'{len(judged)} measured')
  float32 = [r.test_loss[0] for r in judged]
  if not all(float32):
    return False, f'{model}\'s float32 test loss of 0 cannot be compared'
  spread = (max(float32) - min(float32)) / min(abs(x) for x in float32)
  tolerance = max(GUARD_FLOOR, spread)
  worst = max(judged, key=lambda r: r.loss_change)
  dates = ', '.join(sorted({r.provenance.date for r in judged
                            if r.provenance}))
  dates = f'; rows of {dates}' if dates else ''
  if worst.loss_change > tolerance:
    return False, (f'{model}\'s test loss after {GUARD_EPOCHS} epochs was '
                   f'{100 * worst.loss_change:+.2f}% in bfloat16 (seed '
                   f'{worst.seed}{dates}), outside '
                   f'{100 * tolerance:.2f}% (the larger of '
                   f'{100 * GUARD_FLOOR:.1f}% and float32\'s spread over '
                   f'seeds)')
  fastest_kept = _slowest(current)
  return True, (f'{model}: bfloat16 trained {fastest_kept.speedup:.2f}x '
                f'float32 or faster, test loss at most '
                f'{100 * worst.loss_change:+.2f}% against a tolerance of '
                f'{100 * tolerance:.2f}% over {len(judged)} seeds{dates}')


def judge_bfloat16(rows: Iterable[PrecisionRow], kept: Iterable[str],
                   models: Iterable[str] = GUARD_MODELS
                   ) -> tuple[bool, str]:
  """(pick mixed_bfloat16 for every one of `models`, why): bfloat16 only
  where each member passes `judge_member` (a comparison trains every
  member in one precision)."""
  rows = list(rows)
  whys = []
  for model in dict.fromkeys(models):
    ok, why = judge_member(rows, kept, model)
    if not ok:
      return False, why
    whys.append(why)
  return True, '; '.join(whys)


# Steps per call measured per (machine class, 'one device' or 'several
# replicas' in one process).  Multi-worker training always gets
# DEFAULT_STEPS_PER_CALL (`decide_steps_per_execution`).
_TEN_AGAINST_ONE = '10 steps per call against 1'
STEPS_PER_CALL = {
    ('cpu-avx2', 'one device'): Decision(
        10, _TEN_AGAINST_ONE,
        (Ratio(_VAE, 2050 / 1969), Ratio(_MMD_VAE, 2206 / 2124)),
        'mnist_5k, 15 epochs, medians of 3 interleaved runs',
        Provenance('2026-11-22', _EPYC_AVX2,
                   'bench/train_throughput.py --epochs=15 (as the README of '
                   'commit 844c223 describes the run; the command line '
                   'itself was not recorded)')),
    ('cpu-avx512-bf16', 'one device'): Decision(
        10, _TEN_AGAINST_ONE,
        (Ratio(_VAE, 5889 / 5197, (6201 / 5359, 5578 / 5036)),
         Ratio(_MMD_VAE, 6068 / 5060, (6196 / 4759, 5939 / 5362))),
        'Fashion-MNIST, 3 epochs, 2 interleaved runs',
        Provenance('2026-11-26', _EPYC_AVX512_BF16,
                   'bench/train_throughput.py --dataset=fashion_mnist '
                   '--epochs=3 --repeats=2 --variants=plain,before,'
                   'trainer:spe=1,trainer:spe=10 --before_tree=...'),
        'earlier runs that favoured 1 were hit by the end-of-epoch stall '
        'of tf.data\'s autotuner, see data._pipeline_options'),
    ('cpu-avx512-bf16', 'several replicas'): Decision(
        10, _TEN_AGAINST_ONE + ', mirrored over 2 logical CPUs',
        (Ratio(_VAE, 3509 / 3850, (2826 / 3888, 4192 / 3812)),),
        'mnist_5k, global batch 100, 4 epochs, 2 interleaved runs',
        Provenance('2026-11-26', _EPYC_AVX512_BF16,
                   'bench/replica_throughput.py --models=vae --epochs=4 '
                   '--repeats=2'),
        'not faster: no clear winner, so the default 10 is kept'),
}
DEFAULT_STEPS_PER_CALL = 10
# XLA for the training step, measured per machine class ('gpu' for any GPU).
XLA = {
    'cpu-avx512-bf16': Decision(
        False, 'the trainer with XLA against without',
        (Ratio(_VAE, 4074 / 6644, (3956 / 6522, 4192 / 6766)),
         Ratio(_MMD_VAE, 4152 / 6130, (4121 / 5703, 4183 / 6556))),
        'Fashion-MNIST, 3 epochs, 2 interleaved runs',
        Provenance('2026-11-26', _EPYC_AVX512_BF16,
                   'bench/train_throughput.py --dataset=fashion_mnist '
                   '--epochs=3 --repeats=2 '
                   '--variants=plain,trainer,trainer:xla=on'),
        '230-320 MB more peak memory with XLA'),
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


def decide_precision(machine: Machine,
                     models: Iterable[str] = GUARD_MODELS
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
    what, rows = BFLOAT16_ROWS.get(cls, ('GPUs with bfloat16 units', []))
  else:
    cls = machine.cpu_class
    if cls not in BFLOAT16_ROWS:
      return 'float32', (f'CPU class {cls} was never measured with 16-bit '
                         f'compute: float32')
    what, rows = BFLOAT16_ROWS[cls]
    what = what.split(':')[0]
  pick, why = judge_bfloat16(rows, precision_lib.POLICY, models)
  if not rows:
    why = 'bfloat16 was never measured on this class'
  return ('mixed_bfloat16' if pick else 'float32'), (
      f'{"CPU " if cls != "gpu" else ""}class {cls} ({what}): {why}; '
      f'{"mixed_bfloat16" if pick else "float32"} (tfp_vae/runtime/hardware.py '
      f'BFLOAT16_ROWS, docs/performance.md)')


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
    rows = BFLOAT16_ROWS.get(machine.cpu_class, ('', []))[1]
    if rows:
      slowest = _slowest(rows)
      measured = (f'; measured on class {machine.cpu_class}: '
                  f'{slowest.speedup:.2f}x the images/s of float32')
  return (f'--precision={precision}: this CPU has no {kind} units '
          f'({" or ".join(units)} not in its flags), so TensorFlow emulates '
          f'{kind}, usually slower than float32{measured}; '
          f'--precision=auto picks float32 unless bfloat16 was measured to '
          f'pay on this class')


def resolve_precision(precision: str,
                      machine: Optional[Machine] = None,
                      models: Iterable[str] = GUARD_MODELS
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
    return DEFAULT_STEPS_PER_CALL, (
        f'multi-worker: every worker must run the same number, so auto is '
        f'{DEFAULT_STEPS_PER_CALL} whatever the machine; set '
        f'--steps_per_execution to choose')
  cls = machine.measured_class
  if (cls, setup) in STEPS_PER_CALL:
    decision = STEPS_PER_CALL[(cls, setup)]
    return decision.pick, (
        f'class {cls} with {setup}: {decision.quote()}; {decision.pick} '
        f'(tfp_vae/runtime/hardware.py STEPS_PER_CALL, docs/performance.md)')
  return DEFAULT_STEPS_PER_CALL, (
      f'class {cls} with {setup}: not measured: default '
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
    decision = XLA[cls]
    return decision.pick, (
        f'class {cls}: {decision.quote()}; {"on" if decision.pick else "off"} '
        f'(tfp_vae/runtime/hardware.py XLA, docs/performance.md)')
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
