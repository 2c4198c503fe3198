"""What `auto` settings rest on: the measurements, per machine class, with
where each came from.

  BFLOAT16_ROWS   float32 against mixed_bfloat16, per model and seed, in the
                  same bench run (bench/train_throughput.py): images/s and
                  the test loss after 20 epochs, under the mixed-precision
                  policy of the day (`PrecisionRow.kept`); read by the guard
                  (`tfp_vae.runtime.bfloat16_guard`).
  STEPS_PER_CALL  images/s at 1 and 10 steps per call in the same run
                  (bench/train_throughput.py, bench/replica_throughput.py),
                  per machine class and for one device or several replicas.
  XLA             bench/train_throughput.py's `trainer:xla=on` against
                  `trainer`, per machine class.

Every measured row carries its `Provenance` (date, machine, bench command;
'not recorded' where the record did not keep it), and every decision's log
line (`tfp_vae.runtime.hardware`) quotes the figures it rests on.  New
measurements are added here (docs/performance.md).
"""

import dataclasses
from typing import Optional

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


_VAE, _MMD_VAE = family.COMPARED_PAIR

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

# Steps per call measured per (machine class, 'one device' or 'several
# replicas' in one process).  Multi-worker training always gets
# DEFAULT_STEPS_PER_CALL (`hardware.decide_steps_per_execution`).
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
