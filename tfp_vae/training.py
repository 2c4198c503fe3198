"""One training run: config -> data + model -> fit -> checkpoints, metrics,
plots, SavedModel.

Resuming: the checkpoint holds model, optimizer and the number of finished
epochs.  Running the same configuration again continues from the last
checkpoint up to `config.epochs`; a finished run is not retrained (its
metrics and plots are refreshed, which is cheap).  A different configuration
in the same model_dir is refused (see `config.RESUMABLE_FIELDS` for what may
change).

A NaN or infinite training loss stops the run with `NonFiniteLossError`; the
epoch in which it happened is not checkpointed, so the last good checkpoint
stays the latest.
"""

import json
import math
import os
import sys
import time
from typing import Any, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfp_vae import config as config_lib
from tfp_vae import data as data_lib
from tfp_vae import errors
from tfp_vae import export as export_lib
from tfp_vae import metrics as metrics_lib
from tfp_vae import models as models_lib
from tfp_vae import plots

CONFIG_FILE = 'config.json'
METRICS_FILE = 'metrics.json'
CHECKPOINT_SUBDIR = 'checkpoints'


def write_json(path: str, obj: Any) -> None:
  """Writes JSON atomically (temp file + rename)."""
  tmp = f'{path}.tmp-{os.getpid()}'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.write('\n')
  os.replace(tmp, path)


def check_model_dir(config: config_lib.TrainConfig) -> None:
  """Refuses a model_dir whose config.json describes a different run.

  Raises:
    CheckpointError: naming each differing setting with both values.
  """
  path = os.path.join(config.model_dir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  try:
    with open(path) as f:
      previous = config_lib.TrainConfig.from_dict(json.load(f))
  except (ValueError, TypeError, errors.ConfigError) as e:
    raise errors.CheckpointError(
        f'{path} is not a readable tfp_vae config ({e}); use another '
        f'--model_dir or remove that file') from e
  diffs = previous.differences(config)
  if diffs:
    listed = ', '.join(f'--{name}={new!r} (checkpoint has {old!r})'
                       for name, old, new in diffs)
    raise errors.CheckpointError(
        f'model_dir {config.model_dir} holds a checkpoint of a different '
        f'configuration: {listed}; use another --model_dir or the same flags')


class _TrainingMonitor(keras.callbacks.Callback):
  """Guards against non-finite losses, checkpoints, times and logs epochs."""

  def __init__(self, manager: tf.train.CheckpointManager,
               epoch_var: tf.Variable, writer: Optional[Any],
               preview_images: np.ndarray, plot_fn, plot_every: int):
    super().__init__()
    self.manager = manager
    self.epoch_var = epoch_var
    self.writer = writer
    self.preview = preview_images
    self.plot_fn = plot_fn
    self.plot_every = plot_every
    self.failure: Optional[str] = None
    self.epoch_seconds: list[float] = []
    self.last_logs: dict[str, float] = {}
    self._epoch = 0
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    loss = float((logs or {}).get('loss', 0.0))
    if not math.isfinite(loss) and self.failure is None:
      self.failure = (f'training loss became {loss} at epoch '
                      f'{self._epoch + 1}, step {batch + 1}')
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.failure is not None:
      return
    logs = {k: float(v) for k, v in (logs or {}).items()}
    bad = [k for k, v in logs.items() if not math.isfinite(v)]
    if bad:
      self.failure = f'training {bad[0]} became {logs[bad[0]]} in epoch ' \
                     f'{epoch + 1}'
      self.model.stop_training = True
      return
    self.epoch_seconds.append(time.perf_counter() - self._start)
    self.last_logs = logs
    self.epoch_var.assign(epoch + 1)
    self.manager.save(checkpoint_number=epoch + 1)
    if self.writer is not None:
      self._summaries(epoch + 1, logs)
    if self.plot_every and (epoch + 1) % self.plot_every == 0:
      self.plot_fn(f'epoch_{epoch + 1:04d}')

  def _summaries(self, step, logs):
    model = self.model
    with self.writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(f'train/{name}', value)
      codes = model.prior_distribution().sample(16, seed=(model.seed, 3))
      tf.summary.image('samples', model.decode(codes).mean(), max_outputs=16)
      recon = model(tf.constant(self.preview))
      pairs = tf.concat([self.preview, recon], axis=2)  # side by side
      tf.summary.image('reconstructions (input | output)', pairs,
                       max_outputs=len(self.preview))
    self.writer.flush()


def run(config: config_lib.TrainConfig) -> dict[str, float]:
  """Trains (or resumes) the run `config` describes and writes its artifacts.

  Writes into config.model_dir: config.json, checkpoints/, metrics.json,
  plots/*.png, tensorboard/; and a SavedModel version under config.export_dir
  when set.

  Returns:
    The metrics written to metrics.json.

  Raises:
    ConfigError, DataError, CheckpointError, NonFiniteLossError.
  """
  config.validate()
  check_model_dir(config)
  data = data_lib.load(config.dataset, config.data_dir, config.download)
  num_train = len(data.train_images)
  if config.batch_size > num_train:
    raise errors.ConfigError(
        'batch_size', config.batch_size,
        f'must not exceed the {num_train} training examples of '
        f'{config.dataset}')
  model_dir = config.model_dir
  os.makedirs(model_dir, exist_ok=True)

  strategy = tf.distribute.get_strategy()
  with strategy.scope():
    model = models_lib.build_model(config, data.image_shape)
    optimizer = keras.optimizers.Adam(config.learning_rate)
    # XLA: measured ~2x slower for this network on CPU (CONVENTIONS.md) and
    # untested with the tfd ops; Keras's "auto" would turn it on on GPUs.
    model.compile(optimizer=optimizer, jit_compile=False,
                  steps_per_execution=config.steps_per_execution)
    optimizer.build(model.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   epoch=epoch_var)
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(model_dir, CHECKPOINT_SUBDIR), max_to_keep=3)
  _restore(checkpoint, manager)
  optimizer.learning_rate.assign(config.learning_rate)
  write_json(os.path.join(model_dir, CONFIG_FILE), config.to_dict())

  test_x = data_lib.eval_images(data.test_images, config.binarize, config.seed)
  done = int(epoch_var.numpy())
  previous_metrics = _read_metrics(model_dir)

  def draw(subdir: str = '') -> list[str]:
    _, terms = metrics_lib.evaluate(model, test_x, seed=config.seed)
    return plots.draw_all(model, test_x, data.test_labels, terms['code_mean'],
                          os.path.join(model_dir, 'plots', subdir),
                          seed=config.seed)

  monitor = None
  if done >= config.epochs:
    logging.info('%s already trained for %d epochs (--epochs=%d): not '
                 'training again', model_dir, done, config.epochs)
  else:
    if done:
      logging.info('resuming %s from epoch %d of %d', model_dir, done,
                   config.epochs)
    writer = tf.summary.create_file_writer(
        os.path.join(model_dir, 'tensorboard'))
    monitor = _TrainingMonitor(manager, epoch_var, writer, test_x[:8], draw,
                               config.plot_every)
    train_ds = data_lib.train_dataset(data.train_images, config.batch_size,
                                      config.seed + done, config.binarize)
    model.fit(train_ds, epochs=config.epochs, initial_epoch=done,
              callbacks=[monitor], verbose=_verbosity(config.verbose),
              shuffle=False)  # the dataset reshuffles itself
    writer.close()
    if monitor.failure is not None:
      last = manager.latest_checkpoint
      kept = (f'the last good checkpoint ({last}, epoch '
              f'{int(epoch_var.numpy())}) is kept' if last else
              'no epoch finished, so there is no checkpoint')
      raise errors.NonFiniteLossError(
          f'{monitor.failure}; {kept}; lower --learning_rate and run the '
          f'same command again to resume')

  results, terms = metrics_lib.evaluate(model, test_x, seed=config.seed)
  epochs_completed = int(epoch_var.numpy())
  results['epochs_completed'] = epochs_completed
  results['num_parameters'] = int(model.count_params())
  results['train_images_per_second'] = _throughput(
      monitor, num_train // config.batch_size * config.batch_size,
      previous_metrics)
  if monitor is not None and monitor.last_logs:
    results.update({f'train_{k}': v for k, v in monitor.last_logs.items()})
  elif previous_metrics:
    results.update({k: v for k, v in previous_metrics.items()
                    if k.startswith('train_') and k not in results})
  if isinstance(model, models_lib.MMDVAE):
    results['mmd_weight'] = model.mmd_weight
  plots.draw_all(model, test_x, data.test_labels, terms['code_mean'],
                 os.path.join(model_dir, 'plots'), seed=config.seed)
  if config.export_dir:
    existing = export_lib.versions(config.export_dir)
    if monitor is None and existing:
      logging.info('%s already holds version %d and nothing was trained: not '
                   'exporting again', config.export_dir, existing[-1])
    else:
      path = export_lib.export_savedmodel(model, data.image_shape,
                                          config.export_dir)
      logging.info('exported SavedModel to %s', path)
  write_json(os.path.join(model_dir, METRICS_FILE), results)
  return results


