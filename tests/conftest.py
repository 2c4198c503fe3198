"""Shared fixtures: quiet TensorFlow, the embedded data, and the trained
runs, exports and comparison that several test files use, each built once
for the whole suite (helpers that are not fixtures live in
tests/helpers.py).

`make test` runs the suite in two xdist worker processes.  A fixture built
through `once` (tests/helpers.py) is made by whichever worker asks first,
under a file lock in the folder both workers share, and read by the other:
no xdist group is needed to share it, so the tests that use it spread over
both workers.  Tests must not change what these fixtures return: copy a run before
training it further or breaking it (`shutil.copytree`)."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top

from tests.helpers import COMPARE_PAIR, FANNED_OUT_MODELS, once, run_cli  # pylint: disable=g-import-not-at-top


@pytest.fixture(autouse=True)
def _op_determinism_left_as_found():
  """A --deterministic run in the test process (the in-process error paths
  and references) switches TensorFlow's op determinism on for the process,
  as a trainer process owns it; later tests in the worker need it off
  (fresh-seed signatures call Timestamp, which it refuses)."""
  yield
  import sys  # pylint: disable=g-import-not-at-top
  if 'tensorflow' not in sys.modules:
    return
  from tensorflow.python.framework import config as tf_config  # pylint: disable=g-import-not-at-top
  if tf_config.is_op_determinism_enabled():
    tf_config.disable_op_determinism()


@pytest.fixture(scope='session')
def mnist_5k():
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  return loaders.load_mnist_5k()


@pytest.fixture(scope='session')
def digits():
  """The first 300 training digits of mnist_5k as tfp_vae.datasets
  shuffles them, their labels, and the first 40 test digits: what the
  Python API's tests fit and score."""
  import tfp_vae  # pylint: disable=g-import-not-at-top
  (x_train, y_train), (x_test, _) = tfp_vae.datasets.load_data('mnist_5k')
  return x_train[:300], y_train[:300], x_test[:40]


@pytest.fixture(scope='session')
def images(mnist_5k):
  """The first 48 training digits of mnist_5k in [0, 1], as one tensor: what
  the family's objectives and priors are computed on."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf.constant(mnist_5k.train_images[:48].astype(np.float32) / 255)


@pytest.fixture(scope='session')
def shared_dir(tmp_path_factory):
  """A folder every xdist worker of this pytest run sees."""
  base = tmp_path_factory.getbasetemp()
  worker = os.environ.get('PYTEST_XDIST_WORKER')
  root = (base.parent if worker else base) / 'shared'
  root.mkdir(exist_ok=True)
  return root


def _run_ok(module, *args, timeout=1200):
  r = run_cli(module, *args, timeout=timeout)
  assert r.returncode == 0, r.stderr[-3000:]
  return r


@pytest.fixture(scope='session')
def compared_pair(shared_dir):
  """`trainers.compare` at its defaults (the articles' pair, one seed, the
  runs trained in its own process) on tiny data: (output_dir, the
  command's stdout, its stderr).  Shared by
  tests/e2e/test_evaluate_and_compare.py (the report, the reuse) and tests/e2e/test_cli.py (progress lines)."""

  def build(out):
    r = _run_ok('trainers.compare', f'--output_dir={out}', *COMPARE_PAIR)
    with open(f'{out}.stdout', 'w') as f:
      f.write(r.stdout)
    with open(f'{out}.stderr', 'w') as f:
      f.write(r.stderr)

  out = once(shared_dir, 'compared_pair', build)
  with open(f'{out}.stdout') as f, open(f'{out}.stderr') as g:
    return out, f.read(), g.read()




@pytest.fixture(scope='session')
def compared_fanned_out(shared_dir):
  """The output_dir of `trainers.compare --parallel=2` over
  FANNED_OUT_MODELS and two seeds on tiny data, each evaluation on 500 test
  images.  Shared by the report's browser test and the fan-out's results
  test."""
  return once(shared_dir, 'compared_fanned_out', lambda out: _run_ok(
      'trainers.compare', f'--output_dir={out}', '--epochs=2',
      '--plot_every=1', '--train_examples=200', '--batch_size=50',
      '--eval_iwae_samples=2', f'--models={",".join(FANNED_OUT_MODELS)}',
      '--seeds=2', '--parallel=2', '--latent_dim=3', '--deterministic',
      '--test_examples=500'))
