"""The fit loop of a run: Keras fit over the run's data stream from its
cursor, with the run's callbacks, resumable at any step.

A NaN or infinite training loss stops the run with `NonFiniteLossError`; the
epoch in which it happened is not checkpointed, so the last good checkpoint
stays the latest.  SIGTERM (how clusters preempt) stops at the next step,
saves a checkpoint of the weights so far and raises `Preempted`.  A lost
peer of a multi-worker run raises `PeerLost`.
"""

import contextlib
import dataclasses
import os
import sys
from typing import Callable, Optional

from absl import logging
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.data import inputs
from tfp_vae.evaluation import metrics as metrics_lib
from tfp_vae.family import members as family
from tfp_vae.internal import errors
from tfp_vae.internal import storage
from tfp_vae.runtime import distribute
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.training import callbacks as callbacks_lib
from tfp_vae.training import rundir
from tfp_vae.training import running


def fit(the_run: running.ActiveRun,
        on_epoch: Optional[Callable[[int, dict], None]] = None) -> None:
  """Trains the remaining steps, if any.

  Data order and noise are functions of (seed, step), so a run resumed at
  any step, including inside an epoch after SIGTERM, continues exactly as
  the uninterrupted run would have.

  Raises:
    Preempted: SIGTERM arrived (a checkpoint was saved).
    NonFiniteLossError: the loss became NaN or infinite.
    PeerLost: a worker of a multi-worker run stopped answering.
  """
  config, state = the_run.config, the_run.state
  done, offset = the_run.epochs_done, int(the_run.epoch_steps_var.numpy())
  if the_run.chief:
    _draw_missed_plots(the_run, done)
  if not _epochs_left(the_run, done):
    return
  if done or offset:
    logging.info('resuming %s from epoch %d of %d%s', the_run.model_dir,
                 done, config.trainer.epochs,
                 f', step {offset} of epoch {done + 1}' if offset else '')
  per_epoch = inputs.steps_per_epoch(the_run.plan.data.num_train,
                                     config.trainer.batch_size)
  state.steps_per_epoch = per_epoch
  state.resume_epoch, state.resume_offset = done, min(offset, per_epoch - 1)
  writer = None
  board = os.path.join(the_run.model_dir, rundir.TENSORBOARD_SUBDIR)
  if the_run.chief:
    with storage.writing('summaries', 'the TensorBoard summaries', board,
                         inject=False):
      writer = tf.summary.create_file_writer(board)
    with storage.writing('history', 'the history',
                         rundir.path(the_run.model_dir, rundir.HISTORY_FILE),
                         inject=False):
      rundir.truncate_history(the_run.model_dir, done)
  cursor = tf.Variable(state.first_step(done), dtype=tf.int64,
                       trainable=False)
  train = _trainer(the_run, _callbacks(the_run, cursor, writer, on_epoch),
                   cursor)
  with callbacks_lib.sigterm_sets_preempted(state), (
      _peer_failures_are_retryable(the_run.strategy)), (
          _bad_streamed_image_is_named(the_run.data.train_images)):
    if state.resume_offset:  # the rest of the epoch SIGTERM interrupted
      train(per_epoch - state.resume_offset, done, done + 1)
    if not the_run.model.stop_training and not state.preempted and (
        the_run.epochs_done < config.trainer.epochs):
      train(per_epoch, the_run.epochs_done, config.trainer.epochs)
  if writer is not None:
    with storage.writing('summaries', 'the TensorBoard summaries', board):
      writer.close()
  the_run.trained = True
  _raise_if_stopped(the_run)


def _draw_missed_plots(the_run: running.ActiveRun, done: int) -> None:
  """The periodic plots of the checkpointed epoch, when the process that
  trained it stopped before drawing them (a full disk, a kill)."""
  every = the_run.config.runtime.plot_every
  if done and every and not done % every and not os.path.isdir(
      os.path.join(the_run.model_dir, rundir.PLOTS_SUBDIR,
                   rundir.epoch_plots(done))):
    logging.info('drawing the plots of epoch %d, which the run that trained '
                 'it did not', done)
    the_run.draw(done)


def _epochs_left(the_run: running.ActiveRun, done: int) -> bool:
  """Whether the run has epochs to train (it may have stopped early or be
  finished); says why not."""
  config = the_run.config
  if the_run.stopping.stopped():
    logging.info('%s stopped early after epoch %d (no validation '
                 'improvement for %d epochs): not training again',
                 the_run.model_dir, done,
                 config.trainer.early_stopping_patience)
    return False
  if done >= config.trainer.epochs:
    logging.info('%s already trained for %d epochs (--epochs=%d): not '
                 'training again', the_run.model_dir, done,
                 config.trainer.epochs)
    return False
  return True


