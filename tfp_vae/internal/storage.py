"""Faults of the storage a run writes to, in the user's words.

Every write of a run, an evaluation, a comparison and an export goes through
`writing(what, path)`: checkpoints, the history and TensorBoard summaries,
plots, metrics.json, the report, SavedModels.  An OSError or a TensorFlow
I/O error inside it becomes one line that says what ran out or failed,
where, while writing what, and what to do:

  no space left on the device holding /runs/vae/checkpoints (0 MB free)
  while writing checkpoint 4: free some space there, then run the same
  command again: it resumes where it stopped

A full disk or quota, a read-only file system, and a folder or mount that
went away are `StorageUnavailable` (a `RetryableError`: the trainers exit
143, as after preemption, and a job controller that restarts on that code
resumes the run once the storage is back); a permission refused is a
`StorageError` (exit 1: a restart cannot change permissions).  Nothing is
lost: every file is written whole or not at all (`tfp_vae.internal.files`,
TensorFlow's own temporary checkpoint names, a SavedModel renamed into
place), so the rerun finds the last complete checkpoint.

`TFP_VAE_FAULT=enospc:KIND` (or `erofs:KIND`, `eacces:KIND`, `enoent:KIND`)
raises that error at the first write of KIND (`checkpoint`, `history`,
`summaries`, `plots`, `metrics`, `report`, `export`): the tests' way to place a
fault where a real full disk cannot be aimed (`tfp_vae.internal.faults`).

This module does not import TensorFlow.
"""

import contextlib
import errno
import os
import shutil
from typing import Iterator, Optional

from tfp_vae.internal import errors
from tfp_vae.internal import faults
from tfp_vae.internal import tensorflow_internals as tf_internals

_GONE = (errno.ENOENT, errno.ESTALE, errno.ENOTCONN, errno.EIO,
         errno.ENODEV, errno.ENXIO)
_FULL = (errno.ENOSPC, errno.EDQUOT)
_REFUSED = (errno.EACCES, errno.EPERM)
# What only a write can hit: a fault of the storage, whoever raises it.
WRITE_FAULTS = _FULL + (errno.EROFS,)
# What a restart may find fixed (StorageUnavailable).
UNAVAILABLE = _FULL + (errno.EROFS,) + _GONE
_RETRY = 'run the same command again: it resumes where it stopped'


def error_number(e: BaseException) -> Optional[int]:
  """The errno of an OSError, or the one TensorFlow's message names."""
  if isinstance(e, OSError) and e.errno is not None:
    return e.errno
  # OSErrors without a number (h5py's) carry the C library's words too.
  if isinstance(e, OSError):
    return tf_internals.errno_in_text(str(e))
  return tf_internals.errno_of(e)


def _existing(path: str) -> str:
  """`path` or its nearest ancestor that exists."""
  path = os.path.abspath(path)
  while not os.path.exists(path) and os.path.dirname(path) != path:
    path = os.path.dirname(path)
  return path


def free_mb(path: str) -> int:
  """Megabytes free to this user on the device holding `path`."""
  return shutil.disk_usage(_existing(path)).free // (1 << 20)


def describe(number: int, what: str, path: str) -> errors.StorageError:
  """The one-line error for errno `number` while writing `what` at `path`
  (a file, or the folder it goes into)."""
  folder = path if os.path.isdir(path) else os.path.dirname(path) or '.'
  if number in _FULL:
    ran_out = ('no space left' if number == errno.ENOSPC else
               'the disk quota is used up')
    return errors.StorageUnavailable(
        f'{ran_out} on the device holding {folder} ({free_mb(folder)} MB '
        f'free) while writing {what}: free some space there, then {_RETRY}')
  if number == errno.EROFS:
    return errors.StorageUnavailable(
        f'the file system holding {folder} is read-only while writing '
        f'{what}: make it writable (remount it read-write), then {_RETRY}')
  if number in _REFUSED:
    return errors.StorageError(
        f'permission denied writing {path} while writing {what}: make '
        f'{folder} writable for this user (uid {os.getuid()}), then {_RETRY}')
  if number in _GONE:
    return errors.StorageUnavailable(
        f'{folder} went away while writing {what} '
        f'({os.strerror(number).lower()}: its volume, mount or folder is gone '
        f'or failing): when it is back, {_RETRY}')
  return errors.StorageError(
      f'{os.strerror(number).lower()} at {path} while writing {what}: '
      f'check the storage there, then {_RETRY}')


KINDS = ('records', 'checkpoint', 'history', 'summaries', 'plots', 'metrics',
         'report', 'export')
# Folders whose identity (device, inode) a write checks: a run's model_dir,
# recorded when the run takes it (`guard`).
_GUARDED: dict[str, tuple[int, int]] = {}


def guard(folder: str) -> None:
  """Writes under `folder` check, before and after, that it is still the
  folder it was now: if its volume or mount went away (and something, such
  as a library's own makedirs, would recreate it elsewhere), they fail as
  `went away` instead of writing half a run into a new folder."""
  folder = os.path.abspath(folder)
  info = os.stat(folder)
  _GUARDED[folder] = (info.st_dev, info.st_ino)


def unguard(folder: str) -> None:
  _GUARDED.pop(os.path.abspath(folder), None)


def _check_guarded(path: str) -> None:
  path = os.path.abspath(path)
  for folder, identity in _GUARDED.items():
    if path == folder or path.startswith(folder + os.sep):
      try:
        info = os.stat(folder)
        same = (info.st_dev, info.st_ino) == identity
      except OSError:
        same = False
      if not same:
        raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), folder)


@contextlib.contextmanager
def writing(kind: str, what: str, path: str, inject: bool = True
            ) -> Iterator[None]:
  """Context of one write: a storage fault inside it raises the
  `StorageError` that `describe` words; other errors pass unchanged.

  Args:
    kind: one of KINDS (where `TFP_VAE_FAULT` may inject a fault).
    what: what is written, as the user knows it ('checkpoint 4').
    path: the file or folder written.
    inject: whether an injected fault of `kind` fires as the write starts
      (False: the block calls `faults.storage_point` where it should).
  """
  assert kind in KINDS, kind
  try:
    _check_guarded(path)
    if inject:
      faults.storage_point(kind, path)
    yield
    _check_guarded(path)
  except errors.StorageError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    number = error_number(e)
    if number not in UNAVAILABLE + _REFUSED:
      raise  # not a fault of the storage (a file that exists, a bad value)
    raise describe(number, what, path) from e
