"""tfp_vae.fit (tfp_vae/pipeline.py): the command line's run from Python
writes a run and resumes it, starts from the model's weights, and refuses
bad input in one line."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfp_vae
from tfp_vae.internal import errors


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