def _callbacks(the_run: running.ActiveRun, cursor: tf.Variable, writer,
               on_epoch: Optional[Callable[[int, dict], None]]) -> list:
  """The run's callbacks, in the order `tfp_vae.training.callbacks` needs."""
  config, chief, state = the_run.config, the_run.chief, the_run.state
  model, seed = the_run.model, config.trainer.seed
  record = callbacks_lib.EpochRecord(
      state, the_run.epoch_var, the_run.epoch_steps_var, the_run.manager,
      model_dir=the_run.model_dir if chief else None,
      evaluate=(lambda: metrics_lib.test_set_metrics(model, the_run.test_x,
                                                     seed))
      if chief else None,
      writer=writer, preview=the_run.test_x[:8],
      on_epoch=on_epoch if chief else None)
  return [callbacks_lib.DataCursor(state, cursor),
          callbacks_lib.NonFiniteGuard(state), the_run.stopping, record,
          callbacks_lib.PeriodicPlots(
              config.runtime.plot_every if chief else 0, state, record,
              the_run.draw)]


def _trainer(the_run: running.ActiveRun, callbacks: list, cursor: tf.Variable):
  """train(steps, first_epoch, last_epoch): Keras fit over the run's data
  stream from the cursor."""
  config, model = the_run.config, the_run.model
  batch, seed = config.trainer.batch_size, config.trainer.seed
  validation = the_run.validation_images
  validation_ds = inputs.eval_dataset(
      validation, batch, config.data.binarize, seed) if len(
          validation) else None

  def train(steps, first_epoch, last_epoch):
    model.fit(inputs.train_dataset(
        the_run.data.train_images, batch, seed, config.data.binarize,
        cursor=cursor, steps=steps),
              epochs=last_epoch, initial_epoch=first_epoch,
              callbacks=callbacks, verbose=_verbosity(config.runtime.verbose),
              validation_data=validation_ds,
              shuffle=False)  # the stream is its own order

  return train


def _raise_if_stopped(the_run: running.ActiveRun) -> None:
  """After training: SIGTERM saves a checkpoint and raises Preempted; a
  non-finite loss raises NonFiniteLossError with what to change."""
  state = the_run.state
  if state.preempted:
    if not state.epoch_complete:
      the_run.epoch_steps_var.assign(state.epoch_steps)
    with storage.writing('checkpoint', 'the checkpoint at SIGTERM',
                         the_run.manager.directory):
      path = the_run.manager.save()
    raise errors.Preempted(
        f'stopped by SIGTERM in epoch {the_run.epochs_done + 1} after step '
        f'{int(the_run.epoch_steps_var.numpy())}; saved {path}; run the same '
        f'command again to resume')
  if state.failure is not None:
    last = tf.train.latest_checkpoint(
        os.path.join(the_run.model_dir, rundir.CHECKPOINT_SUBDIR))
    kept = (f'the last good checkpoint ({last}, epoch '
            f'{the_run.epochs_done}) is kept' if last else
            'no epoch finished, so there is no checkpoint')
    raise errors.NonFiniteLossError(
        f'{state.failure}; {kept}; '
        f'{_non_finite_remedy(the_run.config, the_run.plan)} and run the '
        f'same command again to resume')


@contextlib.contextmanager
def _bad_streamed_image_is_named(images):
  """Context: a streamed image that fails to decode mid-run raises the
  reader's DataError (one line naming the file) instead of TensorFlow's
  op error.  The epochs before it are checkpointed."""
  try:
    yield
  except tf.errors.OpError:
    failure = getattr(images, 'failure', None)
    if failure is None:
      raise
    raise errors.DataError(
        f'{failure} (found while streaming; the last checkpoint is kept: '
        f'fix or remove the file and rerun to resume)') from None


class _peer_failures_are_retryable:  # pylint: disable=invalid-name
  """Context: in a multi-worker run, a lost peer raises PeerLost."""

  _ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError,
             tf.errors.CancelledError, tf.errors.AbortedError)

  def __init__(self, strategy: tf.distribute.Strategy):
    self.multi_worker = distribute.task(strategy)[0] is not None

  def __enter__(self):
    return self

  def __exit__(self, exc_type, exc, tb):
    if self.multi_worker and exc_type is not None and issubclass(
        exc_type, self._ERRORS):
      raise errors.PeerLost(
          f'a worker stopped answering ({exc_type.__name__}); run the job '
          f'again to resume from the last checkpoint') from exc
    return False


def _non_finite_remedy(config: config_lib.TrainConfig,
                       the_plan: plan_lib.Plan) -> str:
  """What to change after a NaN: the learning rate, and the settings that
  scale this model's loss (`family.Member.loss_scales`, at their resolved
  values) and its likelihood's (`components.Likelihood.uses_scale`)."""
  member = the_plan.member
  fields = {f.name: f for f in dataclasses.fields(member)}
  scales = []
  for name in member.loss_scales:
    value = getattr(member, name)
    scales.append(f'--{family.public_name(fields[name])}' + (
        f'={value:g}' if value is not None else ''))
  _, likelihood, _, _ = the_plan.parts
  if likelihood.uses_scale:
    scales.append(f'--gaussian_scale={config.model.gaussian_scale:g} '
                  f'(a smaller scale weighs pixels by 1/scale^2)')
  remedy = 'lower --learning_rate'
  if scales:
    remedy += ', or make the loss smaller: ' + ', '.join(scales)
  return remedy


def _verbosity(verbose: bool) -> int:
  if not verbose:
    return 0
  return 1 if sys.stdout.isatty() else 2
