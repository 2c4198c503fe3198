"""Keras callbacks of a training run, one job each.

Order matters and `loop.fit` keeps it: the guard first (a non-finite
epoch must not be checkpointed), then early stopping (it decides whether the
epoch is the best), then the epoch record (checkpoint, test metrics,
history, summaries), then the periodic plots.

Their per-batch hooks run on the training thread: Keras's TensorFlow
backend dispatches no callback asynchronously (Keras 3.15), so the run
reads the loss only once per call of `--steps_per_execution` steps.
Per-batch hooks only read the loss and set flags.
"""

import dataclasses
import math
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfp_vae.internal import faults
from tfp_vae.training import rundir
from tfp_vae.internal import storage


@dataclasses.dataclass
class RunState:
  """What the callbacks share and tell the run: why it stopped, where in
  the epoch it is, and its timings.

  Attributes:
    failure: why training stopped on a non-finite value, if it did.
    preempted: SIGTERM arrived.
    steps_per_epoch: steps of a full epoch.
    resume_epoch, resume_offset: the epoch a resumed run restarts inside
      and the steps of it the checkpoint already holds.
    epoch_steps: steps run so far in the current epoch (offset included).
    epoch_seconds: wall time of each epoch finished in this process.
    last_logs: the last finished epoch's training means.
  """
  failure: Optional[str] = None
  preempted: bool = False
  steps_per_epoch: int = 0
  resume_epoch: int = -1
  resume_offset: int = 0
  epoch_steps: int = 0
  epoch_seconds: list[float] = dataclasses.field(default_factory=list)
  last_logs: dict[str, float] = dataclasses.field(default_factory=dict)

  def first_step(self, epoch: int) -> int:
    """The global step the epoch's data starts at."""
    offset = self.resume_offset if epoch == self.resume_epoch else 0
    return epoch * self.steps_per_epoch + offset

  @property
  def epoch_complete(self) -> bool:
    return self.epoch_steps >= self.steps_per_epoch

  @property
  def stopped_early(self) -> bool:
    """Whether the current epoch must not be recorded: a non-finite value,
    or SIGTERM before the epoch's last step."""
    return self.failure is not None or (self.preempted and
                                        not self.epoch_complete)


def floats(logs: Optional[dict[str, Any]]) -> dict[str, float]:
  """Keras logs (scalars or [1] tensors) as Python floats."""
  return {k: float(np.ravel(v)[0]) for k, v in (logs or {}).items()}


def prefixed(logs: dict[str, float]) -> dict[str, float]:
  """Keras epoch logs as metrics keys: val_* as they are, the rest train_*."""
  return {k if k.startswith('val_') else f'train_{k}': v
          for k, v in logs.items()}


class NonFiniteGuard(keras.callbacks.Callback):
  """Stops training when the loss (or an epoch mean) is NaN or infinite,
  and stops at the next step once SIGTERM has arrived."""

  def __init__(self, state: RunState):
    super().__init__()
    self.state = state
    self._epoch = 0
    self._offset = 0
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._start = time.perf_counter()
    self._offset = (self.state.resume_offset
                    if epoch == self.state.resume_epoch else 0)
    self.state.epoch_steps = self._offset

  def on_train_batch_end(self, batch, logs=None):
    # Keras reports the last step of each call; a call at the end of the
    # data may run fewer.
    self.state.epoch_steps = min(self._offset + batch + 1,
                                 self.state.steps_per_epoch)
    faults.point('step', self._epoch * self.state.steps_per_epoch +
                 self.state.epoch_steps)
    if self.state.preempted:
      self.model.stop_training = True
      return
    loss = float(np.ravel((logs or {}).get('loss', 0.0))[0])
    if not math.isfinite(loss) and self.state.failure is None:
      self.state.failure = (f'training loss became {loss} at epoch '
                            f'{self._epoch + 1}, step {batch + 1}')
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.state.stopped_early:
      return
    logs = floats(logs)
    bad = [k for k, v in logs.items() if not math.isfinite(v)]
    if bad:
      self.state.failure = (f'training {bad[0]} became {logs[bad[0]]} in '
                            f'epoch {epoch + 1}')
      self.model.stop_training = True
      return
    self.state.epoch_seconds.append(time.perf_counter() - self._start)
    self.state.last_logs = logs


class EarlyStopping(keras.callbacks.Callback):
  """Best validation loss, its epoch and epochs since, kept in variables of
  the checkpoint so that a resumed run continues the count (and a stopped
  run stays stopped); saves the best epoch's weights."""

  def __init__(self, patience: int, state: RunState,
               best_manager: Optional[tf.train.CheckpointManager] = None):
    super().__init__()
    self.patience = patience
    self.state = state
    self.best_manager = best_manager
    self.best = tf.Variable(float('inf'), trainable=False, name='best')
    self.best_at = tf.Variable(0, dtype=tf.int64, trainable=False,
                               name='best_epoch')
    self.since = tf.Variable(0, dtype=tf.int64, trainable=False,
                             name='epochs_since_best')

  def variables(self) -> dict[str, tf.Variable]:
    """What the run's checkpoint must hold (nothing without patience)."""
    if not self.patience:
      return {}
    return {'best_val_loss': self.best, 'best_epoch': self.best_at,
            'epochs_since_best': self.since}

  def on_epoch_end(self, epoch, logs=None):
    logs = floats(logs)
    if self.state.stopped_early or not self.patience or 'val_loss' not in (
        logs):
      return
    if logs['val_loss'] < float(self.best.numpy()):
      self.best.assign(logs['val_loss'])
      self.best_at.assign(epoch + 1)
      self.since.assign(0)
      if self.best_manager is not None:
        with storage.writing('checkpoint', f'the best checkpoint (epoch '
                             f'{epoch + 1})', self.best_manager.directory):
          self.best_manager.save()
    else:
      self.since.assign_add(1)
    if self.stopped():
      self.model.stop_training = True

  def stopped(self) -> bool:
    return bool(self.patience) and int(self.since.numpy()) >= self.patience

  def best_epoch(self) -> int:
    return int(self.best_at.numpy())

  def best_loss(self) -> float:
    return float(self.best.numpy())


