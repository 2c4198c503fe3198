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

Training, evaluation and export read and write runs through this module,
including the trained model (`load_trained_model`).
Every JSON file is written atomically (a temporary file renamed into place).
"""

import contextlib
import json
import os
from typing import Any, Optional

from absl import logging
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.internal import files
from tfp_vae.model import models as models_lib
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.internal import storage

CONFIG_FILE = 'config.json'
DATA_INFO_FILE = 'data_info.json'
METRICS_FILE = 'metrics.json'
# metrics.json key: the epoch trainers.evaluate measured.
EVALUATED_EPOCH_KEY = 'evaluated_epoch'
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


def _read_config_json(model_dir: str) -> dict[str, Any]:
  file_path = path(model_dir, CONFIG_FILE)
  with open(file_path) as f:
    values = json.load(f)
  if not isinstance(values, dict):
    raise ValueError('config.json must hold a JSON object')
  return values


def read_config(model_dir: str) -> config_lib.TrainConfig:
  """The run's config.json (its flags; `read_plan` reads its plan).

  Raises:
    CheckpointError: missing or not a readable tfp_vae config.
  """
  file_path = path(model_dir, CONFIG_FILE)
  try:
    values = _read_config_json(model_dir)
    values.pop(PLAN_KEY, None)
    return config_lib.TrainConfig.from_dict(values)
  except (OSError, ValueError, TypeError, errors.ConfigError) as e:
    raise errors.CheckpointError(
        f'{file_path} is not a readable tfp_vae config ({type(e).__name__}: '
        f'{e})') from e


def read_plan(model_dir: str) -> Optional[dict[str, Any]]:
  """The plan config.json recorded when the run started, as a dict; None
  when there is no run or it was recorded before plans were."""
  try:
    plan = _read_config_json(model_dir).get(PLAN_KEY)
  except (OSError, ValueError):
    return None
  return plan if isinstance(plan, dict) else None


def resolved_member(model_dir: str) -> family.Member:
  """The run's member with its defaults resolved: as its plan recorded it,
  or, for a run recorded before plans were, resolved from config.json and
  data_info.json the way `plan.resolve_member` does at a run's start.

  Raises:
    CheckpointError: model_dir holds no readable run.
  """
  recorded = read_plan(model_dir)
  if recorded:
    try:
      return plan_lib.recorded_member(recorded)
    except errors.ConfigError as e:
      raise errors.CheckpointError(
          f'{path(model_dir, CONFIG_FILE)} records a plan this version '
          f'cannot read ({e})') from e
  config = read_config(model_dir)
  shape = tuple(read_data_info(model_dir)['image_shape'])
  return plan_lib.resolve_member(config.model, shape)[0]


def write_config(model_dir: str, config: config_lib.TrainConfig,
                 the_plan: plan_lib.Plan) -> None:
  """config.json: the flags' config and, under `plan`, what was decided.

  The plan's precision is the one the run started with (a resume keeps it:
  `plan.resolve_runtime`)."""
  write_json(path(model_dir, CONFIG_FILE),
             {**config.to_dict(), PLAN_KEY: the_plan.to_dict()})


def check_same_run(config: config_lib.TrainConfig,
                   the_plan: plan_lib.Plan) -> None:
  """Refuses a model_dir whose config.json describes a different run: a
  setting outside the resumable ones differs, or what the checkpoint
  depends on (the resolved member, the image shape) differs from the plan
  recorded there.  The precision was compared when it was resolved.

  Raises:
    CheckpointError: naming each differing setting with both values.
  """
  model_dir = config.runtime.model_dir
  if not os.path.exists(path(model_dir, CONFIG_FILE)):
    return
  try:
    previous = read_config(model_dir)
  except errors.CheckpointError as e:
    raise errors.CheckpointError(
        f'{e}; use another --model_dir or remove that file') from e
  recorded = read_plan(model_dir)
  if recorded:  # resolved values instead of the flags that led to them
    diffs = previous.differences(config, ignore_member_settings=True,
                                 ignore=('precision',))
    diffs += plan_lib.differences(recorded, the_plan)
  else:
    diffs = previous.differences(config)
  if diffs:
    listed = ', '.join(f'--{name}={new!r} (checkpoint has {old!r})'
                       for name, old, new in diffs)
    raise errors.CheckpointError(
        f'model_dir {model_dir} holds a checkpoint of a different '
        f'configuration: {listed}; use another --model_dir or the same flags')


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
    config = read_config(model_dir)
    info = read_data_info(model_dir)
  except errors.CheckpointError as e:
    raise errors.CheckpointError(
        f'model_dir {model_dir} holds no readable training run ({e}); train '
        f'one with trainers.train') from e
  model = models_lib.build_model(config, the_plan=plan_lib.for_model(
      config, tuple(info['image_shape']), precision='float32'))
  path = restore_latest(tf.train.Checkpoint(model=model),
                        os.path.join(model_dir, CHECKPOINT_SUBDIR),
                        partial=True)
  if path is None:
    raise errors.CheckpointError(
        f'model_dir {model_dir} has no checkpoint yet; train at least one '
        f'epoch with trainers.train')
  return model, config, info


def restore(checkpoint: tf.train.Checkpoint, path: Optional[str],
            partial: bool = False) -> None:
  """Restores `path` into `checkpoint` (nothing when None).

  Raises:
    CheckpointError: the checkpoint is corrupt or of another model.
  """
  if path is None:
    return
  try:
    status = checkpoint.restore(path)
    if partial:
      status.expect_partial()
    status.assert_existing_objects_matched()
  except (tf.errors.OpError, ValueError, AssertionError, IndexError,
          KeyError, OSError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise errors.CheckpointError(
        f'checkpoint {path} cannot be restored ({type(e).__name__}: '
        f'{first_line[:300]}); it was written by a different model or is '
        f'corrupt: use another --model_dir, or delete that checkpoint to '
        f'fall back to an earlier one') from e
  logging.info('restored %s', path)


# -- checkpoints that can be trusted ------------------------------------------


def checkpoint_prefixes(directory: str) -> list[str]:
  """Every `ckpt-N` prefix with an index file in `directory`, newest first
  (found by listing, not through the `checkpoint` state file, which a crash
  or a user may have removed)."""
  if not os.path.isdir(directory):
    return []
  numbered = []
  for name in os.listdir(directory):
    if name.startswith('ckpt-') and name.endswith('.index'):
      number = name[len('ckpt-'):-len('.index')]
      if number.isdigit():
        numbered.append((int(number), os.path.join(directory, name[:-6])))
  return [p for _, p in sorted(numbered, reverse=True)]


def restore_latest(checkpoint: tf.train.Checkpoint, directory: str,
                   partial: bool = False) -> Optional[str]:
  """Restores the newest readable checkpoint in `directory`; returns its
  prefix, or None when the directory holds none.

  A newer checkpoint that cannot be read (a truncated data file, a missing
  index) is moved aside to `directory/unreadable/` and the next older one
  is used, with a warning: a run is never silently restarted from scratch
  over checkpoints it could have used.

  Raises:
    CheckpointError: checkpoints exist but none can be restored (they
      belong to another model, or all are corrupt).
  """
  prefixes = checkpoint_prefixes(directory)
  data_without_index = [n for n in (os.listdir(directory) if os.path.isdir(
      directory) else []) if n.startswith('ckpt-') and '.data-' in n and
                        os.path.join(directory, n.split('.data-')[0])
                        not in prefixes]
  if not prefixes:
    if data_without_index:
      raise errors.CheckpointError(
          f'{directory} holds checkpoint data ({data_without_index[0]}) but '
          f'no readable index: restore the .index file or remove the '
          f'directory to train from scratch')
    return None
  failures = []
  for prefix in prefixes:
    try:
      restore(checkpoint, prefix, partial=partial)
    except errors.CheckpointError as e:
      failures.append((prefix, e))
      continue
    for bad, reason in failures:
      _move_aside(bad, directory)
      logging.warning('checkpoint %s is unreadable (%s); moved to %s and '
                      'resumed from %s', bad, reason, os.path.join(
                          directory, 'unreadable'), prefix)
    if failures:
      # The state file named the broken one (or was missing): point it at
      # the checkpoint in use so that the managers carry on from it.
      tf.compat.v1.train.update_checkpoint_state(directory, prefix)
    return prefix
  raise failures[0][1]


def _move_aside(prefix: str, directory: str) -> None:
  target = os.path.join(directory, 'unreadable')
  os.makedirs(target, exist_ok=True)
  base = os.path.basename(prefix)
  for name in os.listdir(directory):
    if name == base + '.index' or name.startswith(base + '.data-'):
      os.replace(os.path.join(directory, name), os.path.join(target, name))


# -- leftovers and the one writer ---------------------------------------------


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


LOCK_FILE = '.lock'


class RunLock:
  """One writer per run directory: `model_dir/.lock` names the holder
  (pid, host).  A lock left by a dead process on this host is taken over;
  a live holder, or one on another host, is refused with its name.

  Use as a context manager; the lock is released on exit.
  """

  def __init__(self, model_dir: str, what: str = 'training'):
    self.path = path(model_dir, LOCK_FILE)
    self.what = what
    self.held = False

  def __enter__(self) -> 'RunLock':
    import socket  # pylint: disable=g-import-not-at-top
    import time  # pylint: disable=g-import-not-at-top
    host = socket.gethostname()
    mine = {'pid': os.getpid(), 'host': host, 'what': self.what,
            'since': time.strftime('%Y-%m-%d %H:%M:%S')}
    for _ in range(3):
      try:
        with storage.writing('records', 'the run\'s lock', self.path,
                             inject=False):
          fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY,
                       0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is None:
          continue  # released or half-written meanwhile: try again
        pid = int(holder.get('pid', -1))
        # Our own pid cannot hold it yet: a container restarted with the
        # same pid (and hostname) as the run that left the lock.
        if holder.get('host') == host and (
            pid == os.getpid() or not files.pid_alive(pid)):
          logging.warning('taking over %s from pid %s (%s), which is gone',
                          self.path, holder.get('pid'), holder.get('what'))
          os.remove(self.path)
          continue
        raise errors.CheckpointError(
            f'{os.path.dirname(self.path)} is in use by {holder.get("what")} '
            f'(pid {holder.get("pid")} on host {holder.get("host")}, since '
            f'{holder.get("since")}): wait for it to finish, use another '
            f'--model_dir, or remove {self.path} if that process is gone')
      try:
        with storage.writing('records', 'the run\'s lock', self.path,
                             inject=False), os.fdopen(fd, 'w') as f:
          json.dump(mine, f)
      except BaseException:
        # A full disk: an empty lock would refuse every later run.
        with contextlib.suppress(OSError):
          os.remove(self.path)
        raise
      self.held = True
      return self
    raise errors.CheckpointError(f'cannot take the lock {self.path}')

  def _holder(self) -> Optional[dict]:
    try:
      with open(self.path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except ValueError:
      return {'pid': -1, 'host': None, 'what': 'an unknown process'}

  def __exit__(self, exc_type, exc, tb) -> bool:
    if self.held:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
      except OSError as e:
        # The folder became read-only or went away: the lock, left behind,
        # names a process that is gone and the next run takes it over; the
        # error that stopped the run (if any) is what to report.
        logging.warning('could not release %s (%s)', self.path,
                        e.strerror or e)
      self.held = False
    return False
