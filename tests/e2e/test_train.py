"""End to end: the trainer writes what it promises, resumes, and refuses bad
input with a clear error and a non-zero exit code."""

import glob
import json
import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, run_cli, train_in_process
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.training import run as training

TINY = ('--batch_size=500', '--plot_every=1', '--noverbose')


def _metrics(model_dir):
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    return json.load(f)


def _latest_checkpoint_number(model_dir):
  """Epochs recorded in model_dir's latest checkpoint (0 if none)."""
  path = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  if path is None:
    return 0
  return int(tf.train.load_checkpoint(path).get_tensor(
      'epoch/.ATTRIBUTES/VARIABLE_VALUE'))


@pytest.mark.parametrize('model,latent', [('vae', 2), ('mmd_vae', 3)])
@pytest.mark.slow
def test_tiny_run_writes_every_promised_file(tmp_path, model, latent):
  model_dir = str(tmp_path / 'run')
  export_dir = str(tmp_path / 'export')
  config = config_lib.TrainConfig.create(
      model=model, latent_dim=latent, epochs=2, batch_size=500, plot_every=1,
      model_dir=model_dir, export_dir=export_dir, verbose=False)
  returned = training.run(config)

  metrics = _metrics(model_dir)
  # Numbers, and one list: the VAE's per-unit rates (normal prior).
  per_unit = metrics.pop('test_kl_per_unit', None)
  assert per_unit == returned.pop('test_kl_per_unit', None)
  assert (per_unit is None) == (model != 'vae')
  if per_unit is not None:
    assert len(per_unit) == latent
    assert sum(per_unit) == pytest.approx(metrics['test_rate'], rel=1e-4)
  assert metrics == pytest.approx(returned)
  required = ['test_reconstruction_nll', 'test_mmd_to_prior',
              'test_code_gain',
              'train_images_per_second', 'epochs_completed', 'test_loss']
  if model == 'vae':
    required += ['test_neg_elbo', 'test_rate', 'test_mutual_information',
                 'test_marginal_kl']
  for key in required:
    assert key in metrics, key
  assert all(isinstance(v, (int, float)) and math.isfinite(v)
             for v in metrics.values())
  assert metrics['epochs_completed'] == 2
  assert metrics['train_images_per_second'] > 0
  assert 0 < metrics['test_reconstruction_nll'] < 784 * math.log(2) * 2
  if model == 'vae':
    assert metrics['test_neg_elbo'] == pytest.approx(
        metrics['test_reconstruction_nll'] + metrics['test_rate'])

  with open(os.path.join(model_dir, 'config.json')) as f:
    assert config_lib.TrainConfig.from_dict(json.load(f)) == config
  plots = {os.path.basename(p) for p in
           glob.glob(os.path.join(model_dir, 'plots', '*.png'))}
  expected = {'samples.png', 'latent.png', 'reconstructions.png'}
  if latent == 2:
    expected.add('grid.png')
  else:
    expected.add('traversals.png')
  assert plots == expected
  for epoch in (1, 2):
    assert os.path.isdir(os.path.join(model_dir, 'plots', f'epoch_000{epoch}'))
  for p in glob.glob(os.path.join(model_dir, 'plots', '*.png')):
    with open(p, 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert _latest_checkpoint_number(model_dir) == 2

  tags = set()
  for event_file in glob.glob(os.path.join(model_dir, 'tensorboard', '*')):
    for event in tf.compat.v1.train.summary_iterator(event_file):
      tags.update(v.tag for v in event.summary.value)
  assert {'train/loss', 'train/distortion', 'samples'} <= tags
  assert any(t.startswith('reconstructions') for t in tags)

  assert sorted(os.listdir(export_dir)) == ['1', 'models.config']
  assert os.path.exists(os.path.join(export_dir, '1', 'saved_model.pb'))


@pytest.mark.slow
def test_cli_resumes_after_sigkill_and_does_not_retrain(tmp_path):
  model_dir = str(tmp_path / 'run')
  args = [sys.executable, '-m', 'trainers.train', f'--model_dir={model_dir}',
          '--epochs=6', '--batch_size=200', '--train_examples=1000',
          '--plot_every=0', '--noverbose']
  proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
  # The checkpoint counts once the `checkpoints/checkpoint` state file names
  # it (TensorFlow writes ckpt-1.index before that file).
  deadline = time.time() + 300
  while tf.train.latest_checkpoint(os.path.join(
      model_dir, 'checkpoints')) is None and proc.poll() is None:
    assert time.time() < deadline, 'no checkpoint after 300 s'
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  killed_at = _latest_checkpoint_number(model_dir)
  assert 1 <= killed_at < 6, 'the kill came too late to test a resume'
  assert not os.path.exists(os.path.join(model_dir, 'metrics.json'))

  resumed = run_cli('trainers.train', *args[3:])
  assert resumed.returncode == 0, resumed.stderr
  assert f'resuming {model_dir} from epoch {killed_at} of 6' in resumed.stderr
  # Only the remaining epochs ran.
  assert f'Epoch {killed_at}/6' not in resumed.stdout
  assert _metrics(model_dir)['epochs_completed'] == 6
  assert _latest_checkpoint_number(model_dir) == 6

  again = run_cli('trainers.train', *args[3:])
  assert again.returncode == 0, again.stderr
  assert 'already trained for 6 epochs' in again.stderr
  assert _latest_checkpoint_number(model_dir) == 6
  assert 'Epoch' not in again.stdout


@pytest.fixture(scope='session')
def one_epoch_dir(tmp_path_factory):
  """A model_dir holding one finished epoch of the default VAE."""
  model_dir = str(tmp_path_factory.mktemp('one_epoch') / 'run')
  training.run(config_lib.TrainConfig.create(epochs=1, batch_size=500, plot_every=0,
                                      model_dir=model_dir, verbose=False))
  return model_dir


@pytest.mark.parametrize('flag,expected', [
    ('--model=gan', '--model=gan'),
    ('--latent_dim=-3', 'latent_dim must be a positive integer, got -3'),
    ('--batch_size=0', 'batch_size must be a positive integer, got 0'),
    ('--epochs=0', 'epochs must be a positive integer, got 0'),
])
def test_bad_flags_fail_fast_naming_the_flag(tmp_path, flag, expected):
  r = run_cli('trainers.train', flag, f'--model_dir={tmp_path}/r')
  assert r.returncode != 0
  assert expected in r.stderr
  assert 'Traceback' not in r.stderr
  assert not os.path.exists(f'{tmp_path}/r')


# The error paths below run in-process (the command's own main and error
# wording, tests/helpers.py's train_in_process); the real process's one
# line, exit code and stderr are checked by tests/e2e/test_cli.py's and
# tests/faults/test_kills_and_resumes.py's real-process cases.
def test_batch_larger_than_training_set(tmp_path):
  code, line = train_in_process('--batch_size=5000',
                                f'--model_dir={tmp_path}/r')
  assert code == 1
  assert line == ('error: invalid flag --batch_size must not exceed the 4000 '
                  'training examples of mnist_5k, got 5000')


@pytest.mark.slow
def test_xla_with_several_replicas_is_refused_before_the_data(tmp_path):
  # A real process: several replicas split the CPU before TensorFlow
  # initialises, which a test process that already ran TensorFlow cannot.
  r = run_cli('trainers.train', '--xla=on', '--cpu_replicas=2',
              '--dataset=fashion_mnist', f'--idx_dir={tmp_path}',
              '--nodownload', f'--model_dir={tmp_path}/r')
  assert r.returncode == 1
  assert ('invalid flag --xla is not available with several replicas: the '
          'trainer compiles the training step with XLA on one device only'
          ) in r.stderr
  assert 'not on this machine' not in r.stderr  # refused before the data
  assert 'Traceback' not in r.stderr


def test_missing_dataset_is_one_clear_sentence(tmp_path):
  code, line = train_in_process('--dataset=mnist', f'--data_dir={tmp_path}',
                                '--nodownload', f'--model_dir={tmp_path}/r')
  assert code == 1
  assert line.startswith("error: dataset 'mnist' is not on this machine")


def test_model_dir_of_a_different_configuration(one_epoch_dir):
  code, line = train_in_process(f'--model_dir={one_epoch_dir}',
                                '--latent_dim=3', '--model=mmd_vae', *TINY)
  assert code == 1
  assert "--model='mmd_vae' (checkpoint has 'vae')" in line
  assert '--latent_dim=3 (checkpoint has 2)' in line
  assert _latest_checkpoint_number(one_epoch_dir) == 1


@pytest.mark.slow
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(one_epoch_dir,
                                                           tmp_path):
  model_dir = str(tmp_path / 'copy')
  subprocess.run(['cp', '-r', one_epoch_dir, model_dir], check=True)
  r = run_cli('trainers.train', f'--model_dir={model_dir}', '--epochs=2',
              '--learning_rate=1e30', *TINY)
  assert r.returncode == 1
  assert 'training loss became' in r.stderr
  assert 'the last good checkpoint' in r.stderr and 'epoch 1' in r.stderr
  assert 'Traceback' not in r.stderr
  assert _latest_checkpoint_number(model_dir) == 1
  reader = tf.train.load_checkpoint(os.path.join(model_dir, 'checkpoints'))
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if isinstance(value, np.ndarray) and value.dtype.kind == 'f':
      assert np.all(np.isfinite(value)), name
  # The documented fix: lower the rate and run again; it resumes.
  fixed = training.run(config_lib.TrainConfig.create(
      epochs=2, batch_size=500, plot_every=0, model_dir=model_dir,
      verbose=False))
  assert fixed['epochs_completed'] == 2


@pytest.mark.slow
def test_corrupt_checkpoint_is_named(one_epoch_dir, tmp_path):
  model_dir = str(tmp_path / 'copy')
  subprocess.run(['cp', '-r', one_epoch_dir, model_dir], check=True)
  index = os.path.join(model_dir, 'checkpoints', 'ckpt-1.index')
  with open(index, 'wb') as f:
    f.write(b'not a checkpoint')
  with pytest.raises(errors.CheckpointError,
                     match='checkpoint .*ckpt-1 cannot be restored'):
    training.run(config_lib.TrainConfig.create(
        epochs=2, batch_size=500, plot_every=0, model_dir=model_dir,
        verbose=False))
