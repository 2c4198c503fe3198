"""The Python API as a notebook uses it (`tfp_vae.api`, `tfp_vae.datasets`,
`tfp_vae.plots`): every built-in member fitted on a NumPy array, its
distributions, samples, ELBO or its refusal, log-likelihood, Keras saving;
a command-line run loaded; the refusals at the model's boundary; no global
side effects."""

import importlib
import json
import os
import pkgutil
import random
import subprocess
import sys

import keras
import matplotlib
from matplotlib import figure as figure_lib
import numpy as np
import pytest
import tensorflow as tf

import tfp_vae
from tfp_vae.internal import errors
from tfp_vae.model import models
from tfp_vae.evaluation import plots
from tests.helpers import REPO, train_in_process

MEMBERS = {'vae': tfp_vae.VAE, 'mmd_vae': tfp_vae.MMDVAE,
           'info_vae': tfp_vae.InfoVAE, 'iwae': tfp_vae.IWAE}


@pytest.fixture(scope='module')
def digits():
  (x_train, y_train), (x_test, _) = tfp_vae.datasets.load_data('mnist_5k')
  return x_train[:300], y_train[:300], x_test[:40]


@pytest.fixture(scope='module', params=sorted(MEMBERS))
def fitted(request, digits):
  x_train, _, _ = digits
  model = MEMBERS[request.param](latent_dim=2, seed=1)
  model.compile()
  history = model.fit(x_train, batch_size=50, epochs=1, verbose=0)
  return request.param, model, history


def test_import_loads_no_tensorflow():
  # The command lines check flags before TensorFlow loads; the API is
  # loaded on first use.  (A plain interpreter: no TensorFlow starts.)
  code = ('import sys, tfp_vae; assert "tensorflow" not in sys.modules; '
          'assert "VAE" in tfp_vae.__all__ and "VAE" in dir(tfp_vae)')
  subprocess.run([sys.executable, '-c', code], cwd=REPO, check=True)


def test_the_surface():
  for name in tfp_vae.__all__:
    assert getattr(tfp_vae, name) is not None, name
  assert isinstance(tfp_vae.build('iwae', latent_dim=2), tfp_vae.IWAE)
  with pytest.raises(AttributeError, match='no attribute'):
    tfp_vae.Nope  # pylint: disable=pointless-statement


def test_each_member_fits_encodes_samples_and_scores(fitted, digits):
  name, model, history = fitted
  _, _, x_test = digits
  assert np.isfinite(history.history['loss']).all()
  assert model.member.name == name and model.image_shape == (28, 28, 1)
  q = model.encode(x_test[:5])
  assert q.batch_shape == [5] and q.event_shape == [2]
  p = model.decode(q.mean())
  assert p.batch_shape == [5] and p.event_shape == [28, 28, 1]
  drawn = model.sample(6, seed=3)
  assert drawn.shape == (6, 28, 28, 1)
  assert 0.0 <= drawn.min() and drawn.max() <= 1.0
  np.testing.assert_array_equal(drawn, model.sample(6, seed=3))
  assert not np.array_equal(drawn, model.sample(6, seed=4))
  assert model.reconstruct(x_test[:7]).shape == (7, 28, 28, 1)
  log_p = model.log_likelihood(x_test, num_samples=20)
  assert log_p.shape == (40,) and np.isfinite(log_p).all()
  if name == 'mmd_vae':
    with pytest.raises(errors.UndefinedError, match='point mass'):
      model.elbo(x_test)
  else:
    elbo = model.elbo(x_test, num_samples=20)
    assert elbo.shape == (40,) and np.isfinite(elbo).all()
    # The importance-weighted bound is at least the ELBO on average.
    assert log_p.mean() >= elbo.mean() - 0.5
  terms = model.evaluate(x_test, batch_size=20, verbose=0, return_dict=True)
  assert set(terms) == set(model.terms)


def test_keras_saving_round_trips(fitted, digits, tmp_path):
  name, model, _ = fitted
  _, _, x_test = digits
  path = str(tmp_path / f'{name}.keras')
  model.save(path)
  for loaded in (keras.models.load_model(path), tfp_vae.load(path)):
    assert type(loaded) is type(model)
    assert loaded.optimizer.iterations.numpy() == 6  # 300 / 50 steps
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
      np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.reconstruct(x_test),
                                  model.reconstruct(x_test))
    np.testing.assert_array_equal(
        loaded.log_likelihood(x_test, num_samples=5, seed=2),
        model.log_likelihood(x_test, num_samples=5, seed=2))
  weights = str(tmp_path / f'{name}.weights.h5')
  model.save_weights(weights)
  fresh = tfp_vae.build(name, latent_dim=2, seed=9)
  fresh.build((None, 28, 28, 1))
  fresh.load_weights(weights)
  np.testing.assert_array_equal(fresh.reconstruct(x_test),
                                model.reconstruct(x_test))


