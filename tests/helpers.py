"""What several test files share: the repository root, a CLI runner, free
ports, waiting on processes, a run's checkpointed tensors, the allowed
combinations of the family's parts and an untrained model of them, the
serving codecs' refusals and the serving signatures' bad inputs, and
`once`, which builds a shared fixture once for all xdist workers.

Test files import from here, never from each other."""

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
import urllib.error
import urllib.request

import numpy as np
import pytest

from tfp_vae.internal import testing

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_cli(module: str, *args: str, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repository root."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env=full_env)


# trainers.compare at its defaults on tiny data (tests/conftest.py's
# compared_pair, and its rerun in tests/e2e/test_evaluate_and_compare.py).
COMPARE_PAIR = ('--epochs=2', '--train_examples=200', '--batch_size=50',
                '--eval_iwae_samples=3')

# Two members (one with its own setting), two seeds, two at a time: the
# fan-out a researcher runs (each run a trainers.train and a
# trainers.evaluate process), at latent 3 with a plot every epoch
# (tests/conftest.py's compared_fanned_out).
FANNED_OUT_MODELS = ('mmd_vae', 'vae:beta=4')


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def port_is_free(port: int) -> bool:
  with socket.socket() as s:
    try:
      s.bind(('localhost', port))
      return True
    except OSError:
      return False


def wait_all(procs, timeout: float) -> list[tuple[int, str, str]]:
  """(returncode, stdout, stderr) of each process; all are killed if one
  does not finish within `timeout` seconds in all."""
  deadline = time.time() + timeout
  outs = []
  for p in procs:
    try:
      out, err = p.communicate(timeout=max(1, deadline - time.time()))
    except subprocess.TimeoutExpired:
      for q in procs:
        q.kill()
      raise
    outs.append((p.returncode, out, err))
  return outs


def checkpoint_tensors(model_dir: str, keep=lambda name: True) -> dict:
  """{name: value} of the newest checkpoint of a run's model_dir, the names
  `keep` accepts."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(path)
          if keep(n)}


def build_model(image_shape=(28, 28, 1), **settings):
  """The model a run with these settings builds for images of image_shape
  (the family's tests, untrained)."""
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import models  # pylint: disable=g-import-not-at-top
  return models.build_model(
      config_lib.TrainConfig.create(**settings).validate(), image_shape)


def allowed_combinations() -> list[tuple[str, str, str, str]]:
  """Every (member, prior, likelihood, architecture) that a run accepts."""
  import itertools  # pylint: disable=g-import-not-at-top
  from tfp_vae.family import components  # pylint: disable=g-import-not-at-top
  from tfp_vae.internal import errors  # pylint: disable=g-import-not-at-top
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.family import members as family  # pylint: disable=g-import-not-at-top
  combos = []
  for model, prior, likelihood, arch in itertools.product(
      family.names(), components.PRIORS.names(),
      components.LIKELIHOODS.names(), components.ARCHITECTURES.names()):
    try:
      config_lib.TrainConfig.create(
          model=model, prior=prior, likelihood=likelihood, architecture=arch,
          prior_components=3, latent_dim=3).validate()
    except errors.ConfigError:
      continue
    combos.append((model, prior, likelihood, arch))
  return combos


def covering(combos):
  """A few of `combos` that hold every value of every factor at least
  once."""
  chosen, seen = [], set()
  for combo in combos:
    values = set(enumerate(combo))
    if values - seen:
      chosen.append(combo)
      seen |= values
  return chosen


def http_call(url, body=None, timeout=120):
  """(status, parsed JSON reply) of a GET, or a POST of `body`."""
  data_ = None if body is None else (
      body if isinstance(body, bytes) else json.dumps(body).encode())
  request = urllib.request.Request(
      url, data=data_, method='GET' if body is None else 'POST',
      headers={'Content-Type': 'application/json'})
  try:
    with urllib.request.urlopen(request, timeout=timeout) as reply:
      return reply.status, json.load(reply)
  except urllib.error.HTTPError as e:
    return e.code, json.loads(e.read())


# `python -m trainers.serve` as a real process, started the same way by the
# bench and the tests (it imports nothing heavy).
Server = testing.ServerProcess


def refused(fn, *args) -> str:
  """The message of the INVALID_ARGUMENT status fn(*args) raises (the
  serving codecs' refusals)."""
  from tfp_vae.serving import status  # pylint: disable=g-import-not-at-top
  with pytest.raises(status.Status) as e:
    fn(*args)
  assert e.value.code == 'INVALID_ARGUMENT'
  return e.value.message


# Bad inputs of the serving signatures at latent 3: (signature, inputs,
# the in-graph check's message, the values it shows).
BAD = [
    ('encode', {'images': np.zeros((2, 28, 28), np.float32)},
     'images must have shape [batch, 28, 28, 1]', '[2 28 28]'),
    ('reconstruct', {'images': np.zeros((2, 32, 32, 1), np.float32)},
     'images must have shape [batch, 28, 28, 1]', '[2 32 32 1]'),
    ('log_likelihood', {'images': np.zeros((2, 28, 28, 3), np.float32)},
     'images must have shape [batch, 28, 28, 1]', '[2 28 28 3]'),
    ('encode', {'images': np.full((1, 28, 28, 1), 255.0, np.float32)},
     'images must have values in [0, 1]', '[255]'),
    ('encode', {'images': np.full((1, 28, 28, 1), np.nan, np.float32)},
     'images must have values in [0, 1]', ''),
    ('decode', {'codes': np.zeros((2, 5), np.float32)},
     'codes must have shape [batch, 3]', '[2 5]'),
    ('decode', {'codes': np.zeros((3,), np.float32)},
     'codes must have shape [batch, 3]', '[3]'),
    ('sample', {'num_samples': np.int64(-2), 'seed': np.int64(0)},
     'num_samples must be a scalar in [0, 10000]', '[-2]'),
    ('sample', {'num_samples': np.int64(2), 'seed': np.int64(-3)},
     'seed must be a scalar >= 0', '[-3]'),
    # One row of TF Serving's row format: shape [1], not a scalar.
    ('sample', {'num_samples': np.array([4], np.int64), 'seed': np.int64(0)},
     'num_samples must be a scalar in [0, 10000]', '[4]'),
    ('sample', {'num_samples': np.int64(4), 'seed': np.array([0], np.int64)},
     'seed must be a scalar >= 0', '[0]'),
]


class _Exited(Exception):

  def __init__(self, message: str, code: int):
    super().__init__(message)
    self.message, self.code = message, code


def train_in_process(*args: str, env: dict | None = None
                     ) -> tuple[int, str | None]:
  """(exit code, the 'error: ...' line or None) of `python -m trainers.train
  args`, run in this process: the command's own flag parsing, config,
  library call and error wording (`common.describe_error`), without its
  process (TensorFlow's start, the quiet stderr, `os._exit`), which each
  command's real-process tests check (tests/e2e/).
  `env` is set for the call only.  Saves a TensorFlow start per error
  path."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  from trainers import train  # pylint: disable=g-import-not-at-top,unused-import

  def fail(message, code=common.EXIT_USER_ERROR):
    raise _Exited(message, code)

  saved_env, saved_fail = dict(os.environ), common._fail  # pylint: disable=protected-access
  common._fail = fail  # pylint: disable=protected-access
  os.environ.update(env or {})
  flags.FLAGS.unparse_flags()
  try:
    try:
      flags.FLAGS(['trainers.train', *args])
    except flags.Error as e:
      fail(f'{e} (see python -m trainers.train --help)')
    train.main(['trainers.train'])
    return 0, None
  except _Exited as e:
    return e.code, f'error: {e.message}'
  finally:
    flags.FLAGS.unparse_flags()
    common._fail = saved_fail  # pylint: disable=protected-access
    os.environ.clear()
    os.environ.update(saved_env)


@contextlib.contextmanager
def _locked(path):
  with open(path, 'a') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


def once(shared_dir, name, build):
  """shared_dir/name, made by `build(path)` once per pytest run whichever
  worker asks first; a build that failed fails every test that asks, with
  the first attempt's error, without building again."""
  path = shared_dir / name
  done, failed = shared_dir / f'{name}.done', shared_dir / f'{name}.failed'
  with _locked(shared_dir / f'{name}.lock'):
    if failed.exists():
      pytest.fail(f'shared fixture {name} failed to build:\n'
                  f'{failed.read_text()}')
    if not done.exists():
      shutil.rmtree(path, ignore_errors=True)
      try:
        build(str(path))
      except BaseException:
        failed.write_text(traceback.format_exc()[-6000:])
        raise
      done.touch()
  return str(path)
