"""Config validation names the setting and shows the bad value."""

import pytest

from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.runtime import plan


@pytest.mark.parametrize('field,value,message', [
    ('model', 'gan', "model must be one of ['vae', 'mmd_vae', 'info_vae', "
     "'iwae'], got 'gan'"),
    ('latent_dim', -3, 'latent_dim must be a positive integer, got -3'),
    ('latent_dim', 2.5, 'latent_dim must be a positive integer, got 2.5'),
    ('batch_size', 0, 'batch_size must be a positive integer, got 0'),
    ('epochs', 0, 'epochs must be a positive integer, got 0'),
    ('learning_rate', -1.0, 'learning_rate must be a positive finite number'),
    ('learning_rate', float('nan'), 'learning_rate must be a positive'),
    ('mmd_weight', -1.0, 'mmd_weight must be a finite number >= 0'),
    ('likelihood', 'poisson', 'likelihood must be one of'),
    ('steps_per_execution', -1, 'steps_per_execution must be'),
])
def test_invalid_values_are_named(field, value, message):
  with pytest.raises(errors.ConfigError) as e:
    config_lib.TrainConfig.create(**{field: value}).validate()
  assert message in str(e.value)
  assert e.value.field == field


def test_binarize_needs_bernoulli():
  with pytest.raises(errors.ConfigError, match='binarize'):
    config_lib.TrainConfig.create(binarize=True,
                                  likelihood='gaussian').validate()


def test_defaults_validate_and_round_trip():
  c = config_lib.TrainConfig.create().validate()
  assert config_lib.TrainConfig.from_dict(c.to_dict()) == c
  with pytest.raises(errors.ConfigError, match='unknown keys'):
    config_lib.TrainConfig.from_dict({**c.to_dict(), 'lattent_dim': 3})
  # Settings outside their groups (a flat config) are not a config.
  with pytest.raises(errors.ConfigError,
                     match=r"unknown keys: a config holds the groups model, "
                     r"data, trainer, runtime .*got \['latent_dim'\]"):
    config_lib.TrainConfig.from_dict({'model': 'vae', 'latent_dim': 3})
  with pytest.raises(errors.ConfigError, match='config is empty'):
    config_lib.TrainConfig.from_dict({})


def test_differences_ignore_resumable_fields():
  a = config_lib.TrainConfig.create()
  b = config_lib.TrainConfig.create(epochs=99, learning_rate=1e-5,
                                    model_dir='x')
  assert a.differences(b) == []
  c = config_lib.TrainConfig.create(latent_dim=8, model='mmd_vae')
  assert a.differences(c) == [('model', 'vae', 'mmd_vae'),
                              ('latent_dim', 2, 8)]


def test_resolved_mmd_weight_reproduces_the_sources_balance():
  # Gaussian: D / (2 s^2) so that NLL + w * MMD = w * (mean SE + MMD) + c.
  def resolved_mmd_weight(**kw):
    config = config_lib.TrainConfig.create(model='mmd_vae', **kw)
    return plan.resolve_member(config.model, (28, 28, 1))[0].mmd_weight
  assert resolved_mmd_weight(likelihood='gaussian',
                             gaussian_scale=0.1) == pytest.approx(784 / 0.02)
  assert resolved_mmd_weight() == 784.0
  assert resolved_mmd_weight(mmd_weight=3.0) == 3