def test_settings_reach_the_member_and_are_refused_when_unknown():
  model = tfp_vae.VAE(latent_dim=3, beta=4.0, prior='vamp',
                      prior_components=5)
  assert model.member.beta == 4.0 and model.latent_dim == 3
  with pytest.raises(errors.ConfigError, match='mmd_weight is used only by'):
    tfp_vae.VAE(mmd_weight=2.0)
  with pytest.raises(errors.ConfigError, match='training setting'):
    tfp_vae.VAE(batch_size=10)
  with pytest.raises(errors.ConfigError, match='latent_dim'):
    tfp_vae.MMDVAE(latent_dim=-3)
  with pytest.raises(errors.ConfigError, match='prior'):
    tfp_vae.MMDVAE(prior='vamp')


def test_a_command_line_run_loads(tmp_path, digits):
  _, _, x_test = digits
  model_dir = str(tmp_path / 'run')
  code, line = train_in_process(
      '--model=vae', '--latent_dim=2', '--epochs=1', '--batch_size=50',
      '--train_examples=200', '--plot_every=0', '--noverbose',
      f'--model_dir={model_dir}')
  assert code == 0, line
  model = tfp_vae.load(model_dir)
  reference, _, _ = models_of_run(model_dir)
  for a, b in zip(model.get_weights(), reference.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert model.run.config.model.name == 'vae'
  assert 'test_loss' in model.run.metrics
  assert model.run.data_info['image_shape'] == [28, 28, 1]
  assert np.isfinite(model.elbo(x_test)).all()
  with pytest.raises(errors.CheckpointError, match='neither'):
    tfp_vae.load(str(tmp_path))


def models_of_run(model_dir):
  from tfp_vae.training import trained  # pylint: disable=g-import-not-at-top
  return trained.load_trained_model(model_dir)


# -- refusals at the boundary ----------------------------------------------


def test_images_are_checked_where_they_enter(digits):
  x_train, _, _ = digits
  model = tfp_vae.VAE(latent_dim=2)
  raw = (x_train[:100] * 255).astype(np.uint8)
  with pytest.raises(errors.InputError,
                     match=r'uint8 \(values 0\.\.255\).*/ 255'):
    model.fit(raw, epochs=1, verbose=0)
  with pytest.raises(errors.InputError, match=r'\[0, 255\].*Bernoulli'):
    model.fit(raw.astype(np.float32), epochs=1, verbose=0)
  with pytest.raises(errors.InputError, match=r'\(100, 28, 28\).*\[\.\.\., '
                     r'None\]'):
    model.encode(x_train[:100, ..., 0])
  with pytest.raises(errors.InputError, match=r'\(30, 30, 1\).*architecture'):
    model.encode(np.zeros((2, 30, 30, 1), np.float32))
  assert not model.built
  model.encode(x_train[:2])
  with pytest.raises(errors.InputError, match=r'\(32, 32, 1\).*\(28, 28, 1\)'):
    model.reconstruct(np.zeros((2, 32, 32, 1), np.float32))
  with pytest.raises(errors.InputError, match=r'codes must be \[N, 2\]'):
    model.decode(np.zeros((3, 5), np.float32))
  history = model.fit(tf.data.Dataset.from_tensor_slices(
      x_train[:100]).batch(50), verbose=0)  # tf.data of float batches
  assert np.isfinite(history.history['loss']).all()
  with pytest.raises(errors.InputError, match='int32'):
    model.fit(tf.data.Dataset.from_tensor_slices(
        np.zeros((4, 28, 28, 1), np.int32)).batch(2), verbose=0)
  assert isinstance(errors.InputError('x'), ValueError)
  # A Gaussian likelihood takes values outside [0, 1].
  tfp_vae.VAE(latent_dim=2, likelihood='gaussian').encode(
      x_train[:2] * 2.0 - 0.5)


def test_sample_needs_a_built_model():
  with pytest.raises(errors.InputError, match='built from images'):
    tfp_vae.VAE().sample(2)


# -- no global side effects -------------------------------------------------


def test_building_leaves_the_global_generators_alone():
  def draws():
    return (random.random(), np.random.random(),
            float(tf.random.uniform([])))

  random.seed(5)
  np.random.seed(5)
  tf.random.set_seed(5)
  expected = draws()
  random.seed(5)
  np.random.seed(5)
  tf.random.set_seed(5)
  from tfp_vae.config import settings as config  # pylint: disable=g-import-not-at-top
  first = models.build_model(config.TrainConfig.create().validate(),
                             (28, 28, 1), seed=11)
  api_model = tfp_vae.VAE(seed=11)
  api_model.build((None, 28, 28, 1))
  assert draws() == expected
  # The seed still decides the weights, and the training noise.
  for a, b in zip(first.get_weights(), api_model.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert first.seed == api_model.seed == 11


def test_importing_every_module_keeps_the_matplotlib_backend():
  before = matplotlib.get_backend()
  matplotlib.use('svg')
  try:
    for info in pkgutil.walk_packages(tfp_vae.__path__, 'tfp_vae.'):
      importlib.import_module(info.name)
    importlib.reload(plots)  # imported long before this test, maybe
    assert matplotlib.get_backend() == 'svg'
  finally:
    matplotlib.use(before)


def test_plots_return_figures(digits, tmp_path):
  _, labels, x_test = digits
  model = tfp_vae.VAE(latent_dim=2)
  codes = model.encode(x_test).mean().numpy()
  figures = [plots.samples(model, n=4), plots.latent_grid(model, n=3),
             plots.traversals(model, codes[0], n=3),
             plots.reconstructions(model, x_test[:10]),
             plots.interpolations(model, x_test[:2], x_test[2:4], steps=3),
             plots.latent_scatter(codes, labels[:40], 'codes'),
             plots.training_curves({'a': [{'epoch': 1, 'test_loss': 2.0,
                                            'train_loss': 2.5}]})]
  assert all(isinstance(f, figure_lib.Figure) for f in figures)
  # traversals at latent 2: one row per unit.
  assert figures[2].axes[0].images[0].get_array().shape[0] == 2 * 28
  path = str(tmp_path / 'samples.png')
  plots.samples(model, path, n=4)
  assert os.path.getsize(path) > 1000


# -- data ----------------------------------------------------------------------


def test_datasets_come_shuffled_once(digits):
  (x_train, y_train), (x_test, y_test) = tfp_vae.datasets.load_data(
      'mnist_5k')
  assert x_train.shape == (4000, 28, 28, 1) and x_train.dtype == np.float32
  assert x_test.shape == (1000, 28, 28, 1) and len(y_test) == 1000
  assert 0.0 <= x_train.min() and x_train.max() <= 1.0
  # Any slice is representative: every class among the first 300.
  assert np.bincount(y_train[:300], minlength=10).min() >= 15
  np.testing.assert_array_equal(digits[0], x_train[:300])
  (other, _), _ = tfp_vae.datasets.load_data('mnist_5k', seed=1)
  assert not np.array_equal(other[:300], x_train[:300])


# -- the command line's run from Python (tfp_vae.fit) -------------------------


def _history(model_dir):
  with open(os.path.join(model_dir, 'history.jsonl')) as f:
    return [json.loads(line) for line in f]


def test_fit_writes_a_run_and_resumes_it(digits, tmp_path):
  x_train, y_train, x_test = digits
  model_dir, export_dir = str(tmp_path / 'run'), str(tmp_path / 'export')
  model = tfp_vae.MMDVAE(latent_dim=2, seed=3)
  data = (x_train[:200], y_train[:200])
  run = dict(model_dir=model_dir, batch_size=50, plot_every=1,
             export_dir=export_dir, verbose=False,
             test_data=(x_test, np.arange(40) % 10))
  first = tfp_vae.fit(model, data, epochs=1, **run)
  assert first['epochs_completed'] == 1 and np.isfinite(first['test_loss'])
  # The member's own term reaches metrics.json as a test metric.
  np.testing.assert_allclose(first['test_loss'], first[
      'test_reconstruction_nll'] + first['test_mmd'], rtol=1e-5)
  for name in ('config.json', 'data_info.json', 'metrics.json',
               'history.jsonl', 'images.npz', 'checkpoints/checkpoint',
               'plots/epoch_0001/latent.png', 'plots/samples.png'):
    assert os.path.exists(os.path.join(model_dir, name)), name
  assert os.listdir(os.path.join(model_dir, 'tensorboard'))
  assert '1' in os.listdir(export_dir)
  with np.load(os.path.join(model_dir, 'images.npz')) as held:
    np.testing.assert_array_equal(held['images'],
                                  np.round(x_train[:200] * 255))
    assert held['test_images'].shape == (40, 28, 28, 1)
  # The trained weights are in the model, and are the run's checkpoint.
  loaded = tfp_vae.load(model_dir)
  for a, b in zip(model.get_weights(), loaded.get_weights()):
    np.testing.assert_array_equal(a, b)
  assert model.run.metrics == first and model.run.config.model.name == (
      'mmd_vae')
  after_one = [w.copy() for w in model.get_weights()]
  record = _history(model_dir)[0]

  second = tfp_vae.fit(model, data, epochs=2, **run)
  # Resumed: epoch 1's record is the first call's, one more epoch trained.
  history = _history(model_dir)
  assert [r['epoch'] for r in history] == [1, 2] and history[0] == record
  assert second['epochs_completed'] == 2
  assert not all(np.array_equal(a, b)
                 for a, b in zip(after_one, model.get_weights()))
  assert os.path.isdir(os.path.join(model_dir, 'plots', 'epoch_0002'))
  assert '2' in os.listdir(export_dir)
  # A finished run is not retrained; other images are refused.
  weights = model.get_weights()
  tfp_vae.fit(model, data, epochs=2, **run)
  assert _history(model_dir) == history
  for a, b in zip(weights, model.get_weights()):
    np.testing.assert_array_equal(a, b)
  with pytest.raises(errors.CheckpointError, match='other images'):
    tfp_vae.fit(model, x_train[:100], epochs=3, **{**run, 'test_data': None})


def test_fit_starts_from_the_models_weights(digits, tmp_path):
  x_train, _, _ = digits
  model = tfp_vae.VAE(latent_dim=2, seed=4)
  model.encode(x_train[:2])
  fresh = model.get_weights()
  moved = [w + 0.05 for w in fresh]
  model.set_weights(moved)
  # A learning rate too small to move a weight: the run starts from `moved`.
  tfp_vae.fit(model, x_train[:100], model_dir=str(tmp_path / 'run'),
              epochs=1, batch_size=50, learning_rate=1e-12, plot_every=0,
              verbose=False)
  for a, b in zip(moved, model.get_weights()):
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_fit_refuses_bad_input_in_one_line(digits, tmp_path):
  x_train, y_train, _ = digits
  model, where = tfp_vae.VAE(latent_dim=2), str(tmp_path / 'run')
  cases = [
      (dict(data=(x_train * 255).astype('uint8')), errors.InputError,
       'uint8 .* x.astype'),
      (dict(data=x_train[..., 0]), errors.InputError, 'channel axis'),
      (dict(data=tf.data.Dataset.from_tensor_slices(x_train)),
       errors.InputError, 'not a tf.data dataset'),
      (dict(data=(x_train, y_train[:5])), errors.InputError,
       r'labels must be integers \[300\]'),
      (dict(data='mnist_5k', test_data=x_train), errors.InputError,
       'test_data goes with array data'),
      (dict(data=x_train, latent_dim=8), errors.ConfigError,
       'latent_dim is a setting of the model'),
      (dict(data=x_train, beta=2.0), errors.ConfigError,
       'beta is a setting of the model'),
      (dict(data=x_train, batch_sise=5), errors.ConfigError,
       'batch_sise is not a setting of fit'),
      (dict(data=x_train, batch_size=0), errors.ConfigError,
       'batch_size must be'),
      (dict(data=x_train, test_data=x_train[:4, :20, :20]),
       errors.InputError, 'test_data images have shape'),
  ]
  for kwargs, error, message in cases:
    with pytest.raises(error, match=message) as caught:
      tfp_vae.fit(model, model_dir=where, epochs=1, verbose=False, **kwargs)
    assert '\n' not in str(caught.value), str(caught.value)
  with pytest.raises(errors.InputError, match='model must be a tfp_vae'):
    tfp_vae.fit(keras.Sequential(), x_train, model_dir=where)
  assert not os.path.exists(where)
