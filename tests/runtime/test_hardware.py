"""--precision=auto, --steps_per_execution=0 and --xla=auto resolve as
documented for
every machine class, from faked CPU flags and GPUs; /proc/cpuinfo is
parsed."""

import pytest

from tfp_vae.internal import errors
from tfp_vae.runtime import hardware
from tfp_vae.runtime import measurements


def _machine(flags=(), gpus=()):
  return hardware.Machine('test cpu', frozenset(flags), 2, tuple(gpus))


@pytest.mark.parametrize('flags,gpus,precision,why', [
    # cpu-amx was measured under the policy before `outputs`
    # (tfp_vae/nn/precision.py): not a decision for today's.  Both source
    # models together (a comparison of the pair): float32 on
    # cpu-avx512-bf16, where the MMD-VAE fails the guard.
    (('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'), (),
     'float32', 'CPU class cpu-amx (Intel Xeon with AMX and AVX-512 BF16): '
     'vae: bfloat16 was not measured with today\'s float32 parts'),
    (('avx2', 'avx512f', 'avx512_bf16'), (), 'float32',
     "CPU class cpu-avx512-bf16 (AMD EPYC (Zen 5 family) with AVX-512 BF16, "
     "no AMX): mmd_vae's test loss after 20 epochs was +0.46% in bfloat16 "
     '(seed 0; rows of 2026-12-07), outside 0.10%'),
    (('avx2', 'fma'), (), 'float32',
     'CPU class cpu-avx2 (AMD EPYC exposing AVX2 only): vae: bfloat16 '
     'trained 0.10x the images/s of float32'),
    (('avx2', 'avx512f'), (), 'float32', 'never measured'),
    ((), (), 'float32', 'never measured'),
    (('avx2',), (('A100', (8, 0)),), 'float32',
     'class gpu (GPUs with bfloat16 units): bfloat16 was never measured'),
    (('avx2',), (('T4', (7, 5)),), 'float32', 'without bfloat16 units'),
    (('avx2',), (('A100', (8, 0)), ('V100', (7, 0))), 'float32',
     'without bfloat16 units'),
])
def test_auto_precision_for_each_machine_class(flags, gpus, precision, why):
  picked, reason = hardware.resolve_precision('auto', _machine(flags, gpus))
  assert picked == precision and why in reason, reason


@pytest.mark.parametrize('models,precision,why', [
    (('vae',), 'mixed_bfloat16',
     'vae: bfloat16 trained 1.18x float32 or faster, test loss at most '
     '+0.15% against a tolerance of 0.24% over 2 seeds; rows of 2026-12-07'),
    (('mmd_vae',), 'float32', "mmd_vae's test loss after 20 epochs was "
     '+0.46% in bfloat16 (seed 0; rows of 2026-12-07), outside 0.10%'),
    (('vae', 'mmd_vae'), 'float32', '+0.46% in bfloat16'),
    (('iwae',), 'float32', 'iwae has no bfloat16 rows on this class'),
])
def test_auto_decides_per_member_on_the_measured_avx512_bf16_class(
    models, precision, why):
  """The rows of 2026-12-07 (today's policy): the VAE passes, the
  MMD-VAE does not, a member without rows and a comparison of both train
  in float32."""
  machine = _machine(('avx2', 'avx512f', 'avx512_bf16'))
  picked, reason = hardware.resolve_precision('auto', machine, models)
  assert picked == precision and why in reason, reason


_ONE, _SEVERAL, _WORKERS = 'one device', 'several replicas', 'multi-worker'


@pytest.mark.parametrize('flags,gpus,setup,steps,recorded', [
    (('avx2', 'avx512f', 'avx512_bf16'), (), _ONE, 10,
     ('cpu-avx512-bf16', _ONE)),
    (('avx2', 'avx512f', 'avx512_bf16'), (), _SEVERAL, 10,
     ('cpu-avx512-bf16', _SEVERAL)),
    (('avx2', 'fma'), (), _ONE, 10, ('cpu-avx2', _ONE)),
    (('avx2', 'avx512f'), (), _ONE, 10, None),
    (('avx2', 'fma'), (), _SEVERAL, 10, None),
    (('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'), (), _ONE,
     10, None),
    (('avx2',), (('A100', (8, 0)),), _SEVERAL, 10, None),
])
def test_auto_steps_per_call_quotes_its_record(flags, gpus, setup, steps,
                                                recorded):
  """The reason quotes the record it was decided from (each ratio with its
  per-run bracket, the runs and the date), or says nothing was measured."""
  machine = _machine(flags, gpus)
  picked, reason = hardware.resolve_steps_per_execution(0, setup, machine)
  assert picked == steps
  if recorded is None:
    assert reason == (f'class {machine.measured_class} with {setup}: not '
                      f'measured: default 10'), reason
    return
  decision = measurements.STEPS_PER_CALL[recorded]
  assert decision.pick == picked
  assert reason.startswith(f'class {recorded[0]} with {setup}: '), reason
  for ratio in decision.ratios:
    assert str(ratio) in reason, reason
  for part in (decision.measured, decision.setting, decision.provenance.date,
               decision.note):
    assert part in reason, (part, reason)
  assert 'fastest' not in reason


def test_the_recorded_ratios_are_quoted_with_their_brackets():
  quoted = measurements.STEPS_PER_CALL[('cpu-avx512-bf16', _SEVERAL)].quote()
  assert '0.91x [0.73, 1.10] (vae)' in quoted and 'not faster' in quoted
  quoted = measurements.STEPS_PER_CALL[('cpu-avx2', _ONE)].quote()
  assert '1.04x [per-run values not recorded] (vae)' in quoted


