"""A run directory's layout and its files, read and written in one place.

  model_dir/
    config.json          the run's TrainConfig (`tfp_vae.config.settings`)
    data_info.json       what rebuilding the model needs without the data
    checkpoints/         model, optimizer, epoch (the last 3 kept)
    best_checkpoint/     with early stopping: the best epoch's weights
    history.jsonl        one JSON object per finished epoch
    metrics.json         test metrics of the run (training and evaluation)
    plots/               figures; plots/epoch_NNNN/ every plot_every epochs
    tensorboard/         summaries

Training, evaluation and export read and write a run's records through
this module; config.json is read once per start (`read_records`).  Every
JSON file is written atomically (a temporary file renamed into place).
The rest of a run directory has its own module each: the checkpoints
(`tfp_vae.training.checkpoints`), the one writer's lock
(`tfp_vae.training.lock`) and the trained model read back
(`tfp_vae.training.trained`); whether a model_dir holds this run is
`plan.check_same_run`'s to say.
"""

import errno
import json
import os
from typing import Any, Optional

from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.internal import files
from tfp_vae.internal import storage
from tfp_vae.runtime import plan as plan_lib

CONFIG_FILE = 'config.json'
DATA_INFO_FILE = 'data_info.json'
METRICS_FILE = 'metrics.json'
# metrics.json key: the epoch trainers.evaluate measured.
EVALUATED_EPOCH_KEY = 'evaluated_epoch'
# --test_examples of that evaluation (0: the whole test split).
EVALUATED_TEST_EXAMPLES_KEY = 'evaluated_test_examples'
HISTORY_FILE = 'history.jsonl'
CHECKPOINT_SUBDIR = 'checkpoints'
BEST_CHECKPOINT_SUBDIR = 'best_checkpoint'
PLOTS_SUBDIR = 'plots'
TENSORBOARD_SUBDIR = 'tensorboard'


def path(model_dir: str, name: str) -> str:
  return os.path.join(model_dir, name)


def epoch_plots(epoch: int) -> str:
  """The folder under plots/ of the figures drawn after `epoch`."""
  return f'epoch_{epoch:04d}'


def plotted_epoch(folder: str) -> Optional[int]:
  """The epoch whose figures `folder` (a name under plots/) holds, or
  None for another folder."""
  if folder.startswith('epoch_') and folder[6:].isdigit():
    return int(folder[6:])
  return None


write_json = files.write_json


# config.json's key for the run's plan (`tfp_vae.runtime.plan`), beside the
# flags.
PLAN_KEY = 'plan'


def read_records(model_dir: str) -> plan_lib.Recorded:
  """config.json, read once per start: the run's flags and the plan
  recorded when it started (`plan.Recorded`); empty when there is no run.
  A file that cannot be read as a config is `unreadable` (its plan is kept
  when that can be read)."""
  file_path = path(model_dir, CONFIG_FILE)
  try:
    with open(file_path) as f:
      values = json.load(f)
  except FileNotFoundError:
    return plan_lib.Recorded()
  except (OSError, ValueError) as e:
    return plan_lib.Recorded(unreadable=_unreadable(file_path, e))
  if not isinstance(values, dict):
    return plan_lib.Recorded(unreadable=_unreadable(
        file_path, ValueError('config.json must hold a JSON object')))
  recorded_plan = values.pop(PLAN_KEY, None)
  recorded_plan = recorded_plan if isinstance(recorded_plan, dict) else None
  try:
    config = config_lib.TrainConfig.from_dict(values)
  except (ValueError, TypeError, errors.ConfigError) as e:
    return plan_lib.Recorded(plan=recorded_plan,
                             unreadable=_unreadable(file_path, e))
  return plan_lib.Recorded(config=config, plan=recorded_plan)


def _unreadable(file_path: str, e: Exception) -> errors.CheckpointError:
  error = errors.CheckpointError(
      f'{file_path} is not a readable tfp_vae config ({type(e).__name__}: '
      f'{e})')
  error.__cause__ = e
  return error


