"""Strategy factory, TF_CONFIG checks, the Trainer v2 bootstrap, replica
equivalence, multi-worker runs and preemption."""

import json
import math
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

from tests.helpers import REPO, free_port, port_is_free, run_cli, wait_all, train_in_process
from tfp_vae.runtime import distribute
from tfp_vae.internal import errors


@pytest.mark.parametrize('raw,message', [
    ('{not json', 'TF_CONFIG is not valid JSON'),
    ('[]', 'must be a JSON object with a "cluster" object'),
    ('{"cluster": {"master": ["a:1"], "worker": ["b:1"]}, '
     '"task": {"type": "master", "index": 0}}',
     "names task type 'master'"),
    ('{"cluster": {"ps": ["a:1"], "worker": ["b:1"]}, '
     '"task": {"type": "worker", "index": 0}}', "names task type 'ps'"),
    ('{"cluster": {"chief": ["a:1", "c:1"], "worker": ["b:1"]}, '
     '"task": {"type": "worker", "index": 0}}', 'more than one chief'),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", '
     '"index": 3}}', 'which is not in its cluster'),
])
def test_bad_tf_config_is_named(raw, message):
  with pytest.raises(errors.ConfigError, match='TF_CONFIG') as e:
    distribute.parse_tf_config(raw)
  assert message in str(e.value)


def test_master_hint_says_what_to_use():
  raw = ('{"cluster": {"master": ["a:1"]}, '
         '"task": {"type": "master", "index": 0}}')
  with pytest.raises(errors.ConfigError, match='use "chief" or "worker"'):
    distribute.parse_tf_config(raw)


def test_trainer_v2_bootstrap_builds_tf_config():
  env = {'JOB_COMPLETION_INDEX': '1', 'TFP_VAE_NUM_WORKERS': '3',
         'JOBSET_NAME': 'vae-run'}
  assert distribute.tf_config_from_trainer_v2(env) == {
      'cluster': {'worker': ['vae-run-node-0-0.vae-run:2222',
                             'vae-run-node-0-1.vae-run:2222',
                             'vae-run-node-0-2.vae-run:2222']},
      'task': {'type': 'worker', 'index': 1}}
  custom = dict(env, TFP_VAE_WORKER_ADDRESS='w{index}.svc:9000')
  assert distribute.tf_config_from_trainer_v2(custom)['cluster'][
      'worker'][2] == 'w2.svc:9000'
  assert distribute.tf_config_from_trainer_v2({}) is None


@pytest.mark.parametrize('env,field', [
    ({'JOB_COMPLETION_INDEX': '0'}, 'TFP_VAE_NUM_WORKERS'),
    ({'JOB_COMPLETION_INDEX': '2', 'TFP_VAE_NUM_WORKERS': '2',
      'JOBSET_NAME': 'x'}, 'JOB_COMPLETION_INDEX'),
    ({'JOB_COMPLETION_INDEX': '0', 'TFP_VAE_NUM_WORKERS': '2'},
     'JOBSET_NAME'),
])
def test_trainer_v2_bootstrap_errors(env, field):
  with pytest.raises(errors.ConfigError) as e:
    distribute.tf_config_from_trainer_v2(env)
  assert e.value.field == field


def test_bootstrap_prefers_tf_config_and_auto_is_default_without_cluster():
  raw = json.dumps({'cluster': {'worker': ['a:1', 'b:2']},
                    'task': {'type': 'worker', 'index': 0}})
  assert distribute.num_tasks(distribute.bootstrap(
      {'TF_CONFIG': raw, 'JOB_COMPLETION_INDEX': '5'})) == 2
  strategy = distribute.make_strategy('auto', env={})
  assert strategy.num_replicas_in_sync == 1
  assert distribute.is_chief(strategy)
  with pytest.raises(errors.ConfigError, match='strategy must be one of'):
    distribute.make_strategy('tpu', env={})