def test_multi_worker_steps_per_call_are_fixed():
  picked, reason = hardware.resolve_steps_per_execution(
      0, _WORKERS, _machine(('avx2', 'avx512f', 'avx512_bf16')))
  assert picked == 10 and 'every worker must run the same number' in reason


def test_explicit_steps_per_call_are_kept():
  assert hardware.resolve_steps_per_execution(
      4, _ONE, _machine(('avx2', 'avx512f', 'avx512_bf16'))) == (
          4, 'asked for')


def test_an_explicit_precision_is_kept():
  assert hardware.resolve_precision('mixed_float16', _machine())[0] == (
      'mixed_float16')


@pytest.mark.parametrize('precision,flags,gpus,says', [
    ('mixed_bfloat16', ('avx2', 'fma'), (),
     ['no bfloat16 units (avx512_bf16 or amx_bf16', 'emulates bfloat16',
      'measured on class cpu-avx2: 0.10x the images/s of float32']),
    ('mixed_bfloat16', ('avx2', 'avx512f'), (),
     ['no bfloat16 units', 'usually slower than float32; --precision=auto']),
    ('mixed_float16', ('avx2', 'avx512f', 'avx512_bf16'), (),
     ['no float16 units (avx512_fp16 or amx_fp16', 'emulates float16']),
    ('mixed_bfloat16', ('avx2', 'avx512f', 'avx512_bf16'), (), None),
    ('mixed_bfloat16', ('avx2', 'amx_bf16', 'amx_tile'), (), None),
    ('mixed_float16', ('avx2', 'avx512_fp16'), (), None),
    ('mixed_bfloat16', ('avx2',), (('A100', (8, 0)),), None),
    ('float32', ('avx2',), (), None),
    ('auto', ('avx2',), (), None),
])
def test_16_bit_asked_for_on_a_cpu_without_its_units_says_so(
    precision, flags, gpus, says):
  found = hardware.emulated_16_bit(precision, _machine(flags, gpus))
  if says is None:
    assert found is None, found
  else:
    assert found.startswith(f'--precision={precision}: '), found
    for text in says:
      assert text in found, found


def test_a_run_asked_for_emulated_bfloat16_warns_once(tmp_path, monkeypatch):
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.runtime import plan  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig.create(
      precision='mixed_bfloat16', model_dir=str(tmp_path / 'run'))
  warned = []
  monkeypatch.setattr(plan.logging, 'warning',
                      lambda fmt, *args: warned.append(fmt % args))
  for flags in (('avx2', 'fma'), _BF16):
    assert plan._precision(config, None, _machine(flags)) == (  # pylint: disable=protected-access
        'mixed_bfloat16', 'asked for')
  assert len(warned) == 1 and 'emulates bfloat16' in warned[0], warned


_BF16 = ('avx2', 'avx512f', 'avx512_bf16')


@pytest.mark.parametrize('flags,gpus,setup,on,why', [
    (_BF16, (), _ONE, measurements.XLA['cpu-avx512-bf16'].pick,
     str(measurements.XLA['cpu-avx512-bf16'].ratios[0])),
    (('avx2', 'fma'), (), _ONE, False, 'never measured'),
    (('avx2',), (('A100', (8, 0)),), _ONE, False,
     'class gpu was never measured'),
    (_BF16, (), _SEVERAL, False, 'on one device only'),
    (_BF16, (), _WORKERS, False, 'on one device only'),
])
def test_auto_xla_for_each_machine_class(flags, gpus, setup, on, why):
  picked, reason = hardware.resolve_xla('auto', setup, _machine(flags, gpus))
  assert picked == on and why in reason


def test_auto_xla_follows_the_measured_table(monkeypatch):
  decision = measurements.Decision(
      True, 'XLA against without',
      (measurements.Ratio('vae', 1.5, (1.4, 1.6)),), 'some data',
      measurements.Provenance('2027-01-02', 'Some GPU', 'bench/x'))
  monkeypatch.setitem(measurements.XLA, 'gpu', decision)
  machine = _machine(('avx2',), (('A100', (8, 0)),))
  assert hardware.resolve_xla('auto', _ONE, machine) == (
      True, 'class gpu: XLA against without, images/s ratio 1.50x [1.40, '
      '1.60] (vae) (some data; 2027-01-02); on '
      '(tfp_vae/runtime/measurements.py XLA, docs/performance.md)')
  assert not hardware.resolve_xla('auto', _SEVERAL, machine)[0]


@pytest.mark.parametrize('setup', [_ONE, _SEVERAL, _WORKERS])
def test_explicit_xla(setup):
  assert hardware.resolve_xla('off', setup, _machine(_BF16)) == (
      False, 'asked for')
  if setup == _ONE:
    assert hardware.resolve_xla('on', setup, _machine(_BF16)) == (
        True, 'asked for')
  else:
    with pytest.raises(errors.ConfigError,
                       match=f'xla is not available with {setup}') as e:
      hardware.resolve_xla('on', setup, _machine(_BF16))
    assert e.value.field == 'xla'


def test_cpuinfo_is_parsed(tmp_path):
  path = tmp_path / 'cpuinfo'
  path.write_text('processor\t: 0\nmodel name\t: Some CPU @ 2GHz\n'
                  'flags\t\t: fpu avx2 avx512f avx512_bf16 amx_tile\n\n'
                  'processor\t: 1\nmodel name\t: Some CPU @ 2GHz\n')
  model, flags = hardware.cpu_info(str(path))
  assert model == 'Some CPU @ 2GHz'
  assert {'avx2', 'avx512_bf16', 'amx_tile'} <= flags
  assert hardware.cpu_info(str(tmp_path / 'missing')) == ('unknown',
                                                          frozenset())
