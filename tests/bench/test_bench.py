"""The benchmarks run as `make bench` runs them (tiny sizes here: their
figures are measured in bench/, never asserted), and choose what to measure
from the machine."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tfp_vae.runtime import hardware

sys.path.insert(0, os.path.join(REPO, 'bench'))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position


def _machine(flags=(), gpus=()):
  return hardware.Machine('test cpu', frozenset(flags), 2, tuple(gpus))


@pytest.mark.parametrize('flags,gpus,sixteen_bit', [
    (('avx2', 'fma'), (), ()),
    (('avx2', 'avx512f'), (), ()),
    (('avx2', 'avx512f', 'avx512_bf16'), (),
     ('float32', 'mixed_bfloat16')),
    (('avx2', 'avx512f', 'avx512_bf16', 'amx_tile', 'amx_bf16'), (),
     ('float32', 'mixed_bfloat16')),
    (('avx2',), (('A100', (8, 0)),),
     ('float32', 'mixed_bfloat16', 'mixed_float16')),
])
def test_train_bench_measures_what_auto_decides_between(flags, gpus,
                                                        sixteen_bit):
  variants = benchlib.default_train_variants(_machine(flags, gpus))
  assert variants[:4] == ['plain', 'trainer:spe=1', 'trainer',
                          'trainer:xla=on']
  assert variants[4:] == [f'trainer:precision={p}' for p in sixteen_bit]


def _run(script, *args):
  return subprocess.run(
      [sys.executable, os.path.join(REPO, 'bench', script), *args],
      cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def _bench(script, *args):
  proc = _run(script, *args)
  assert proc.returncode == 0, proc.stderr[-3000:]
  return proc.stdout


@pytest.mark.slow
def test_train_throughput_runs_the_plain_loop_and_the_trainer():
  """The bench's variant options reach the trainer (XLA's training is
  tests/e2e/test_speed_paths.py's: compiling it here too doubled this test)."""
  out = _bench('train_throughput.py', '--epochs=2', '--repeats=1',
               '--models=vae',
               '--variants=plain,trainer:spe=1:seed=1:keep=outputs+'
               'distributions', '--batch_size=500')
  assert '\nMachine: ' in out
  rows = [line for line in out.splitlines() if line.startswith('| vae |')]
  assert [r.split(' | ')[1] for r in rows] == [
      'plain', 'trainer:spe=1:seed=1:keep=outputs+distributions']
  for row in rows:
    images_per_second = float(row.split(' | ')[2].split(' [')[0])
    assert images_per_second > 0


def test_a_bad_variant_is_refused_before_measuring():
  proc = _run('train_throughput.py', '--variants=plain:xla=on')
  assert proc.returncode != 0
  assert "unknown option 'xla=on'" in proc.stderr
  assert 'BENCH-RESULT' not in proc.stdout
  proc = _run('train_throughput.py', '--variants=trainer:keep=outputs')
  assert proc.returncode != 0
  assert 'distributions part cannot be dropped' in proc.stderr
  proc = _run('train_throughput.py', '--variants=trainer:likelihood=poisson')
  assert proc.returncode != 0
  assert 'likelihood must be one of bernoulli, pixel_cnn' in proc.stderr


@pytest.mark.slow
def test_op_profile_splits_the_time_by_layer():
  out = _bench('op_profile.py', '--calls=2', '--models=vae', '--iwae_k=20')
  for expected in (
      'vae, train step, batch 100',
      'vae, IWAE call, 1 images x 20 samples',
      '| conv backprop filter |',
      '| encoder Conv2D 32 (3x3, stride 2) -> 13x13x32 |',
      '| decoder Conv2DTranspose 1 (3x3, stride 1) -> 28x28x1 |',
      '| outside the networks (likelihood, KL/MMD, optimizer) |'):
    assert expected in out, out
  # Every layer row has its FLOPs: the convolutions' are counted.
  for line in out.splitlines():
    if line.startswith('| decoder Conv2DTranspose 32'):
      assert float(line.split(' | ')[3]) > 0, line


@pytest.mark.slow
def test_compare_parallel_times_the_whole_command_at_each_setting():
  out = _bench('compare_parallel.py', '--parallel=1,2', '--models=vae',
               '--seeds=1', '--epochs=1', '--eval_iwae_samples=2',
               '--train_examples=100')
  rows = [line for line in out.splitlines() if line.startswith('| ')]
  assert [r.split(' | ')[0].strip('| ') for r in rows[1:]] == ['1', '2'], out
  for row in rows[1:]:
    assert float(row.split(' | ')[1].split(' [')[0]) > 0