_EQUIVALENCE = r'''
import sys
import numpy as np
import keras
import tensorflow as tf
from tfp_vae.config import settings as config
from tfp_vae.data import loaders
from tfp_vae.runtime import distribute
from tfp_vae.model import models

devices = distribute.split_cpu(2)
d = loaders.load_mnist_5k()
x = d.train_images[:100].astype(np.float32) / 255
ds = tf.data.Dataset.from_tensors(x)
name, optimizer_name = sys.argv[1], sys.argv[2]
# float32 whatever --precision=auto picks here: the comparison is to
# 1e-6, which 16-bit compute is not.
cfg = config.TrainConfig.create(model=name, latent_dim=3,
                                precision='float32').validate()

def one_step(strategy):
  with strategy.scope():
    model = models.build_model(cfg, d.image_shape)
    opt = (keras.optimizers.SGD(1e-4) if optimizer_name == 'sgd'
           else keras.optimizers.Adam(1e-3))
    model.compile(opt, jit_compile=False)
  before = [w.numpy() for w in model.weights]
  model.fit(ds, epochs=1, verbose=0, shuffle=False)
  return before, [w.numpy() for w in model.weights]

b1, one = one_step(tf.distribute.get_strategy())
b2, two = one_step(tf.distribute.MirroredStrategy(devices))
assert all(np.array_equal(a, b) for a, b in zip(b1, b2)), 'same init'
moved = max(float(np.max(np.abs(a - b))) for a, b in zip(b1, one))
diff = max(float(np.max(np.abs(a - b))) for a, b in zip(one, two))
print(f'RESULT moved={moved:.3e} diff={diff:.3e}')
'''