def _restore(checkpoint: tf.train.Checkpoint,
             manager: tf.train.CheckpointManager) -> None:
  path = manager.latest_checkpoint
  if path is None:
    return
  try:
    checkpoint.restore(path).assert_existing_objects_matched()
  except (tf.errors.OpError, ValueError, AssertionError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise errors.CheckpointError(
        f'checkpoint {path} cannot be restored ({type(e).__name__}: '
        f'{first_line[:300]}); it was written by a different model or is '
        f'corrupt: use another --model_dir, or delete that checkpoint to '
        f'fall back to an earlier one') from e
  logging.info('restored %s', path)


def _read_metrics(model_dir: str) -> dict[str, float]:
  try:
    with open(os.path.join(model_dir, METRICS_FILE)) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


def _throughput(monitor: Optional[_TrainingMonitor], images_per_epoch: int,
                previous: dict[str, float]) -> float:
  """Training images per second, excluding the first (tracing) epoch when
  more than one epoch ran in this process."""
  if monitor is None or not monitor.epoch_seconds:
    return float(previous.get('train_images_per_second', 0.0))
  seconds = monitor.epoch_seconds
  if len(seconds) > 1:
    seconds = seconds[1:]
  return images_per_epoch * len(seconds) / sum(seconds)


def _verbosity(verbose: bool) -> int:
  if not verbose:
    return 0
  return 1 if sys.stdout.isatty() else 2
