"""One writer per run directory (`RunLock`)."""

import contextlib
import json
import os
from typing import Optional

from absl import logging

from tfp_vae.internal import errors
from tfp_vae.internal import files
from tfp_vae.internal import storage

LOCK_FILE = '.lock'


class RunLock:
  """One writer per run directory: `model_dir/.lock` names the holder
  (pid, host).  A lock left by a dead process on this host is taken over;
  a live holder, or one on another host, is refused with its name.

  Use as a context manager; the lock is released on exit.
  """

  def __init__(self, model_dir: str, what: str = 'training'):
    self.path = os.path.join(model_dir, LOCK_FILE)
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
