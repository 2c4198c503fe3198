"""`load`: a trained model back as the API's model, from a run directory
that `trainers.train` (or `tfp_vae.fit`) wrote or from a `.keras` file that
`model.save` wrote; the run it came from as `model.run` (`api.Run`).
"""

import dataclasses
import os
from typing import Any

import keras

from tfp_vae import api
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.training import rundir
from tfp_vae.training import trained


def settings_of(config: config_lib.TrainConfig) -> dict[str, Any]:
  """The API settings of a run's config: the model's and the member's."""
  out = {k: getattr(config.model, k) for k in api.MODEL_SETTINGS}
  out.update({f.name: getattr(config.model.member, f.name)
              for f in dataclasses.fields(config.model.member)})
  return out


def load(path: str) -> api.Model:
  """A trained model: from a run directory written by `trainers.train`
  (its latest checkpoint; `model.run` holds its config, data info and test
  metrics) or from a `.keras` file written by `model.save`.

  Raises:
    CheckpointError: nothing readable at `path`.
  """
  if os.path.isfile(path):
    return keras.models.load_model(path)
  try:
    config = rundir.read_config(path)
    info = rundir.read_data_info(path)
  except errors.CheckpointError as e:
    raise errors.CheckpointError(
        f'{path} is neither a .keras file nor a readable training run ({e})'
    ) from e
  model = api.build(config.model.name, seed=config.trainer.seed,
                    **settings_of(config))
  model.build((None, *info['image_shape']))
  trained.restore_weights(model, path)
  model.run = api.Run(path, config, info, rundir.read_metrics(path))
  return model
