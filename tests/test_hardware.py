"""--precision=auto, --steps_per_execution=0 and --xla=auto resolve as
documented for
every machine class, from faked CPU flags and GPUs; /proc/cpuinfo is
parsed."""

import pytest

from tfp_vae import errors
from tfp_vae import hardware


def _machine(flags=(), gpus=()):
  return hardware.Machine('test cpu', frozenset(flags), 2, tuple(gpus))


@pytest.mark.parametrize('flags,gpus,precision,why', [
    (('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'), (),
     'mixed_bfloat16', 'CPU class cpu-amx'),
    (('avx2', 'avx512f', 'avx512_bf16'), (), hardware.MEASURED[
        'cpu-avx512-bf16'][0], 'CPU class cpu-avx512-bf16'),
    (('avx2', 'fma'), (), 'float32', 'CPU class cpu-avx2'),
    (('avx2', 'avx512f'), (), 'float32', 'never measured'),
    ((), (), 'float32', 'never measured'),
    (('avx2',), (('A100', (8, 0)),), 'mixed_bfloat16', 'bfloat16 units'),
    (('avx2',), (('T4', (7, 5)),), 'float32', 'without bfloat16 units'),
    (('avx2',), (('A100', (8, 0)), ('V100', (7, 0))), 'float32',
     'without bfloat16 units'),
])
def test_auto_precision_for_each_machine_class(flags, gpus, precision, why):
  picked, reason = hardware.resolve_precision('auto', _machine(flags, gpus))
  assert picked == precision and why in reason


_ONE, _SEVERAL, _WORKERS = 'one device', 'several replicas', 'multi-worker'


@pytest.mark.parametrize('flags,gpus,setup,steps,why', [
    (('avx2', 'avx512f', 'avx512_bf16'), (), _ONE, 10, 'measured fastest'),
    (('avx2', 'avx512f', 'avx512_bf16'), (), _SEVERAL, 10, 'measured fastest'),
    (('avx2', 'fma'), (), _ONE, 10, 'measured fastest'),
    (('avx2', 'avx512f'), (), _ONE, 10, 'never measured'),
    (('avx2', 'fma'), (), _SEVERAL, 10, 'never measured'),
    (('avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'), (), _ONE,
     10, 'class cpu-amx with one device was never measured'),
    (('avx2',), (('A100', (8, 0)),), _SEVERAL, 10, 'class gpu with several'),
    (('avx2', 'avx512f', 'avx512_bf16'), (), _WORKERS, 10,
     'every worker must run the same number'),
])
def test_auto_steps_per_call_for_each_machine_class(flags, gpus, setup,
                                                     steps, why):
  picked, reason = hardware.resolve_steps_per_execution(
      0, setup, _machine(flags, gpus))
  assert picked == steps and why in reason


def test_explicit_steps_per_call_are_kept():
  assert hardware.resolve_steps_per_execution(
      4, _ONE, _machine(('avx2', 'avx512f', 'avx512_bf16'))) == (
          4, 'asked for')


def test_an_explicit_precision_is_kept():
  assert hardware.resolve_precision('mixed_float16', _machine())[0] == (
      'mixed_float16')


_BF16 = ('avx2', 'avx512f', 'avx512_bf16')


@pytest.mark.parametrize('flags,gpus,setup,on,why', [
    (_BF16, (), _ONE, hardware.XLA['cpu-avx512-bf16'][0],
     'class cpu-avx512-bf16'),
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
  monkeypatch.setitem(hardware.XLA, 'gpu', (True, 'Some GPU: 1.5x'))
  machine = _machine(('avx2',), (('A100', (8, 0)),))
  assert hardware.resolve_xla('auto', _ONE, machine) == (
      True, 'measured faster on class gpu (tfp_vae/hardware.py: Some GPU)')
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
