"""Every model, prior, likelihood and architecture value at least once, trained,
exported and evaluated through a real run."""

import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from tfp_vae.config import settings as config_lib


FAMILY_RUNS = [
    dict(model='vae', beta=2.0, prior='normal', likelihood='gaussian_learned',
         architecture='conv_dense16'),
    dict(model='info_vae', alpha=0.5, info_lambda=100.0, prior='mixture',
         likelihood='gaussian_per_pixel', architecture='mlp', kernel='rbf',
         kernel_scales=(1.0,)),
    dict(model='iwae', iwae_samples=3, prior='vamp', likelihood='bernoulli',
         architecture='conv'),
    dict(model='mmd_vae', prior='mixture', likelihood='gaussian',
         architecture='mlp', kernel='imq', unbiased_mmd=True),
    dict(model='info_vae', prior='vamp', likelihood='gaussian',
         architecture='conv_deep', dataset='cifar10'),
]


@pytest.mark.parametrize('kw', FAMILY_RUNS,
                         ids=lambda kw: '-'.join(str(v) for v in kw.values()))
@pytest.mark.slow
def test_family_members_train_export_and_evaluate(tmp_path, kw):
  """Every model, prior, likelihood and architecture value at least once,
  through the trainer, the SavedModel and trainers.evaluate."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfp_vae.experiment import evaluate as evaluation  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  cifar = kw.get('dataset') == 'cifar10'
  config = config_lib.TrainConfig.create(
      epochs=1, batch_size=20 if cifar else 100,
      train_examples=0 if cifar else 200, prior_components=3, latent_dim=3,
      plot_every=0, verbose=False, model_dir=str(tmp_path / 'run'),
      export_dir=str(tmp_path / 'export'), data_dir=str(tmp_path / 'tfds'),
      **kw)
  # mock_data mocks TFDS's reading, not `is_prepared`.
  os.makedirs(tmp_path / 'tfds' / kw.get('dataset', 'mnist_5k'),
              exist_ok=True)
  with tfds.testing.mock_data(num_examples=40), mock.patch.object(
      tfds.core.DatasetBuilder, 'is_prepared', return_value=True):
    metrics = training.run(config)
    result = evaluation.evaluate_run(config.runtime.model_dir,
                                     config_lib.EvalConfig(
                                         iwae_samples=2,
                                         cache_dir=str(tmp_path / 'cache')))
  assert metrics['epochs_completed'] == 1
  for key in ('test_reconstruction_nll', 'test_loss',
              'test_iwae_log_likelihood', 'test_knn_accuracy',
              'test_classifier_frechet_distance'):
    assert np.isfinite(result.metrics[key]), key
  loaded = tf.saved_model.load(str(tmp_path / 'export' / '1'))
  shape = (32, 32, 3) if cifar else (28, 28, 1)
  x = tf.constant(np.full((2, *shape), 0.5, np.float32))
  codes = loaded.signatures['encode'](images=x)['code_mean']
  assert codes.shape == (2, 3)
  out = loaded.signatures['log_likelihood'](images=x)['log_likelihood']
  assert np.all(np.isfinite(out.numpy()))
  samples = loaded.signatures['sample'](
      num_samples=tf.constant(4, tf.int64),
      seed=tf.constant(1, tf.int64))['images']
  assert samples.shape == (4, *shape)
