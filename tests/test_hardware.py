"""--precision=auto and --steps_per_execution=0 resolve as documented for
every machine class, from faked CPU flags and GPUs; /proc/cpuinfo is
parsed."""

import pytest

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
