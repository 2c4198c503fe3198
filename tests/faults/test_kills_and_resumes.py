"""Nothing lost, nothing half-done: kills and preemptions at chosen points
resume to the uninterrupted run's weights; broken checkpoints fall back;
runs and exports do not trample each other; hostile values are refused in
one line."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, once, run_cli, train_in_process
from tfp_vae.runtime import budget
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.experiment import evaluate as evaluation
from tfp_vae.internal import layout
from tfp_vae.model import models
from tfp_vae.runtime import plan
from tfp_vae.training import rundir

# 600 images, batch 50: 12 steps an epoch; 3 epochs; 10 steps per call, so
# a call ends at steps 10, 12, 22, 24, 34, 36.
RUN = ['--model=mmd_vae', '--epochs=3', '--train_examples=600',
       '--batch_size=50', '--plot_every=0', '--noverbose', '--deterministic']
STEPS = 36


def _train(model_dir, fault=None, extra=()):
  env = dict(os.environ)
  env.pop('TFP_VAE_FAULT', None)
  if fault:
    env['TFP_VAE_FAULT'] = fault
  return subprocess.run(
      [sys.executable, '-m', 'trainers.train', *RUN, *extra,
       f'--model_dir={model_dir}', f'--export_dir={model_dir}-export'],
      cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


def _state(model_dir):
  """(optimizer steps, {variable: value}) of the newest checkpoint: the
  weights and the optimizer's moments (Keras tracks the weights under the
  optimizer)."""
  path = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  names = [n for n, _ in tf.train.list_variables(path)
           if n.startswith('optimizer/_') and 'iterations' not in n]
  assert len(names) > 10, names
  steps = [n for n, _ in tf.train.list_variables(path)
           if n.endswith('iterations/.ATTRIBUTES/VARIABLE_VALUE')]
  return int(reader.get_tensor(steps[0])), {
      n: reader.get_tensor(n) for n in names}


def _train_reference(model_dir):
  r = _train(model_dir)
  assert r.returncode == 0, r.stderr[-3000:]


@pytest.fixture(scope='session')
def uninterrupted(shared_dir):
  """The run every fault below is measured against, trained once for the
  suite (tests/conftest.py); tests copy it before changing it."""
  return once(shared_dir, 'faults_reference', _train_reference)


# The points, drawn once from a fixed seed: a kill between steps, a SIGTERM
# between steps (the preemption a cluster sends), a kill inside an epoch's
# commit (history written, checkpoint not), a kill after a checkpoint, and a
# kill in the middle of the export.
_rng = random.Random(2026)
FAULTS = [f'step:{_rng.choice([10, 22, 34])}',
          f'step:{_rng.choice([10, 22])}:term',
          f'epoch_commit:{_rng.choice([1, 2, 3])}',
          f'checkpoint:{_rng.choice([1, 2])}',
          'export:0']


@pytest.mark.parametrize('fault', FAULTS)
@pytest.mark.slow
def test_killed_or_preempted_run_resumes_to_the_uninterrupted_weights(
    uninterrupted, tmp_path, fault):
  model_dir = str(tmp_path / 'run')
  first = _train(model_dir, fault)
  expected_code = 143 if fault.endswith(':term') else -signal.SIGKILL
  assert first.returncode == expected_code, first.stderr[-2000:]
  resumed = _train(model_dir)
  assert resumed.returncode == 0, resumed.stderr[-3000:]
  steps, weights = _state(model_dir)
  ref_steps, ref_weights = _state(uninterrupted)
  assert steps == ref_steps == STEPS  # no step trained twice or skipped
  worst = max(float(np.max(np.abs(weights[n] - ref_weights[n])))
              for n in ref_weights)
  assert worst == 0.0, f'largest weight difference {worst}'
  history = rundir.read_history(model_dir)
  assert [r['epoch'] for r in history] == [1, 2, 3]
  reference = rundir.read_history(uninterrupted)
  for mine, theirs in zip(history, reference):
    assert mine['test_loss'] == theirs['test_loss']
  metrics = rundir.read_metrics(model_dir)
  ref_metrics = rundir.read_metrics(uninterrupted)
  for key in ref_metrics:
    if key != 'train_images_per_second':
      assert metrics[key] == ref_metrics[key], key
  assert metrics['train_images_per_second'] > 0
  assert sorted(os.listdir(model_dir + '-export')) == ['1', 'models.config']
  leftovers = [n for n in os.listdir(model_dir) + os.listdir(
      os.path.join(model_dir, 'checkpoints')) if 'tmp' in n or
               n.endswith('_temp')]
  assert not leftovers


@pytest.mark.slow
def test_a_broken_newest_checkpoint_falls_back_and_says_so(uninterrupted,
                                                           tmp_path):
  model_dir = str(tmp_path / 'run')
  shutil.copytree(uninterrupted, model_dir)
  checkpoints = os.path.join(model_dir, 'checkpoints')
  data = [n for n in os.listdir(checkpoints) if n.startswith('ckpt-3.data')]
  with open(os.path.join(checkpoints, data[0]), 'r+b') as f:
    f.truncate(100)
  r = _train(model_dir, extra=['--epochs=4'])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'ckpt-3 is unreadable' in r.stderr and 'resumed from' in r.stderr
  assert 'resuming' in r.stderr and 'from epoch 2 of 4' in r.stderr
  assert os.path.exists(os.path.join(checkpoints, 'unreadable'))
  assert rundir.read_metrics(model_dir)['epochs_completed'] == 4


@pytest.mark.slow
def test_a_missing_index_or_state_file_is_not_a_silent_restart(uninterrupted,
                                                                tmp_path):
  model_dir = str(tmp_path / 'run')
  shutil.copytree(uninterrupted, model_dir)
  checkpoints = os.path.join(model_dir, 'checkpoints')
  os.remove(os.path.join(checkpoints, 'checkpoint'))
  os.remove(os.path.join(checkpoints, 'ckpt-3.index'))
  r = _train(model_dir, extra=['--epochs=4'])
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'from epoch 2 of 4' in r.stderr  # ckpt-2, not epoch 0
  # Every checkpoint gone but data: refused, nothing overwritten.
  for name in os.listdir(checkpoints):
    if name.endswith('.index'):
      os.remove(os.path.join(checkpoints, name))
  r = _train(model_dir, extra=['--epochs=5'])
  assert r.returncode == 1
  assert 'no readable index' in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.slow
def test_truncated_checkpoint_for_export_is_one_line(uninterrupted,
                                                     tmp_path):
  model_dir = str(tmp_path / 'run')
  shutil.copytree(uninterrupted, model_dir)
  checkpoints = os.path.join(model_dir, 'checkpoints')
  for name in os.listdir(checkpoints):
    if '.data-' in name:
      with open(os.path.join(checkpoints, name), 'r+b') as f:
        f.truncate(50)
  r = run_cli('trainers.export', f'--model_dir={model_dir}',
              f'--export_dir={tmp_path}/export')
  assert r.returncode == 1
  assert 'cannot be restored' in r.stderr and 'Traceback' not in r.stderr


@pytest.mark.slow
def test_rerunning_a_finished_run_keeps_the_evaluation(uninterrupted,
                                                       tmp_path):
  model_dir = str(tmp_path / 'run')
  shutil.copytree(uninterrupted, model_dir)
  # What trainers.evaluate calls (the command:
  # tests/e2e/test_evaluate_and_compare.py).
  evaluation.evaluate_run(model_dir, config_lib.EvalConfig(
      iwae_samples=2, cache_dir=f'{tmp_path}/cache').validate())
  evaluated = rundir.read_metrics(model_dir)
  assert _train(model_dir).returncode == 0  # finished: nothing trained
  again = rundir.read_metrics(model_dir)
  for key in ('test_iwae_log_likelihood', 'test_knn_accuracy',
              'test_classifier_frechet_distance', 'evaluated_epoch'):
    assert again[key] == evaluated[key], key
  # Training further makes the evaluation stale: it is dropped, said so.
  r = _train(model_dir, extra=['--epochs=4'])
  assert r.returncode == 0
  assert 'dropped the evaluation of epoch 3' in r.stderr
  assert 'test_iwae_log_likelihood' not in rundir.read_metrics(model_dir)


@pytest.mark.slow
def test_two_trainers_on_one_model_dir(tmp_path):
  model_dir = str(tmp_path / 'run')
  os.makedirs(model_dir)
  holder = subprocess.Popen([sys.executable, '-c', 'import time; '
                             'time.sleep(600)'])
  try:
    with open(os.path.join(model_dir, '.lock'), 'w') as f:
      json.dump({'pid': holder.pid, 'host': os.uname().nodename,
                 'what': 'training', 'since': 'now'}, f)
    r = _train(model_dir)
    assert r.returncode == 1
    assert f'is in use by training (pid {holder.pid} on host' in r.stderr
  finally:
    holder.kill()
    holder.wait()
  # The holder is gone: its lock is taken over.
  r = _train(model_dir, extra=['--epochs=1'])
  assert r.returncode == 0, r.stderr[-2000:]
  assert 'taking over' in r.stderr
  assert not os.path.exists(os.path.join(model_dir, '.lock'))


@pytest.mark.slow
def test_concurrent_exports_get_distinct_versions(tmp_path):
  config = config_lib.TrainConfig.create(latent_dim=2).validate()
  model = models.build_model(config, (28, 28, 1))
  export_dir = str(tmp_path / 'export')
  script = (
      'import sys\n'
      'from tfp_vae.config import settings as config\n'
      'from tfp_vae.model import export, models\n'
      'm = models.build_model(config.TrainConfig.create().validate(),'
      ' (28, 28, 1))\n'
      'print(export.export_savedmodel(m, (28, 28, 1), sys.argv[1]))\n')
  procs = [subprocess.Popen([sys.executable, '-c', script, export_dir],
                            cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
           for _ in range(3)]
  outs = [p.communicate(timeout=600) for p in procs]
  assert all(p.returncode == 0 for p in procs), [o[1][-1500:] for o in outs]
  paths = sorted(o[0].strip().splitlines()[-1] for o in outs)
  assert len(set(paths)) == 3
  assert layout.versions(export_dir) == [1, 2, 3]
  del model


@pytest.mark.parametrize('args,env,message', [
    (['--latent_dim=100000'], {}, '--latent_dim would need about'),
    (['--latent_dim=1000000000000'], {}, '--latent_dim would need about'),
    (['--prior=mixture', '--prior_components=100000000'], {},
     '--prior_components would need about'),
    (['--model=iwae', '--iwae_samples=1000000'], {},
     '--iwae_samples would need about'),
    (['--seed=9223372036854775808'], {}, '--seed must be at most 2147483647'),
    (['--model_dir=/dev/null'], {}, '--model_dir is a file'),
    (['--export_dir=/etc/hostname'], {}, '--export_dir is a file'),
    ([], {'TFP_VAE_NUM_WORKERS': '1000000000', 'JOB_COMPLETION_INDEX': '0',
          'JOBSET_NAME': 'j'}, 'TFP_VAE_NUM_WORKERS must be in [1, 10,000]'),
    ([], {'TFP_VAE_NUM_WORKERS': '2', 'JOB_COMPLETION_INDEX': 'abc',
          'JOBSET_NAME': 'j'}, 'JOB_COMPLETION_INDEX must be an integer'),
    ([], {'TF_CONFIG': json.dumps({'cluster': {'worker': ['localhost:abc']},
                                   'task': {'type': 'worker', 'index': 0}})},
     "has address 'localhost:abc'"),
    ([], {'TF_CONFIG': json.dumps({'cluster': {'worker': ['localhost:1']},
                                   'task': {'type': ['worker'],
                                            'index': 0}})},
     "has task {'type': ['worker']"),
])
def test_hostile_values_are_refused_in_one_line(tmp_path, args, env, message):
  code, line = train_in_process(f'--model_dir={tmp_path}/run', *args,
                                env=env)
  assert code == 1 and line.startswith('error: ') and message in line, line
  assert not os.path.exists(f'{tmp_path}/run/checkpoints')


@pytest.mark.slow
def test_a_hostile_value_is_one_line_from_the_real_command(tmp_path):
  """The process contract of the cases above (run in-process there): exit
  code 1, one 'error:' line, no traceback."""
  r = run_cli('trainers.train', f'--model_dir={tmp_path}/run', env={
      'TF_CONFIG': json.dumps({'cluster': {'worker': ['localhost:abc']},
                               'task': {'type': 'worker', 'index': 0}})})
  assert r.returncode == 1, r.stderr[-2000:]
  lines = [l for l in r.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and "has address 'localhost:abc'" in lines[0], (
      r.stderr[-2000:])
  assert 'Traceback' not in r.stderr


def test_the_memory_estimate_is_checked_against_what_is_available():
  config = config_lib.TrainConfig.create(latent_dim=64).validate()
  the_plan = plan.make(config, (28, 28, 1),
                       plan.one_device(config, 'float32'))
  needed = budget.check(config, the_plan)
  with pytest.raises(errors.ConfigError, match='would need about'):
    budget.check(config, the_plan, available=int(needed))
  assert budget.check(config, the_plan, available=int(
      needed / budget.BUDGET_SHARE) + 1) == needed


_PEAK_AFTER_EPOCH_1 = '''
import json, sys, tempfile
from trainers import common
common.start()  # what the trainers do before importing TF
from tfp_vae.runtime import budget
from tfp_vae.config import settings as config_lib
from tfp_vae.training import run as training
peaks = []
training.run(config_lib.TrainConfig.create(
    latent_dim=64, epochs=1, train_examples=2000, plot_every=0,
    verbose=False, batch_size=int(sys.argv[1]), precision='float32',
    model_dir=tempfile.mkdtemp()), on_epoch=lambda epoch, logs: peaks.append(
        budget.peak_rss_mb()))
print(json.dumps({'peak_mb': peaks[0]}))
'''
# What the estimate counts (before budget.OVERHEAD) is trusted within this
# factor of what a run measures; with OVERHEAD it must cover it.
ESTIMATE_FACTOR = 2.0


@pytest.mark.slow
def test_the_memory_estimate_grows_as_a_run_measures():
  """The estimate (`tfp_vae.runtime.budget`) counts what grows with the
  settings, not TensorFlow's own baseline.  From batch 50 to batch 1000 (latent 64,
  the conv networks) what it counts grows within ESTIMATE_FACTOR of what
  the same run's peak RSS grows, measured after epoch 1 (training and its
  test pass, before the end-of-run plots, which do not depend on the
  batch), and the checked estimate (OVERHEAD included) covers it."""
  peaks, counted, checked = {}, {}, {}
  for batch in (50, 1000):
    r = subprocess.run([sys.executable, '-c', _PEAK_AFTER_EPOCH_1,
                        str(batch)], cwd=REPO, capture_output=True,
                       text=True, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    peaks[batch] = json.loads(r.stdout.strip().splitlines()[-1])['peak_mb']
    config = config_lib.TrainConfig.create(
        latent_dim=64, batch_size=batch).validate()
    the_plan = plan.make(config, (28, 28, 1),
                         plan.one_device(config, 'float32'))
    counted[batch] = sum(budget.estimate(config, the_plan).values()) / 2**20
    checked[batch] = budget.check(config, the_plan, available=0) / 2**20
  measured = peaks[1000] - peaks[50]
  grew = counted[1000] - counted[50]
  assert measured > 0, peaks
  why = (f'the estimate counted {grew:.0f} MB more, checked '
         f'{checked[1000] - checked[50]:.0f} MB more; the run grew '
         f'{measured:.0f} MB (peaks {peaks})')
  assert 1 / ESTIMATE_FACTOR <= grew / measured <= ESTIMATE_FACTOR, why
  assert checked[1000] - checked[50] >= measured, why


@pytest.mark.slow
def test_a_nan_names_the_settings_that_scale_the_loss(tmp_path):
  r = run_cli('trainers.train', '--model=mmd_vae', '--likelihood=gaussian',
              '--gaussian_scale=1e-25', '--epochs=1', '--train_examples=200',
              f'--model_dir={tmp_path}/run')
  assert r.returncode == 1, r.stderr[-2000:]
  line = [l for l in r.stderr.splitlines() if l.startswith('error:')][0]
  assert 'became nan' in line or 'became inf' in line
  assert 'lower --learning_rate' in line and '--gaussian_scale=1e-25' in line
  # The weight as resolved from the pixel count, not as the flag left it.
  assert re.search(r'--mmd_weight=[0-9.e+]+,', line), line
