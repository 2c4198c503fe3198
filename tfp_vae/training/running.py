"""A run in progress (`ActiveRun`): what `run.prepare` found and `run.build`
made, which `loop.fit` trains and `run.finish` measures, draws and exports.
"""

import dataclasses
import os
import shutil
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.data import images as images_lib
from tfp_vae.evaluation import metrics as metrics_lib
from tfp_vae.evaluation import plots
from tfp_vae.internal import files
from tfp_vae.internal import storage
from tfp_vae.model import models as models_lib
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.training import callbacks as callbacks_lib
from tfp_vae.training import rundir


@dataclasses.dataclass
class ActiveRun:
  """A run in progress: what `prepare` found and `build` made."""
  config: config_lib.TrainConfig
  strategy: tf.distribute.Strategy
  chief: bool
  own_dir: str
  data: images_lib.ImageData
  validation_images: np.ndarray
  test_x: np.ndarray
  previous_metrics: dict[str, Any]
  plan: plan_lib.Plan
  # config.json as the run's start read it (once): the flags and the plan
  # recorded when the run started.
  recorded: plan_lib.Recorded
  state: callbacks_lib.RunState = dataclasses.field(
      default_factory=callbacks_lib.RunState)
  model: Optional[models_lib.LatentVariableModel] = None
  epoch_var: Optional[tf.Variable] = None
  epoch_steps_var: Optional[tf.Variable] = None
  stopping: Optional[callbacks_lib.EarlyStopping] = None
  manager: Optional[tf.train.CheckpointManager] = None
  trained: bool = False  # whether this process trained any epoch
  # Weights to start from when model_dir holds no checkpoint (tfp_vae.fit
  # passes the user's model).
  start_from: Optional[keras.Model] = None
  metrics: dict[str, Any] = dataclasses.field(default_factory=dict)

  @property
  def model_dir(self) -> str:
    return self.plan.model_dir

  @property
  def epochs_done(self) -> int:
    return int(self.epoch_var.numpy())

  def draw(self, epoch: Optional[int] = None,
           terms: Optional[dict] = None) -> None:
    """The run's figures into plots/ (the final ones), or after `epoch`
    into plots/epoch_NNNN/; test arrays computed if not given."""
    if terms is None:
      _, terms = metrics_lib.test_set_metrics(self.model, self.test_x,
                                      seed=self.config.trainer.seed)
    where = os.path.join(self.model_dir, rundir.PLOTS_SUBDIR,
                         '' if epoch is None else rundir.epoch_plots(epoch))
    what = ('the final plots' if epoch is None else
            f'the plots of epoch {epoch}')
    with storage.writing('plots', what, where):
      # An epoch's folder appears whole (a rerun redraws a missing one).
      tmp = where if epoch is None else files.temp_path(where)
      try:
        plots.draw_all(self.model, self.test_x, self.data.test_labels,
                       terms['code_mean'], tmp, seed=self.config.trainer.seed,
                       class_names=self.data.class_names)
        if tmp != where:
          shutil.rmtree(where, ignore_errors=True)
          os.rename(tmp, where)
      finally:
        if tmp != where:
          shutil.rmtree(tmp, ignore_errors=True)
