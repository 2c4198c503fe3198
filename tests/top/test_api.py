"""The Python API as a notebook uses it (`tfp_vae.api`): every built-in
member fitted on a NumPy array, its distributions, samples, ELBO or its
refusal, log-likelihood, Keras saving; the refusals at the model's
boundary; no global side effects.  Loading a command-line run, tfp_vae.fit,
the datasets and the plots have their modules' test files
(tests/top/test_loading.py, tests/top/test_pipeline.py,
tests/data/test_datasets.py, tests/evaluation/test_plots.py)."""

import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_vae
from tfp_vae.internal import errors
from tfp_vae.model import models
from tests.helpers import REPO

MEMBERS = {'vae': tfp_vae.VAE, 'mmd_vae': tfp_vae.MMDVAE,
           'info_vae': tfp_vae.InfoVAE, 'iwae': tfp_vae.IWAE}


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
