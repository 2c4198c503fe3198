"""The training callbacks (tfp_vae/training/callbacks.py): early stopping on a
validation split."""

import numpy as np
import pytest

from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.training import rundir


@pytest.mark.slow
def test_early_stopping_on_a_validation_split_keeps_the_best_weights(
    tmp_path):
  """Source 003's convenience: a held-out validation split (never the test
  split), patience, the best epoch's weights; a rerun does not retrain."""
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig.create(
      model='vae', epochs=40, batch_size=100, train_examples=300,
      validation_examples=100, early_stopping_patience=1,
      learning_rate=0.02, lr_schedule='cosine', plot_every=0,
      verbose=False, model_dir=str(tmp_path / 'run'))
  metrics = training.run(config)
  history = rundir.read_history(config.runtime.model_dir)
  val = [r['val_loss'] for r in history]
  assert len(history) < 40, 'never stopped'
  best = int(np.argmin(val)) + 1
  assert metrics['early_stopped_best_epoch'] == best
  assert metrics['early_stopped_best_val_loss'] == pytest.approx(min(val),
                                                                 rel=1e-5)
  assert len(history) == best + 1  # patience 1
  again = training.run(config)
  assert again['epochs_completed'] == len(history)
  assert len(rundir.read_history(config.runtime.model_dir)) == len(history)
  with pytest.raises(errors.ConfigError, match='needs validation_examples'):
    config_lib.TrainConfig.create(early_stopping_patience=2).validate()
