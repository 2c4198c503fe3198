"""Faults of the storage a run writes to (`tfp_vae.internal.storage`): a full
disk, a folder the user may not write, a folder that goes away.  Each is one
line in the user's words with the exit code a job controller needs, and
the same command run again finishes with the uninterrupted run's weights
and metrics.

Where the test may (root, as CI runs), the disk is a real tmpfs that fills
and the read-only folder is real for an unprivileged user (`setpriv`, from
a copy of the checkout's packages where that user cannot read the
checkout); elsewhere the full disk is an ENOSPC injected at the write
(`TFP_VAE_FAULT=enospc:KIND`), and the test says so in a warning
(`InjectedFault`, in the summary).  The permission
tests skip, saying why, only where no unprivileged user can run this
interpreter."""

import contextlib
import dataclasses
import errno
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import REPO, checkpoint_tensors
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.internal import files
from tfp_vae.training import lock as lock_lib
from tfp_vae.training import rundir
from tfp_vae.internal import storage
from tfp_vae.training import run as training

# One worker runs this file: its module fixtures (trained runs, servers)
# are built once, not once per worker (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('storage')

# 300 images, batch 50: 6 steps an epoch, 3 epochs, plots every epoch.
RUN = ['--epochs=3', '--train_examples=300', '--batch_size=50',
       '--plot_every=1', '--noverbose', '--deterministic']
RETRYABLE = 143
NOBODY = 65534
# This interpreter by a path through no symlink into the checkout (a clone's
# .venv may link to a virtual environment elsewhere that nobody can read,
# while the clone's own folder is private).
NOBODY_PYTHON = os.path.join(os.path.realpath(sys.prefix), 'bin',
                             os.path.basename(sys.executable))
if not os.path.exists(NOBODY_PYTHON):
  NOBODY_PYTHON = sys.executable


def _train(model_dir, env=(), as_nobody=False, cwd=REPO):
  full_env = {k: v for k, v in os.environ.items() if k != 'TFP_VAE_FAULT'}
  full_env.update(env)
  command = [sys.executable]
  if as_nobody:
    command = ['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}',
               '--clear-groups', NOBODY_PYTHON]
    full_env['HOME'] = os.path.dirname(model_dir)
  # The log goes to a file: a pipe nobody reads while the test waits for a
  # checkpoint could fill and stall the trainer.
  log = tempfile.TemporaryFile('w+')  # pylint: disable=consider-using-with
  proc = subprocess.Popen(
      [*command, '-m', 'trainers.train', *RUN,
       f'--model_dir={model_dir}', f'--export_dir={model_dir}-export'],
      cwd=cwd, env=full_env, stdout=subprocess.DEVNULL, stderr=log)
  proc.log = log
  return proc


def _finish(proc, timeout=600):
  proc.wait(timeout=timeout)
  proc.log.seek(0)
  return proc.returncode, proc.log.read()


def _error_line(err):
  lines = [l for l in err.splitlines() if l.startswith('error:')]
  assert len(lines) == 1, err[-3000:]
  return lines[0]


def _weights(model_dir):
  return checkpoint_tensors(
      model_dir, lambda n: 'save_counter' not in n and not n.startswith(
          '_CHECKPOINTABLE'))


def _assert_same_run(model_dir, reference):
  mine, theirs = _weights(model_dir), _weights(reference)
  assert mine.keys() == theirs.keys()
  for name, value in theirs.items():
    np.testing.assert_array_equal(mine[name], value, err_msg=name)
  got, want = rundir.read_metrics(model_dir), rundir.read_metrics(reference)
  for key in want:
    if key != 'train_images_per_second':
      assert got[key] == want[key], key
  timeless = lambda history: [{k: v for k, v in r.items() if k != 'seconds'}
                              for r in history]
  assert timeless(rundir.read_history(model_dir)) == timeless(
      rundir.read_history(reference))
  assert sorted(os.listdir(os.path.join(model_dir, 'plots'))) == sorted(
      os.listdir(os.path.join(reference, 'plots')))
  assert sorted(os.listdir(model_dir + '-export')) == ['1', 'models.config']


def _wait_for_checkpoint(model_dir, proc, number=1):
  index = os.path.join(model_dir, 'checkpoints', f'ckpt-{number}.index')
  deadline = time.time() + 300
  while not os.path.exists(index):
    assert proc.poll() is None, _finish(proc)[1][-3000:]
    assert time.time() < deadline
    time.sleep(0.02)


@pytest.fixture(scope='session')
def shared_root():
  """A folder an unprivileged user can reach (pytest's are root's only)."""
  root = tempfile.mkdtemp(prefix='tfp_vae_storage_')
  os.chmod(root, 0o755)
  yield root
  shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope='session')
