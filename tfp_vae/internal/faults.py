"""Named fault points, for tests that kill or preempt a run at an exact
moment (a fake for the one fault a test cannot otherwise place: a signal at
a chosen step).

Inert unless the environment variable TFP_VAE_FAULT is set to
`POINT:INDEX[:SIGNAL]`, e.g. `step:17:term` (SIGTERM after training step
17) or `epoch_commit:2` (SIGKILL, the default, inside epoch 2's commit,
after its history line and before its checkpoint).  Points:

  step           after a training step (1-based, counted from the start of
                 training, as Keras reports it)
  epoch_commit   after an epoch's history line and summaries, before its
                 checkpoint
  checkpoint     after an epoch's checkpoint, before its plots
  export         after a SavedModel is written to its temporary directory,
                 before it is renamed into place

and storage faults, `ERROR:KIND` (ERROR one of enospc, edquot, erofs,
eacces, enoent): that OSError at the first write of KIND
(`tfp_vae.internal.storage.KINDS`), once per process.
"""

import errno
import os
import signal

ENV = 'TFP_VAE_FAULT'
_SIGNALS = {'kill': signal.SIGKILL, 'term': signal.SIGTERM}


def point(name: str, index: int = 0) -> None:
  """Sends the configured signal to this process when (name, index) is the
  configured point; does nothing otherwise."""
  spec = os.environ.get(ENV)
  if not spec:
    return
  parts = spec.split(':')
  if parts[0] != name or int(parts[1]) != index:
    return
  if len(parts) > 2 and parts[2] == 'term':
    os.environ.pop(ENV)  # once: the run goes on to its next step
  os.kill(os.getpid(), _SIGNALS[parts[2] if len(parts) > 2 else 'kill'])


_ERRNOS = {'enospc': errno.ENOSPC, 'edquot': errno.EDQUOT,
           'erofs': errno.EROFS, 'eacces': errno.EACCES,
           'enoent': errno.ENOENT}


def storage_point(kind: str, path: str) -> None:
  """Raises the configured OSError at `path` when `ERROR:kind` is the
  configured fault (once: the variable is cleared); does nothing
  otherwise."""
  spec = os.environ.get(ENV, '')
  error, _, where = spec.partition(':')
  if error not in _ERRNOS or where != kind:
    return
  os.environ.pop(ENV)
  number = _ERRNOS[error]
  raise OSError(number, os.strerror(number), path)
