"""tfp_vae.load (tfp_vae/loading.py): a command-line run loads as the model it
trained."""

import numpy as np
import pytest

import tfp_vae
from tfp_vae.internal import errors
from tests.helpers import train_in_process


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