def reference(shared_root):
  model_dir = os.path.join(shared_root, 'reference')
  code, err = _finish(_train(model_dir))
  assert code == 0, err[-3000:]
  return model_dir


@contextlib.contextmanager
def _tmpfs(path, size):
  """A tmpfs of `size` at path; yields '' when it is mounted, else why
  it could not be."""
  os.makedirs(path, exist_ok=True)
  if os.geteuid() != 0:
    why_not = 'mounting a tmpfs needs root'
  else:
    r = subprocess.run(
        ['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', path],
        capture_output=True, text=True, check=False)
    why_not = '' if r.returncode == 0 else (
        f'mount -t tmpfs failed: {r.stderr.strip() or r.returncode}')
  try:
    yield why_not
  finally:
    if not why_not:
      subprocess.run(['umount', path], check=False)


def test_each_fault_is_worded_with_its_exit_class(tmp_path):
  cases = {
      errno.ENOSPC: ('no space left on the device holding', True),
      errno.EDQUOT: ('the disk quota is used up', True),
      errno.EROFS: ('is read-only while writing checkpoint 4', True),
      errno.ENOENT: ('went away while writing checkpoint 4', True),
      errno.EACCES: ('permission denied writing', False),
  }
  where = str(tmp_path / 'run' / 'checkpoints')
  for number, (words, retryable) in cases.items():
    e = storage.describe(number, 'checkpoint 4', where)
    assert words in str(e) and 'run the same command again' in str(e)
    assert isinstance(e, errors.RetryableError) == retryable, number
    assert '\n' not in str(e)
  # TensorFlow's own errors carry the C library's words.
  tf_error = tf.errors.ResourceExhaustedError(
      None, None, f'{where}/ckpt-4_temp/part-0: No space left on device')
  assert storage.error_number(tf_error) == errno.ENOSPC
  assert storage.error_number(ValueError('No space left on device')) is None
  with pytest.raises(errors.StorageUnavailable, match='while writing x'):
    with storage.writing('report', 'x', str(tmp_path)):
      raise tf_error
  with pytest.raises(ValueError):  # not a storage fault: unchanged
    with storage.writing('report', 'x', str(tmp_path)):
      raise ValueError('bad')


def test_a_page_on_a_full_disk_leaves_no_half_file(shared_root):
  """The report and every JSON file are written whole or not at all
  (`tfp_vae.internal.files`): on a disk that fills mid-write, nothing is left."""
  disk = os.path.join(shared_root, 'small')
  with _tmpfs(disk, '64k') as why_not:
    if why_not:
      pytest.skip(f'needs a real small tmpfs: {why_not}')
    path = os.path.join(disk, 'report.html')
    with pytest.raises(errors.StorageUnavailable,
                       match=r'no space left .* \(0 MB free\) while '
                             r'writing the report'):
      with storage.writing('report', 'the report', path):
        files.write_text(path, 'x' * (1 << 20))
    assert os.listdir(disk) == []


def _tiny(model_dir):
  return config_lib.TrainConfig.create(
      epochs=1, train_examples=100, batch_size=50, plot_every=1,
      deterministic=True, verbose=False, model_dir=model_dir,
      export_dir=model_dir + '-export').validate()


@pytest.fixture(scope='session')
def tiny_reference(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp('tiny') / 'reference')
  training.run(_tiny(model_dir))
  return model_dir


# The checkpoint's full disk is a real one below (where the test may mount).
WHAT = {'history': 'the history of epoch 1',
        'summaries': 'the TensorBoard summaries of epoch 1',
        'plots': 'the plots of epoch 1', 'metrics': 'metrics.json',
        'export': 'a new SavedModel version'}


@pytest.mark.slow
@pytest.mark.parametrize('kind', sorted(WHAT))
def test_a_full_disk_at_each_write_is_named_and_the_rerun_ends_the_same(
    kind, tiny_reference, tmp_path, monkeypatch):
  model_dir = str(tmp_path / 'run')
  monkeypatch.setenv('TFP_VAE_FAULT', f'enospc:{kind}')
  with pytest.raises(errors.StorageUnavailable) as e:
    training.run(_tiny(model_dir))
  assert f'while writing {WHAT[kind]}' in str(e.value), str(e.value)
  assert 'TFP_VAE_FAULT' not in os.environ  # it fired
  leftovers = [n for n in os.listdir(model_dir + '-export')
               if n.startswith('.tmp')] if os.path.isdir(
                   model_dir + '-export') else []
  assert not leftovers
  training.run(_tiny(model_dir))
  _assert_same_run(model_dir, tiny_reference)


class InjectedFault(UserWarning):
  """A storage test ran on an injected fault instead of a real one."""


