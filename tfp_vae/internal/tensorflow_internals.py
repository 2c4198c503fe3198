"""TensorFlow internals used by the package, each for want of a public API.

- `op_seed_state` / `restore_op_seed_state`: the eager context's global
  seed and op-seed generator, which `tf.random.set_seed` replaces and no
  public API reads back; `models.seeded` gives them back after a seeded
  block.
- `session_caller`: running a TF1 session with a feed of any shape, as TF
  Serving's C++ Session::Run does; Python's `Session.run` refuses a feed
  whose shape differs from the tensor's static one (TF Serving's
  documented `{"instances": [1.0, 2.0, 5.0]}` on half_plus_three's [?, 1]
  input), so the model server's TF1 servable calls the session's run
  below that check.
- `errno_of`: TensorFlow's file errors (`tf.errors.OpError`) carry the C
  library's text for the error (`strerror`), not the number; the number
  is recovered from that text, as this machine's C library writes it.

This module imports TensorFlow only inside the functions that need it.
"""

import errno
import os
import sys
from typing import Any, Callable, Optional

# The C library's own words for each number, as TensorFlow's messages quote
# them; the first match wins (ENOENT last: other texts may name a path).
_NUMBERS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES,
            errno.EPERM, errno.ESTALE, errno.ENOTCONN, errno.EIO,
            errno.ENOENT)


def errno_of(e: BaseException) -> Optional[int]:
  """The errno a TensorFlow error's message names (its text is the C
  library's `strerror`), ENOENT for a NotFoundError that names none; None
  for anything else."""
  tf = sys.modules.get('tensorflow')
  if tf is None or not isinstance(e, tf.errors.OpError):
    return None
  return errno_in_text(str(e)) or (
      errno.ENOENT if isinstance(e, tf.errors.NotFoundError) else None)


def errno_in_text(text: str) -> Optional[int]:
  """The first errno whose `strerror` text appears in `text`."""
  for number in _NUMBERS:
    if os.strerror(number) in text:
      return number
  return None


def op_seed_state() -> tuple[Any, Any]:
  """The eager context's global seed and op-seed generator."""
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  ctx = context.context()
  # `_rng` exists once a seed was set; set_seed replaces the object.
  return ctx._seed, getattr(ctx, '_rng', None)  # pylint: disable=protected-access


def restore_op_seed_state(state: tuple[Any, Any]) -> None:
  """Puts back what `op_seed_state` returned."""
  from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
  ctx = context.context()
  # pylint: disable=protected-access
  ctx._seed = state[0]
  if state[1] is None:
    if hasattr(ctx, '_rng'):
      del ctx._rng
  else:
    ctx._rng = state[1]


def session_caller(session: Any, inputs: dict[str, Any],
                   outputs: list[Any]) -> Callable[..., list[Any]]:
  """call(**arrays) -> the values of `outputs` (graph tensors), feeding
  `inputs` (name -> graph tensor) with the arrays of those names."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  # pylint: disable=protected-access
  feeds_of = {k: t._as_tf_output() for k, t in inputs.items()}
  fetches = [t._as_tf_output() for t in outputs]

  def call(**arrays):
    feeds = {feeds_of[k]: np.asarray(v) for k, v in arrays.items()}
    return session._call_tf_sessionrun(None, feeds, fetches, [], None)

  return call
