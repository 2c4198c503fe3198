"""The run's plan: every decision made once, recorded in config.json, and
what a resume compares."""

import json

import pytest

from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.runtime import bfloat16_guard
from tfp_vae.runtime import hardware
from tfp_vae.runtime import measurements
from tfp_vae.runtime import plan
from tfp_vae.nn import precision

AVX2 = hardware.Machine('AMD EPYC', frozenset({'avx2', 'fma'}), 2, ())
AMX = hardware.Machine('Intel Xeon', frozenset({'amx_tile', 'amx_bf16',
                                                'avx512_bf16', 'avx512f'}),
                       2, ())



@pytest.fixture(autouse=True)
def amx_picks_bfloat16(monkeypatch):
  """A class whose auto is bfloat16: AMX with rows that pass the guard under
  today's policy (what a measurement there would record)."""
  rows = [measurements.PrecisionRow(model, seed, bfloat16_guard.GUARD_EPOCHS,
                                (100.0, 150.0), (260.0, 260.1),
                                precision.POLICY)
          for model in bfloat16_guard.GUARD_MODELS for seed in (0, 1)]
  monkeypatch.setitem(measurements.BFLOAT16_ROWS, 'cpu-amx',
                      ('Intel Xeon with AMX (test rows)', rows))

def _runtime(machine, previous=None, **settings):
  config = config_lib.TrainConfig.create(**settings).validate()
  return plan.resolve_runtime(config, 'default strategy', 'one device', 1,
                              '', True, previous, machine)


def test_auto_is_decided_once_with_its_reason():
  rt = _runtime(AMX)
  assert rt.precision == 'mixed_bfloat16'
  assert rt.reasons['precision'].startswith('--precision=auto: CPU class '
                                            'cpu-amx')
  assert rt.reasons['steps_per_execution'] == (
      '--steps_per_execution=0: class cpu-amx with one device: not '
      'measured: default 10')
  assert _runtime(AVX2).precision == 'float32'
  assert _runtime(AVX2, precision='mixed_bfloat16').reasons[
      'precision'] == 'asked for'


def test_a_resume_keeps_the_recorded_precision_or_refuses_another():
  started = {'runtime': {'precision': 'float32'}}
  kept = _runtime(AMX, started)  # auto would pick bfloat16 here
  assert kept.precision == 'float32'
  assert 'recorded when the run started' in kept.reasons['precision']
  assert 'auto would pick mixed_bfloat16' in kept.reasons['precision']
  assert _runtime(AMX, started, precision='float32').precision == 'float32'
  with pytest.raises(errors.CheckpointError,
                     match=r'was trained in float32: '
                     r'--precision=mixed_bfloat16 would continue it in '
                     r'another precision'):
    _runtime(AVX2, started, precision='mixed_bfloat16')


def test_a_run_recorded_with_the_kernels_old_name_is_the_same_run():
  """A run recorded before --kernel=sources was renamed gaussian_dim
  resumes: its recorded plan is read with today's name."""
  config = config_lib.TrainConfig.create(model='mmd_vae').validate()
  the_plan = plan.make(config, (28, 28, 1),
                       plan.one_device(config, 'float32'))
  recorded = json.loads(json.dumps(the_plan.to_dict()))
  assert recorded['member']['settings']['kernel'] == 'gaussian_dim'
  recorded['member']['settings']['kernel'] = 'sources'
  assert plan.differences(recorded, the_plan) == []


def test_the_member_is_resolved_once_and_compared_resolved():
  config = config_lib.TrainConfig.create(model='mmd_vae').validate()
  the_plan = plan.make(config, (28, 28, 1),
                       plan.one_device(config, 'float32'))
  assert the_plan.member.mmd_weight == 784.0
  recorded = json.loads(json.dumps(the_plan.to_dict()))
  assert plan.recorded_member(recorded) == the_plan.member
  # The default given explicitly is the same run; another value is not.
  same = config_lib.TrainConfig.create(model='mmd_vae', mmd_weight=784.0)
  assert plan.differences(recorded, plan.make(
      same, (28, 28, 1), plan.one_device(same, 'float32'))) == []
  other = config_lib.TrainConfig.create(model='mmd_vae', mmd_weight=10.0)
  assert plan.differences(recorded, plan.make(
      other, (28, 28, 1), plan.one_device(other, 'float32'))) == [
          ('mmd_weight', 784.0, 10.0)]
  assert plan.differences(recorded, plan.make(
      config, (32, 32, 1), plan.one_device(config, 'float32'))) == [
          ('mmd_weight', 784.0, 1024.0),
          ('image_shape', [28, 28, 1], [32, 32, 1])]