@pytest.mark.parametrize('model', ['vae', 'mmd_vae'])
@pytest.mark.parametrize('optimizer', ['sgd', 'adam'])
@pytest.mark.slow
def test_two_replicas_make_the_same_step_as_one(model, optimizer):
  """SGD exposes any loss-scaling error (Adam would normalise it away)."""
  r = subprocess.run([sys.executable, '-c', _EQUIVALENCE, model, optimizer],
                     cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  line = [l for l in r.stdout.splitlines() if l.startswith('RESULT')][-1]
  values = dict(kv.split('=') for kv in line.split()[1:])
  moved, diff = float(values['moved']), float(values['diff'])
  # The step moves weights by ~1e-3 (Adam) to ~3e-2 (SGD); a loss-scaling
  # error or a per-replica MMD would differ by a sizeable fraction of that.
  assert moved > 1e-4, 'the step did not change the weights'
  assert diff < 1e-6, line


def _start_workers(envs, model_dir, export_dir, extra=()):
  args = [sys.executable, '-m', 'trainers.train', f'--model_dir={model_dir}',
          f'--export_dir={export_dir}', '--epochs=2', '--batch_size=500',
          '--plot_every=0', '--noverbose', *extra]
  return [subprocess.Popen(args, cwd=REPO, env={**os.environ, **e},
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True) for e in envs]


def _assert_only_chief_artifacts(model_dir, export_dir, outs):
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert sorted(os.listdir(model_dir)) == [
      'checkpoints', 'config.json', 'data_info.json', 'history.jsonl',
      'metrics.json', 'plots',
      'tensorboard']
  assert sorted(os.listdir(export_dir)) == ['1', 'models.config']
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    assert json.load(f)['epochs_completed'] == 2
  assert 'MultiWorkerMirroredStrategy with 2 replica(s)' in outs[0][2], [
      l for l in outs[0][2].splitlines() if 'replica' in l]


@pytest.mark.slow
def test_two_worker_processes_train_with_tf_config(tmp_path):
  workers = [f'localhost:{free_port()}', f'localhost:{free_port()}']
  envs = [{'TF_CONFIG': json.dumps({'cluster': {'worker': workers},
                                    'task': {'type': 'worker', 'index': i}})}
          for i in range(2)]
  model_dir, export_dir = str(tmp_path / 'run'), str(tmp_path / 'export')
  outs = wait_all(_start_workers(envs, model_dir, export_dir), 600)
  _assert_only_chief_artifacts(model_dir, export_dir, outs)


@pytest.mark.slow
def test_two_worker_processes_train_through_the_trainer_v2_bootstrap(
    tmp_path):
  for prefix in range(3456, 6000, 7):
    if all(port_is_free(prefix * 10 + i) for i in range(2)):
      break
  envs = [{'JOB_COMPLETION_INDEX': str(i), 'TFP_VAE_NUM_WORKERS': '2',
           'JOBSET_NAME': 'vae-job',
           'TFP_VAE_WORKER_ADDRESS': f'localhost:{prefix}{{index}}'}
          for i in range(2)]
  for e in envs:
    e.pop('TF_CONFIG', None)
  model_dir, export_dir = str(tmp_path / 'run'), str(tmp_path / 'export')
  procs = _start_workers(envs, model_dir, export_dir)
  outs = wait_all(procs, 600)
  _assert_only_chief_artifacts(model_dir, export_dir, outs)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_retryable(tmp_path):
  model_dir = str(tmp_path / 'run')
  args = [f'--model_dir={model_dir}', '--epochs=8', '--batch_size=100',
          '--train_examples=1000', '--plot_every=0', '--noverbose']
  proc = subprocess.Popen([sys.executable, '-m', 'trainers.train', *args],
                          cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  first = os.path.join(model_dir, 'checkpoints', 'ckpt-1.index')
  deadline = time.time() + 300
  while not os.path.exists(first) and proc.poll() is None:
    assert time.time() < deadline
    time.sleep(0.05)
  time.sleep(0.5)  # into the second epoch
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == 143, err[-3000:]
  assert 'stopped by SIGTERM' in err and 'run the same command again' in err
  latest = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  assert latest is not None and int(latest.rsplit('-', 1)[1]) >= 2
  r = run_cli('trainers.train', *args)
  assert r.returncode == 0, r.stderr[-3000:]
  assert 'resuming' in r.stderr
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    assert json.load(f)['epochs_completed'] == 8


@pytest.mark.slow
def test_a_batch_the_replicas_cannot_split(tmp_path):
  # A real process: the replicas split the CPU before TensorFlow
  # initialises, which a test process that already ran TensorFlow cannot.
  r = run_cli('trainers.train', '--strategy=mirrored', '--cpu_replicas=3',
              '--batch_size=100', f'--model_dir={tmp_path}/r')
  assert r.returncode == 1
  assert 'batch_size must be divisible by the 3 replicas' in r.stderr
  assert 'Traceback' not in r.stderr


@pytest.mark.parametrize('args,env,message', [
    ([], {'TF_CONFIG': '{oops'}, 'TF_CONFIG is not valid JSON'),
    ([], {'TF_CONFIG': json.dumps({'cluster': {'master': ['a:1']},
                                   'task': {'type': 'master', 'index': 0}})},
     "names task type 'master'"),
])
def test_bad_distribution_input(tmp_path, args, env, message):
  # In-process (the command's main and error wording); tests/e2e/test_cli.py
  # and tests/faults/test_kills_and_resumes.py check the real process's one
  # line and exit code.
  code, line = train_in_process(*args, f'--model_dir={tmp_path}/r', env=env)
  assert code == 1 and message in line, line


def _cli_at_defaults(cwd, *args, env=None):
  """`python -m trainers.train` from `cwd`, where its default --model_dir
  (runs/vae) lands, with only the given flags."""
  return subprocess.Popen(
      [sys.executable, '-m', 'trainers.train', *args], cwd=cwd,
      env={**os.environ, 'PYTHONPATH': REPO, **(env or {})},
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _assert_trained_and_exported(cwd, model):
  with open(os.path.join(cwd, 'runs', model, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['epochs_completed'] == 1
  # Numbers, and the VAE's per-unit rates (a list).
  assert all(math.isfinite(v) for value in metrics.values()
             for v in (value if isinstance(value, list) else [value]))
  assert os.path.exists(os.path.join(cwd, 'export', '1', 'saved_model.pb'))


@pytest.mark.parametrize('model,strategy_flags,setup', [
    ('vae', [], 'one device'),
    ('vae', ['--strategy=mirrored', '--cpu_replicas=2'], 'several replicas'),
    ('mmd_vae', ['--strategy=mirrored', '--cpu_replicas=2'],
     'several replicas'),
    # One local worker (the suite runs without TF_CONFIG): no cluster.
    ('vae', ['--strategy=multi_worker'], 'multi-worker'),
])
@pytest.mark.slow
def test_each_strategy_trains_at_the_command_line_defaults(
    tmp_path, model, strategy_flags, setup):
  """One epoch at every default (steps per call included) and an export:
  what a user runs, not a configuration the suite chose."""
  proc = _cli_at_defaults(tmp_path, f'--model={model}', '--epochs=1',
                          f'--model_dir=runs/{model}', '--export_dir=export',
                          *strategy_flags)
  outs = wait_all([proc], 600)
  assert outs[0][0] == 0, outs[0][2][-3000:]
  _assert_trained_and_exported(tmp_path, model)
  # --xla=auto decided, and said why (off with several replicas or workers).
  assert re.search(
      r'XLA (on|off) for the training step \(--xla=auto: ' if
      setup == 'one device' else r'XLA off for the training step '
      rf'\(--xla=auto: {setup}: the trainer compiles with XLA on one device '
      r'only', outs[0][2]), outs[0][2][-3000:]


@pytest.mark.slow
def test_multi_worker_trains_at_the_command_line_defaults(tmp_path):
  workers = [f'localhost:{free_port()}', f'localhost:{free_port()}']
  procs = []
  for i in range(2):
    cwd = tmp_path if i == 0 else tmp_path / 'worker1'
    os.makedirs(cwd, exist_ok=True)
    env = {'TF_CONFIG': json.dumps({'cluster': {'worker': workers},
                                    'task': {'type': 'worker', 'index': i}})}
    # Every worker must see the chief's model_dir (a shared volume on a
    # cluster): the same absolute path here.
    procs.append(_cli_at_defaults(
        cwd, '--epochs=1', f'--model_dir={tmp_path}/runs/vae',
        f'--export_dir={tmp_path}/export', '--strategy=multi_worker',
        env=env))
  outs = wait_all(procs, 600)
  for code, _, err in outs:
    assert code == 0, err[-3000:]
  assert 'MultiWorkerMirroredStrategy with 2 replica(s)' in outs[0][2]
  assert ('XLA off for the training step (--xla=auto: multi-worker: the '
          'trainer compiles with XLA on one device only') in outs[0][2]
  _assert_trained_and_exported(tmp_path, 'vae')


_MULTI_STEP = r'''
import sys
import numpy as np
import keras
import tensorflow as tf
from tfp_vae.config import settings as config
from tfp_vae.data import loaders
from tfp_vae.runtime import distribute
from tfp_vae.model import models

devices = distribute.split_cpu(2)
d = loaders.load_mnist_5k()
# 6 steps of 20: with 4 steps per call the second call runs a partial 2.
x = (d.train_images[:120].astype(np.float32) / 255).reshape(6, 20, 28, 28, 1)
# float32 whatever --precision=auto picks here: the comparison is to
# 1e-6, which 16-bit compute is not.
cfg = config.TrainConfig.create(model=sys.argv[1], latent_dim=3,
                                precision='float32').validate()

def train(strategy, spe):
  with strategy.scope():
    model = models.build_model(cfg, d.image_shape)
    model.compile(keras.optimizers.Adam(1e-3), jit_compile=False,
                  steps_per_execution=spe)
  before = [w.numpy() for w in model.trainable_variables]
  logs = model.fit(tf.data.Dataset.from_tensor_slices(x), epochs=1,
                   verbose=0, shuffle=False).history
  return before, [w.numpy() for w in model.trainable_variables], (
      int(model.optimizer.iterations.numpy()), logs['loss'][-1])

b, one, (steps_one, loss_one) = train(tf.distribute.get_strategy(), 1)
_, four, (steps_four, loss_four) = train(
    tf.distribute.MirroredStrategy(devices), 4)
moved = max(float(np.max(np.abs(a - c))) for a, c in zip(b, one))
diff = max(float(np.max(np.abs(a - c))) for a, c in zip(one, four))
print(f'RESULT moved={moved:.3e} diff={diff:.3e} steps={steps_one},'
      f'{steps_four} loss={loss_one:.6f},{loss_four:.6f}')
'''


@pytest.mark.parametrize('model', ['vae', 'mmd_vae'])
@pytest.mark.slow
def test_mirrored_several_steps_per_call_match_one_replica(model):
  """`models.distributed_multi_step` (several steps per call under a
  multi-replica strategy) makes the updates of one replica stepping once
  per call, partial last call included."""
  r = subprocess.run([sys.executable, '-c', _MULTI_STEP, model], cwd=REPO,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-3000:]
  line = [l for l in r.stdout.splitlines() if l.startswith('RESULT')][-1]
  values = dict(kv.split('=') for kv in line.split()[1:])
  assert values['steps'] == '6,6', line
  assert float(values['moved']) > 1e-4, line
  assert float(values['diff']) < 1e-5, line
  loss_one, loss_four = map(float, values['loss'].split(','))
  assert loss_four == pytest.approx(loss_one, rel=1e-4), line