@pytest.mark.slow
def test_a_disk_that_fills_stops_retryable_and_the_rerun_ends_the_same(
    reference, shared_root):
  disk = os.path.join(shared_root, 'disk')
  model_dir = os.path.join(disk, 'run')
  with _tmpfs(disk, '2m') as why_not:
    mounted = not why_not
    # Which disk filled is part of the result: an injected one is said in
    # the summary of warnings.
    if not mounted:
      warnings.warn(InjectedFault(
          f'no real full disk here ({why_not}): the disk that fills was an '
          f'ENOSPC injected at the checkpoint (TFP_VAE_FAULT=enospc:'
          f'checkpoint)'))
    env = {} if mounted else {'TFP_VAE_FAULT': 'enospc:checkpoint'}
    code, err = _finish(_train(model_dir, env))
    assert code == RETRYABLE, err[-3000:]
    line = _error_line(err)
    assert f'no space left on the device holding {model_dir}' in line, line
    assert ' while writing ' in line and "the run's files" not in line, line
    assert 'run the same command again' in line and 'Traceback' not in err
    if mounted:  # the operator makes room
      subprocess.run(['mount', '-o', 'remount,size=64m', disk], check=True)
    code, err = _finish(_train(model_dir))
    assert code == 0, err[-3000:]
    _assert_same_run(model_dir, reference)


@pytest.mark.slow
def test_a_folder_that_goes_away_mid_run_is_retryable(reference, tmp_path):
  model_dir = str(tmp_path / 'run')
  proc = _train(model_dir)
  _wait_for_checkpoint(model_dir, proc)
  os.rename(model_dir, model_dir + '-away')  # the mount is gone
  code, err = _finish(proc)
  assert code == RETRYABLE, err[-3000:]
  line = _error_line(err)
  assert f'{model_dir}' in line and 'went away while writing' in line, line
  os.rename(model_dir + '-away', model_dir)  # and back
  code, err = _finish(_train(model_dir))
  assert code == 0, err[-3000:]
  assert 'resuming' in err
  _assert_same_run(model_dir, reference)


def _nobody_runs_the_trainer(cwd):
  """'' if nobody, through setpriv, imports the trainer from `cwd` with
  this interpreter, else the last line of what it said."""
  probe = subprocess.run(
      ['setpriv', f'--reuid={NOBODY}', f'--regid={NOBODY}', '--clear-groups',
       NOBODY_PYTHON, '-c', 'import trainers.train'],
      cwd=cwd, capture_output=True, text=True, check=False)
  lines = probe.stderr.strip().splitlines() or [f'exit {probe.returncode}']
  return '' if probe.returncode == 0 else lines[-1]


@pytest.fixture(scope='session')
def unprivileged(shared_root):
  """(as_nobody, cwd): how the trainer runs as a user permissions bind.

  Not root: this user, from the checkout.  Root: nobody through setpriv,
  from the checkout if nobody can read it, else from a copy of its
  packages (tfp_vae, trainers) in `shared_root`, which nobody can read: a
  clone under a 0700 folder, such as mktemp -d's, is not readable by
  nobody.  Skips, saying why, where nobody cannot run this interpreter or
  its packages at all.
  """
  if os.geteuid() != 0:
    return False, REPO
  if not shutil.which('setpriv'):
    pytest.skip('root writes through permissions, and there is no setpriv '
                'to run the trainer as nobody')
  if not _nobody_runs_the_trainer(REPO):
    return True, REPO
  copy = os.path.join(shared_root, 'checkout')
  for package in ('tfp_vae', 'trainers'):
    shutil.copytree(os.path.join(REPO, package), os.path.join(copy, package),
                    ignore=shutil.ignore_patterns('__pycache__'))
  for dirpath, _, names in os.walk(copy):
    os.chmod(dirpath, 0o755)
    for name in names:
      os.chmod(os.path.join(dirpath, name), 0o644)
  why_not = _nobody_runs_the_trainer(copy)
  if why_not:
    pytest.skip(f'nobody cannot run the trainer with {NOBODY_PYTHON}, '
                f'even from a copy of the checkout: {why_not}')
  return True, copy


def test_a_model_dir_the_user_may_not_write_is_refused_before_training(
    shared_root, unprivileged):
  as_nobody, cwd = unprivileged
  locked = tempfile.mkdtemp(dir=shared_root)
  os.chmod(locked, 0o555)
  code, err = _finish(_train(os.path.join(locked, 'run'),
                             as_nobody=as_nobody, cwd=cwd))
  assert code == 1 and 'is not a writable directory (Permission denied)' in (
      _error_line(err)), err[-2000:]


