"""A family member defined here alone, in one class, trains, evaluates and
exports through the public entry points: the declaration is all the package
needs."""

import dataclasses
from typing import ClassVar

import numpy as np
import pytest
import tensorflow as tf

from tfp_vae import checks
from tfp_vae import config as config_lib
from tfp_vae import errors
from tfp_vae import evaluation
from tfp_vae import family
from tfp_vae import losses
from tfp_vae import training


@dataclasses.dataclass(frozen=True)
class CapacityVAE(family.Member):
  """A beta-VAE that holds the rate at a target capacity C (Burgess et al.,
  "Understanding disentangling in beta-VAE"):
  loss = distortion + gamma * |rate - capacity|."""
  name: ClassVar[str] = 'capacity_vae'
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate')

  gamma: float = family.setting(10.0, 'Weight of the capacity penalty.',
                                checks.finite_non_negative)
  capacity: float = family.setting(3.0, 'Target rate C in nats.',
                                   checks.finite_non_negative)

  def recorded(self):
    return {'capacity': self.capacity}

  def per_example(self, model, images, seed):
    posterior = model.encode(images)
    codes = model.sample_codes(posterior, seed)
    distortion = losses.distortion(model.decode(codes), images)
    rate = losses.rate(posterior, model.prior_distribution(), codes)
    return {'loss': distortion + self.gamma * tf.abs(rate - self.capacity),
            'distortion': distortion, 'rate': rate}, codes


@pytest.fixture
def registered():
  family.register(CapacityVAE)
  yield
  family._MEMBERS.pop(CapacityVAE.name)  # pylint: disable=protected-access


def test_a_member_declared_in_one_class_trains_evaluates_and_exports(
    tmp_path, registered):
  del registered
  config = config_lib.TrainConfig.create(
      model='capacity_vae', gamma=5.0, capacity=2.0, epochs=2,
      train_examples=300, batch_size=100, plot_every=0, verbose=False,
      model_dir=str(tmp_path / 'run'), export_dir=str(tmp_path / 'export'))
  metrics = training.run(config)
  assert metrics['epochs_completed'] == 2 and metrics['capacity'] == 2.0
  assert np.isfinite(metrics['train_rate']) and np.isfinite(
      metrics['test_neg_elbo'])
  # The test loss is the member's own objective on the test set.
  assert metrics['test_loss'] > metrics['test_reconstruction_nll']
  # Settings it does not declare are refused, naming who uses them.
  with pytest.raises(errors.ConfigError, match='beta is used only by'):
    config_lib.TrainConfig.create(model='capacity_vae', beta=2.0)
  with pytest.raises(errors.ConfigError, match='gamma must be a finite'):
    config_lib.TrainConfig.create(model='capacity_vae', gamma=-1.0).validate()
  result = evaluation.evaluate_run(
      config.runtime.model_dir,
      config_lib.EvalConfig(iwae_samples=3, cache_dir=str(tmp_path / 'c')))
  assert np.isfinite(result.metrics['test_iwae_log_likelihood'])
  assert 0 <= result.metrics['test_knn_accuracy'] <= 1
  loaded = tf.saved_model.load(str(tmp_path / 'export' / '1'))
  x = tf.constant(np.full((2, 28, 28, 1), 0.5, np.float32))
  out = loaded.signatures['log_likelihood'](images=x)['log_likelihood']
  assert out.shape == (2,) and np.all(np.isfinite(out.numpy()))
  # config.json names the member and its settings; a rerun resumes it.
  again = training.run(config)
  assert again['epochs_completed'] == 2
