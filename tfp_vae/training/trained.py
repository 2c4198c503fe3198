"""A trained run read back: its model from the latest checkpoint
(`load_trained_model`) and its resolved member (`resolved_member`), for
evaluation, export and comparison.
"""

import os
from typing import Any

import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family
from tfp_vae.internal import errors
from tfp_vae.model import models as models_lib
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.training import checkpoints
from tfp_vae.training import rundir


def load_trained_model(model_dir: str
                       ) -> tuple[models_lib.LatentVariableModel,
                                  config_lib.TrainConfig, dict[str, Any]]:
  """The model of model_dir's latest checkpoint (computing in float32,
  whatever precision it was trained in: `models.in_float32`), its config
  and data info.

  Raises:
    CheckpointError: model_dir has no run, or its checkpoint is unreadable.
  """
  try:
    config = rundir.read_config(model_dir)
    info = rundir.read_data_info(model_dir)
  except errors.CheckpointError as e:
    raise errors.CheckpointError(
        f'model_dir {model_dir} holds no readable training run ({e}); train '
        f'one with trainers.train') from e
  model = models_lib.build_model(config, the_plan=plan_lib.make(
      config, tuple(info['image_shape']),
      plan_lib.one_device(config, 'float32')))
  restore_weights(model, model_dir)
  return model, config, info


def restore_weights(model, model_dir: str) -> None:
  """The weights of model_dir's latest checkpoint into the built `model`.

  Raises:
    CheckpointError: model_dir has no checkpoint yet, or it is unreadable.
  """
  restored = checkpoints.restore_latest(
      tf.train.Checkpoint(model=model),
      os.path.join(model_dir, rundir.CHECKPOINT_SUBDIR), partial=True)
  if restored is None:
    raise errors.CheckpointError(
        f'model_dir {model_dir} has no checkpoint yet; train at least one '
        f'epoch with trainers.train')


def resolved_member(model_dir: str) -> family.Member:
  """The run's member with its defaults resolved: as its plan recorded it,
  or, for a run recorded before plans were, resolved from config.json and
  data_info.json the way `plan.resolve_member` does at a run's start.

  Raises:
    CheckpointError: model_dir holds no readable run.
  """
  recorded = rundir.read_records(model_dir)
  if recorded.plan:
    try:
      return plan_lib.recorded_member(recorded.plan)
    except errors.ConfigError as e:
      raise errors.CheckpointError(
          f'{rundir.path(model_dir, rundir.CONFIG_FILE)} records a plan this '
          f'version cannot read ({e})') from e
  config = rundir.read_config(model_dir)
  shape = tuple(rundir.read_data_info(model_dir)['image_shape'])
  return plan_lib.resolve_member(config.model, shape)[0]