@pytest.mark.slow
def test_a_folder_made_read_only_mid_run_is_one_line(reference, shared_root,
                                                     unprivileged):
  """As an unprivileged user (root writes through permissions), a model_dir
  that becomes read-only mid-run stops at the next write with exit 1 (a
  restart cannot change permissions); made writable again, the rerun
  finishes the same."""
  as_nobody, cwd = unprivileged
  if not as_nobody:
    pytest.skip('needs root to make a folder read-only under a running '
                'trainer of another user (nobody, through setpriv)')
  mine = os.path.join(shared_root, 'mine')
  os.makedirs(mine)
  os.chown(mine, NOBODY, NOBODY)
  model_dir = os.path.join(mine, 'run')
  proc = _train(model_dir, as_nobody=True, cwd=cwd)
  _wait_for_checkpoint(model_dir, proc)
  for dirpath, _, _ in os.walk(model_dir):
    os.chmod(dirpath, 0o555)
  code, err = _finish(proc)
  line = _error_line(err)
  assert code == 1, err[-3000:]
  assert 'permission denied writing' in line and f'uid {NOBODY}' in line, line
  assert '.lock' not in line, line  # the write that failed, not the lock
  for dirpath, _, _ in os.walk(model_dir):
    os.chmod(dirpath, 0o755)
  code, err = _finish(_train(model_dir, as_nobody=True, cwd=cwd))
  assert code == 0, err[-3000:]
  _assert_same_run(model_dir, reference)


def test_a_lock_on_a_full_disk_is_not_left_behind(tmp_path, monkeypatch):
  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
  monkeypatch.setattr(lock_lib.json, 'dump', full)
  with pytest.raises(errors.StorageUnavailable, match="the run's lock"):
    with lock_lib.RunLock(str(tmp_path)):
      pass
  assert not os.path.exists(tmp_path / lock_lib.LOCK_FILE)


def test_a_lock_naming_this_very_pid_is_taken_over(tmp_path):
  """A container restarted with the pid and hostname of the run that left
  the lock: the holder cannot be alive (it would be this process)."""
  import json  # pylint: disable=g-import-not-at-top
  import socket  # pylint: disable=g-import-not-at-top
  with open(tmp_path / lock_lib.LOCK_FILE, 'w') as f:
    json.dump({'pid': os.getpid(), 'host': socket.gethostname(),
               'what': 'training', 'since': 'before the restart'}, f)
  with lock_lib.RunLock(str(tmp_path)) as lock:
    assert lock.held


def test_a_folder_that_vanishes_is_not_written_recreated(tmp_path):
  folder = tmp_path / 'run'
  folder.mkdir()
  storage.guard(str(folder))
  try:
    with storage.writing('plots', 'the plots of epoch 1', str(folder)):
      (folder / 'a').write_text('fine')
    os.rename(folder, tmp_path / 'elsewhere')  # its mount is gone ...
    folder.mkdir()  # ... and a library's makedirs makes another folder
    with pytest.raises(errors.StorageUnavailable, match='went away'):
      with storage.writing('plots', 'the plots of epoch 2', str(folder)):
        pass
  finally:
    storage.unguard(str(folder))


def test_compare_children_that_exit_retryable_make_compare_retryable(
    tmp_path):
  from tfp_vae.internal import fanout  # pylint: disable=g-import-not-at-top
  job = lambda name, code: fanout.Job(
      name, [[sys.executable, '-c', f'import sys; sys.exit({code})']],
      str(tmp_path / f'{name}.log'))
  with pytest.raises(errors.RetryableError):
    fanout.run([job('a', 143), job('b', 0)], parallel=2, poll=0.05)
  with pytest.raises(errors.TfpVaeError) as e:
    fanout.run([job('c', 143), job('d', 1)], parallel=2, poll=0.05)
  assert not isinstance(e.value, errors.RetryableError)


@pytest.mark.slow
def test_an_extended_run_whose_export_failed_exports_its_new_weights(
    tmp_path, monkeypatch):
  from tfp_vae.model import export  # pylint: disable=g-import-not-at-top
  model_dir = str(tmp_path / 'run')
  training.run(_tiny(model_dir))  # version 1, epoch 1
  longer = dataclasses.replace(_tiny(model_dir), trainer=dataclasses.replace(
      _tiny(model_dir).trainer, epochs=2))
  monkeypatch.setenv('TFP_VAE_FAULT', 'enospc:export')
  with pytest.raises(errors.StorageUnavailable):
    training.run(longer)  # trained epoch 2; its export failed
  training.run(longer)  # nothing left to train: exports epoch 2 now
  exports = model_dir + '-export'
  assert sorted(os.listdir(exports)) == ['1', '2', 'models.config']
  assert [export.exported_epoch(os.path.join(exports, v))
          for v in ('1', '2')] == [1, 2]
  training.run(longer)  # and not again
  assert sorted(os.listdir(exports)) == ['1', '2', 'models.config']