class DataCursor(keras.callbacks.Callback):
  """Points the training stream (`data.train_dataset`'s cursor) at the first
  step of each epoch before Keras starts iterating it."""

  def __init__(self, state: RunState, cursor: tf.Variable):
    super().__init__()
    self.state = state
    self.cursor = cursor

  def on_epoch_begin(self, epoch, logs=None):
    self.cursor.assign(self.state.first_step(epoch))


class EpochRecord(keras.callbacks.Callback):
  """After each finished epoch, one transaction: on the chief the test
  metrics, the history line and the TensorBoard summaries, then the epoch
  counter and the checkpoint, which commits the epoch (a process killed
  before it redoes the epoch, and the history is cut back to the
  checkpoint when the run resumes); then the `on_epoch(epoch, logs)`
  hook."""

  def __init__(self, state: RunState, epoch_var: tf.Variable,
               epoch_steps_var: tf.Variable,
               manager: tf.train.CheckpointManager,
               model_dir: Optional[str] = None,
               evaluate: Optional[Callable[[], tuple[dict, Any]]] = None,
               writer=None, preview: Optional[np.ndarray] = None,
               on_epoch: Optional[Callable[[int, dict], None]] = None):
    super().__init__()
    self.state = state
    self.epoch_var = epoch_var
    self.epoch_steps_var = epoch_steps_var
    self.manager = manager
    self.model_dir = model_dir
    self.evaluate = evaluate
    self.writer = writer
    self.preview = preview
    self.on_epoch = on_epoch
    self.last_terms = None  # the test arrays of the last evaluation

  def on_epoch_end(self, epoch, logs=None):
    if self.state.stopped_early:
      return
    logs = floats(logs)
    test, self.last_terms = self.evaluate() if self.evaluate else ({}, None)
    if self.model_dir is not None:
      with storage.writing('history', f'the history of epoch {epoch + 1}',
                           rundir.path(self.model_dir, rundir.HISTORY_FILE)):
        rundir.append_history(self.model_dir, {
            'epoch': epoch + 1, 'seconds': self.state.epoch_seconds[-1],
            **prefixed(logs), **test})
    if self.writer is not None:
      board = os.path.join(self.model_dir or '.', rundir.TENSORBOARD_SUBDIR)
      with storage.writing('summaries', f'the TensorBoard summaries of '
                           f'epoch {epoch + 1}', board):
        self._summaries(epoch + 1, logs, test)
    faults.point('epoch_commit', epoch + 1)
    self.epoch_var.assign(epoch + 1)
    self.epoch_steps_var.assign(0)
    with storage.writing('checkpoint', f'checkpoint {epoch + 1}',
                         self.manager.directory):
      self.manager.save()
    faults.point('checkpoint', epoch + 1)
    if self.on_epoch is not None:
      self.on_epoch(epoch + 1, logs)

  def _summaries(self, step, logs, test):
    model = self.model
    with self.writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(f'train/{name}', value)
      for name, value in test.items():
        if isinstance(value, (list, tuple)):  # one per latent unit
          for unit, v in enumerate(value):
            tf.summary.scalar(f'test/{name[len("test_"):]}/{unit}', v)
        else:
          tf.summary.scalar(f'test/{name[len("test_"):]}', value)
      codes = model.prior_distribution().sample(16, seed=(model.seed, 3))
      tf.summary.image('samples', model.decode(codes).mean(), max_outputs=16)
      recon = model(tf.constant(self.preview))
      pairs = tf.concat([self.preview, recon], axis=2)  # side by side
      tf.summary.image('reconstructions (input | output)', pairs,
                       max_outputs=len(self.preview))
    self.writer.flush()


class PeriodicPlots(keras.callbacks.Callback):
  """Draws the run's figures into plots/epoch_NNNN/ every `every` epochs,
  from the test arrays the epoch record just computed."""

  def __init__(self, every: int, state: RunState, record: EpochRecord,
               draw: Callable[[int, Any], Any]):
    super().__init__()
    self.every = every
    self.state = state
    self.record = record
    self.draw = draw

  def on_epoch_end(self, epoch, logs=None):
    if self.state.stopped_early or not self.every or (epoch + 1) % self.every:
      return
    self.draw(epoch + 1, self.record.last_terms)


class sigterm_sets_preempted:  # pylint: disable=invalid-name
  """Context: SIGTERM sets state.preempted instead of killing the process
  (the guard then stops at the next step).  Only the main thread may
  install handlers; elsewhere this does nothing."""

  def __init__(self, state: RunState):
    self.state = state
    self.previous = None

  def _handler(self, signum, frame):
    del signum, frame
    logging.warning('SIGTERM: saving a checkpoint at the next step')
    self.state.preempted = True

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, self._handler)
    return self

  def __exit__(self, *exc):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
    return False
