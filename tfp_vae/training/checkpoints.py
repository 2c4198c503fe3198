"""A run's checkpoints, restored so that they can be trusted: a corrupt
newer checkpoint is moved aside and the next older one used
(`restore_latest`), and a checkpoint of another model is refused in one
line (`restore`).  Where they live: `tfp_vae.training.rundir`.
"""

import os
from typing import Optional

from absl import logging
import tensorflow as tf

from tfp_vae.internal import errors


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