@pytest.mark.slow
def test_a_run_resumed_on_another_machine_class_keeps_its_precision(
    tmp_path, monkeypatch):
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(hardware, 'this_machine', lambda *a, **k: AVX2)
  config = config_lib.TrainConfig.create(
      epochs=1, train_examples=100, batch_size=50, plot_every=0,
      verbose=False, model_dir=str(tmp_path / 'run'))
  training.run(config)
  with open(tmp_path / 'run' / 'config.json') as f:
    recorded = json.load(f)
  assert recorded['trainer']['precision'] == 'auto'
  assert recorded['plan']['runtime']['precision'] == 'float32'
  # On a class whose auto is bfloat16, the run goes on in float32.
  monkeypatch.setattr(hardware, 'this_machine', lambda *a, **k: AMX)
  resumed = config_lib.TrainConfig.create(**{**config.flat(), 'epochs': 2})
  the_run = training.prepare(resumed)
  assert the_run.plan.precision == 'float32'
  metrics = training.run(resumed)
  assert metrics['epochs_completed'] == 2
  with open(tmp_path / 'run' / 'config.json') as f:
    assert json.load(f)['plan']['runtime']['precision'] == 'float32'
  with pytest.raises(errors.CheckpointError, match='was trained in float32'):
    training.run(resumed.replace(precision='mixed_bfloat16', epochs=3))


def test_the_float32_parts_are_recorded_and_a_change_is_said():
  assert _runtime(AVX2, precision='float32').float32_parts == ()
  today = _runtime(AVX2, precision='mixed_bfloat16')
  assert today.float32_parts == tuple(sorted(precision.POLICY))
  # A 16-bit run recorded before the policy had its `outputs` part.
  older = _runtime(AVX2, {'runtime': {'precision': 'mixed_bfloat16'}},
                   precision='mixed_bfloat16')
  assert ('started under an earlier mixed-precision policy (float32: '
          'distributions) and goes on under today\'s (float32: '
          'distributions, outputs)') in older.reasons['precision']
  same = _runtime(AVX2, {'runtime': {
      'precision': 'mixed_bfloat16',
      'float32_parts': list(today.float32_parts)}},
                  precision='mixed_bfloat16')
  assert 'earlier' not in same.reasons['precision']


# The class measured on 2026-12-07 (measurements.BFLOAT16_ROWS): auto is
# bfloat16 for the VAE alone and float32 for the MMD-VAE, so float32 for a
# comparison of both.
AVX512_BF16 = hardware.Machine('AMD EPYC', frozenset(
    {'avx2', 'avx512f', 'avx512_bf16'}), 2, ())


def test_a_run_of_a_comparison_decides_auto_for_every_compared_member():
  """A run trained apart from its comparison (the compare pipeline's pods)
  gets the precision trainers.compare gives every compared member: with
  compared_models, auto decides for all of them, not for the run's own."""
  assert _runtime(AVX512_BF16, model='vae').precision == 'mixed_bfloat16'
  compared = _runtime(AVX512_BF16, model='vae',
                      compared_models='vae,mmd_vae')
  assert compared.precision == 'float32'
  assert "mmd_vae's test loss" in compared.reasons['precision']
  config = config_lib.TrainConfig.create(
      model='vae', compared_models='mmd_vae').validate()
  assert plan.precision_members(config) == ('vae', 'mmd_vae')
  # It only chooses the precision a run starts in: a resume may change it.
  assert config.differences(config_lib.TrainConfig.create(model='vae')) == []
  with pytest.raises(errors.ConfigError, match='names no registered member: '
                     'nope'):
    config_lib.TrainConfig.create(compared_models='vae,nope').validate()


def test_a_comparison_gives_its_runs_the_compared_members_and_keeps_auto():
  """trainers.compare's runs carry every compared member and precision
  auto: each decides for all of them (as the pipeline's pods do), and a run
  already started resumes in the precision it recorded, which the compare
  step, possibly on another machine class, does not refuse."""
  from tfp_vae.experiment import comparison  # pylint: disable=g-import-not-at-top
  from tfp_vae.family import members as family  # pylint: disable=g-import-not-at-top
  base = config_lib.TrainConfig.create()
  members = [('vae', family.create('vae')), ('mmd_vae',
                                            family.create('mmd_vae')),
             ('vae:beta=4', family.create('vae', beta=4.0))]
  runs = comparison.plan_runs(base, members, '/tmp/out', 1)
  assert [r.config.trainer.compared_models for r in runs] == [
      'vae,mmd_vae'] * 3
  assert {r.config.trainer.precision for r in runs} == {'auto'}
  asked = comparison.plan_runs(base.replace(precision='float32'), members,
                               '/tmp/out', 1)
  assert {r.config.trainer.precision for r in asked} == {'float32'}