def read_config(model_dir: str) -> config_lib.TrainConfig:
  """The run's config.json (its flags; `read_records` also reads its plan).

  Raises:
    CheckpointError: missing or not a readable tfp_vae config.
  """
  recorded = read_records(model_dir)
  if recorded.unreadable is not None:
    raise recorded.unreadable
  if recorded.config is None:
    file_path = path(model_dir, CONFIG_FILE)
    raise _unreadable(file_path, FileNotFoundError(
        errno.ENOENT, os.strerror(errno.ENOENT), file_path))
  return recorded.config


def write_config(model_dir: str, config: config_lib.TrainConfig,
                 the_plan: plan_lib.Plan) -> None:
  """config.json: the flags' config and, under `plan`, what was decided.

  The plan's precision is the one the run started with (a resume keeps it:
  `plan.resolve_runtime`)."""
  write_json(path(model_dir, CONFIG_FILE),
             {**config.to_dict(), PLAN_KEY: the_plan.to_dict()})


def read_data_info(model_dir: str) -> dict[str, Any]:
  """data_info.json: dataset, image_shape, num_classes, class_names, ...

  Raises:
    CheckpointError: missing or unreadable.
  """
  file_path = path(model_dir, DATA_INFO_FILE)
  try:
    with open(file_path) as f:
      return json.load(f)
  except (OSError, ValueError) as e:
    raise errors.CheckpointError(
        f'{file_path} is not readable ({type(e).__name__}: {e})') from e


def write_data_info(model_dir: str, info: dict[str, Any]) -> None:
  write_json(path(model_dir, DATA_INFO_FILE), info)


def read_metrics(model_dir: str) -> dict[str, Any]:
  """metrics.json, or {} when there is none (or it is unreadable)."""
  try:
    with open(path(model_dir, METRICS_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def update_metrics(model_dir: str, values: dict[str, Any]) -> dict[str, Any]:
  """Merges `values` into metrics.json (keys other commands wrote stay);
  returns the merged metrics."""
  merged = read_metrics(model_dir)
  merged.update(values)
  with storage.writing('metrics', 'metrics.json',
                       path(model_dir, METRICS_FILE)):
    write_json(path(model_dir, METRICS_FILE), merged)
  return merged


def read_history(model_dir: str) -> list[dict[str, float]]:
  """history.jsonl as a list of per-epoch dicts (may be empty); a line torn
  by a crash is skipped."""
  file_path = path(model_dir, HISTORY_FILE)
  if not os.path.exists(file_path):
    return []
  records = []
  with open(file_path) as f:
    for line in f:
      try:
        records.append(json.loads(line))
      except ValueError:
        continue
  return records


def append_history(model_dir: str, record: dict[str, float]) -> None:
  with open(path(model_dir, HISTORY_FILE), 'a') as f:
    f.write(json.dumps(record, sort_keys=True) + '\n')


def truncate_history(model_dir: str, epochs_done: int) -> None:
  """Keeps the history of the epochs the checkpoint holds (an epoch that
  ended in a NaN or a crash after it was logged is dropped)."""
  file_path = path(model_dir, HISTORY_FILE)
  if not os.path.exists(file_path):
    return
  files.write_text(file_path, ''.join(
      json.dumps(r, sort_keys=True) + '\n'
      for r in read_history(model_dir) if r.get('epoch', 0) <= epochs_done))


# -- leftovers -----------------------------------------------------------------


def remove_leftovers(model_dir: str) -> list[str]:
  """Removes what interrupted writes leave behind: TensorFlow's
  `ckpt-N_temp/` directories and this package's temporary files of
  processes that are gone (`tfp_vae.internal.files`).  Returns what was removed."""
  return files.remove_leftovers(
      [model_dir, os.path.join(model_dir, CHECKPOINT_SUBDIR),
       os.path.join(model_dir, BEST_CHECKPOINT_SUBDIR),
       os.path.join(model_dir, PLOTS_SUBDIR)],
      also=lambda d, name: name.endswith('_temp') and os.path.isdir(
          os.path.join(d, name)))
