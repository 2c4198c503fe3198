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
stays the latest.  SIGTERM (how clusters preempt) stops at the next step,
saves a checkpoint of the weights so far and raises `Preempted`.

Distributed: every worker runs the same command.  All workers restore from
the chief's `checkpoints/`; only the chief writes into model_dir (config.json,
checkpoints, metrics.json, plots, TensorBoard) and export_dir.  Other workers
save their (required, collective) checkpoints and exports under
model_dir/.worker-<id>/, which they delete at the end.
"""

import json
import math
import os
import shutil
import signal
import sys
import threading
import time
from typing import Any, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfp_vae import config as config_lib
from tfp_vae import data as data_lib
from tfp_vae import distribute
from tfp_vae import errors
from tfp_vae import export as export_lib
from tfp_vae import metrics as metrics_lib
from tfp_vae import models as models_lib
from tfp_vae import plots

CONFIG_FILE = 'config.json'
DATA_INFO_FILE = 'data_info.json'
METRICS_FILE = 'metrics.json'
HISTORY_FILE = 'history.jsonl'
BEST_CHECKPOINT_SUBDIR = 'best_checkpoint'
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
  """Guards against non-finite losses, checkpoints, times and logs epochs.

  Async-safe: Keras then hands per-batch logs to a worker thread instead of
  waiting for each step on the main thread (a host sync per step cost ~5%
  of throughput).  The per-batch hook only reads the loss and sets flags.
  """

  async_safe = True

  def __init__(self, manager: tf.train.CheckpointManager,
               epoch_var: tf.Variable, writer: Optional[Any],
               preview_images: np.ndarray, plot_fn, plot_every: int,
               evaluate_fn=None, history_path: Optional[str] = None,
               on_epoch=None, stopping=None, best_manager=None):
    super().__init__()
    self.stopping = stopping
    self.best_manager = best_manager
    self.manager = manager
    self.epoch_var = epoch_var
    self.writer = writer
    self.preview = preview_images
    self.plot_fn = plot_fn
    self.plot_every = plot_every
    self.evaluate_fn = evaluate_fn
    self.history_path = history_path
    self.on_epoch = on_epoch
    self.failure: Optional[str] = None
    self.preempted = False
    self.epoch_seconds: list[float] = []
    self.last_logs: dict[str, float] = {}
    self._epoch = 0
    self._start = 0.0

  def on_epoch_begin(self, epoch, logs=None):
    self._epoch = epoch
    self._start = time.perf_counter()

  def on_train_batch_end(self, batch, logs=None):
    if self.preempted:
      self.model.stop_training = True
      return
    loss = float(np.ravel((logs or {}).get('loss', 0.0))[0])
    if not math.isfinite(loss) and self.failure is None:
      self.failure = (f'training loss became {loss} at epoch '
                      f'{self._epoch + 1}, step {batch + 1}')
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    if self.failure is not None or self.preempted:
      return
    logs = {k: float(np.ravel(v)[0]) for k, v in (logs or {}).items()}
    bad = [k for k, v in logs.items() if not math.isfinite(v)]
    if bad:
      self.failure = f'training {bad[0]} became {logs[bad[0]]} in epoch ' \
                     f'{epoch + 1}'
      self.model.stop_training = True
      return
    self.epoch_seconds.append(time.perf_counter() - self._start)
    self.last_logs = logs
    self.epoch_var.assign(epoch + 1)
    if self.stopping is not None and 'val_loss' in logs:
      if self.stopping.update(epoch + 1, logs['val_loss']):
        self.best_manager.save()
      if self.stopping.stopped():
        self.model.stop_training = True
    self.manager.save()
    test, terms = self.evaluate_fn() if self.evaluate_fn else ({}, None)
    if self.history_path:
      record = {'epoch': epoch + 1, 'seconds': self.epoch_seconds[-1],
                **_prefixed(logs), **test}
      with open(self.history_path, 'a') as f:
        f.write(json.dumps(record, sort_keys=True) + '\n')
    if self.writer is not None:
      self._summaries(epoch + 1, logs, test)
    if self.on_epoch is not None:
      self.on_epoch(epoch + 1, logs)
    if self.plot_every and (epoch + 1) % self.plot_every == 0:
      self.plot_fn(f'epoch_{epoch + 1:04d}', terms)

  def _summaries(self, step, logs, test):
    model = self.model
    with self.writer.as_default(step=step):
      for name, value in logs.items():
        tf.summary.scalar(f'train/{name}', value)
      for name, value in test.items():
        tf.summary.scalar(f'test/{name[len("test_"):]}', value)
      codes = model.prior_distribution().sample(16, seed=(model.seed, 3))
      tf.summary.image('samples', model.decode(codes).mean(), max_outputs=16)
      recon = model(tf.constant(self.preview))
      pairs = tf.concat([self.preview, recon], axis=2)  # side by side
      tf.summary.image('reconstructions (input | output)', pairs,
                       max_outputs=len(self.preview))
    self.writer.flush()


def run(config: config_lib.TrainConfig, on_epoch=None) -> dict[str, float]:
  """Trains (or resumes) the run `config` describes and writes its artifacts.

  Writes into config.model_dir: config.json, checkpoints/, history.jsonl
  (one JSON object per epoch: train_* terms, test metrics, seconds),
  metrics.json, plots/*.png, tensorboard/; and a SavedModel version under
  config.export_dir when set.

  Args:
    config: the run.
    on_epoch: optional callable(epoch, logs) after each finished epoch (on
      the chief), e.g. an outer progress bar.

  Returns:
    The metrics written to metrics.json.

  Raises:
    ConfigError, DataError, CheckpointError, NonFiniteLossError.
  """
  config.validate()
  # First: splitting the CPU must happen before TensorFlow initialises.
  strategy = distribute.make_strategy(config.strategy, config.cpu_replicas)
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % replicas:
    raise errors.ConfigError(
        'batch_size', config.batch_size,
        f'must be divisible by the {replicas} replicas of the '
        f'{distribute.describe(strategy)}')
  chief = distribute.is_chief(strategy)
  task_type, task_id = distribute.task(strategy)
  check_model_dir(config)
  data, validation_images = prepare_data(config)
  num_train = len(data.train_images)
  if config.batch_size > num_train:
    raise errors.ConfigError(
        'batch_size', config.batch_size,
        f'must not exceed the {num_train} training examples of '
        f'{config.dataset}')
  model_dir = config.model_dir
  own_dir = model_dir if chief else os.path.join(
      model_dir, f'.worker-{task_type}-{task_id}')
  os.makedirs(own_dir, exist_ok=True)
  logging.info('strategy %s with %d replica(s); this task %s:%d is %s',
               distribute.describe(strategy), replicas, task_type, task_id,
               'the chief' if chief else 'not the chief')

  if config.resolved_kl_estimator() != config.kl_estimator and (
      config.model in ('vae', 'info_vae')):
    logging.warning('--prior=%s has no closed-form KL to q(z|x): the rate '
                    'uses the one-sample estimate log q(z|x) - log p(z) '
                    'instead of --kl_estimator=%s', config.prior,
                    config.kl_estimator)
  with strategy.scope():
    model = models_lib.build_model(config, data.image_shape)
    optimizer = keras.optimizers.Adam(_learning_rate(
        config, num_train // config.batch_size))
    if config.precision == 'mixed_float16':
      # Dynamic loss scaling keeps float16 gradients from underflowing.
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    # XLA: measured ~2x slower for this network on CPU (CONVENTIONS.md) and
    # untested with the tfd ops; Keras's "auto" would turn it on on GPUs.
    model.compile(optimizer=optimizer, jit_compile=False,
                  steps_per_execution=config.steps_per_execution)
    optimizer.build(model.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
    stopping = _EarlyStoppingState(config.early_stopping_patience)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   epoch=epoch_var, **stopping.variables())
  chief_checkpoints = os.path.join(model_dir, CHECKPOINT_SUBDIR)
  _restore(checkpoint, tf.train.latest_checkpoint(chief_checkpoints))
  manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(own_dir, CHECKPOINT_SUBDIR),
      max_to_keep=3 if chief else 1)
  if config.lr_schedule == 'constant':
    optimizer.learning_rate.assign(config.learning_rate)
  best_manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model),
      os.path.join(own_dir, BEST_CHECKPOINT_SUBDIR), max_to_keep=1)
  if chief:
    write_json(os.path.join(model_dir, CONFIG_FILE), config.to_dict())
    # What trainers.export needs to rebuild the model without the data.
    write_json(os.path.join(model_dir, DATA_INFO_FILE),
               {'dataset': data.name, 'image_shape': list(data.image_shape),
                'num_classes': data.num_classes,
                'class_names': list(data.class_names),
                'source': data.source,
                'num_train': num_train,
                'num_test': len(data.test_images)})

  test_x = data_lib.eval_images(data.test_images, config.binarize, config.seed)
  done = int(epoch_var.numpy())
  previous_metrics = read_metrics(model_dir)

  def draw(subdir: str = '', terms: Optional[dict] = None) -> list[str]:
    if terms is None:
      _, terms = metrics_lib.evaluate(model, test_x, seed=config.seed)
    return plots.draw_all(model, test_x, data.test_labels, terms['code_mean'],
                          os.path.join(model_dir, 'plots', subdir),
                          seed=config.seed, class_names=data.class_names)

  monitor = None
  if stopping.stopped():
    logging.info('%s stopped early after epoch %d (no validation '
                 'improvement for %d epochs): not training again', model_dir,
                 done, config.early_stopping_patience)
  elif done >= config.epochs:
    logging.info('%s already trained for %d epochs (--epochs=%d): not '
                 'training again', model_dir, done, config.epochs)
  else:
    if done:
      logging.info('resuming %s from epoch %d of %d', model_dir, done,
                   config.epochs)
    writer = (tf.summary.create_file_writer(
        os.path.join(model_dir, 'tensorboard')) if chief else None)
    history_path = os.path.join(model_dir, HISTORY_FILE) if chief else None
    if chief:
      _truncate_history(history_path, done)
    monitor = _TrainingMonitor(
        manager, epoch_var, writer, test_x[:8], draw if chief else None,
        config.plot_every if chief else 0,
        evaluate_fn=(lambda: metrics_lib.evaluate(model, test_x, config.seed))
        if chief else None,
        history_path=history_path, on_epoch=on_epoch if chief else None,
        stopping=stopping, best_manager=best_manager)
    train_ds = data_lib.train_dataset(data.train_images, config.batch_size,
                                      config.seed + done, config.binarize)
    with _sigterm_sets(monitor), _peer_failures_are_retryable(strategy):
      model.fit(train_ds, epochs=config.epochs, initial_epoch=done,
                callbacks=[monitor], verbose=_verbosity(config.verbose),
                validation_data=data_lib.eval_dataset(
                    validation_images, config.batch_size, config.binarize,
                    config.seed) if len(validation_images) else None,
                shuffle=False)  # the dataset reshuffles itself
    if writer is not None:
      writer.close()
    if monitor.preempted:
      path = manager.save()
      raise errors.Preempted(
          f'stopped by SIGTERM in epoch {int(epoch_var.numpy()) + 1}; saved '
          f'{path}; run the same command again to resume')
    if monitor.failure is not None:
      last = tf.train.latest_checkpoint(chief_checkpoints)
      kept = (f'the last good checkpoint ({last}, epoch '
              f'{int(epoch_var.numpy())}) is kept' if last else
              'no epoch finished, so there is no checkpoint')
      raise errors.NonFiniteLossError(
          f'{monitor.failure}; {kept}; lower --learning_rate and run the '
          f'same command again to resume')

  if stopping.stopped():
    _restore(tf.train.Checkpoint(model=model),
             tf.train.latest_checkpoint(os.path.join(
                 model_dir, BEST_CHECKPOINT_SUBDIR)), partial=True)
    logging.info('early stopping: using the weights of epoch %d (best '
                 'validation loss %.4f)', stopping.best_epoch(),
                 stopping.best_loss())

  if not chief:
    # The export may run collective ops: every worker takes part.
    if config.export_dir:
      export_lib.export_savedmodel(model, data.image_shape,
                                   os.path.join(own_dir, 'export'))
    shutil.rmtree(own_dir, ignore_errors=True)
    return {'epochs_completed': int(epoch_var.numpy())}

  results, terms = metrics_lib.evaluate(model, test_x, seed=config.seed)
  results['epochs_completed'] = int(epoch_var.numpy())
  if config.validation_examples:
    results['validation_examples'] = config.validation_examples
  if stopping.stopped():
    results['early_stopped_best_epoch'] = stopping.best_epoch()
    results['early_stopped_best_val_loss'] = stopping.best_loss()
  results['num_parameters'] = int(model.count_params())
  results['train_images_per_second'] = _throughput(
      monitor, num_train // config.batch_size * config.batch_size,
      previous_metrics)
  if monitor is not None and monitor.last_logs:
    results.update(_prefixed(monitor.last_logs))
  elif previous_metrics:
    results.update({k: v for k, v in previous_metrics.items()
                    if k.startswith(('train_', 'val_')) and k not in results})
  if 'mmd' in model.terms:
    results['mmd_weight'] = model.mmd_weight
  if isinstance(model, models_lib.InfoVAE) and 'rate' in model.terms and (
      model.rate_weight != 1.0):
    results['rate_weight'] = model.rate_weight
  draw(terms=terms)
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


def prepare_data(config: config_lib.TrainConfig
                 ) -> tuple[data_lib.ImageData, np.ndarray]:
  """The run's data as it trains on it: the dataset, cut to
  `train_examples`, without the `validation_examples` (returned apart, uint8
  images).

  Raises:
    DataError, ConfigError: the data cannot be loaded or cut as asked.
  """
  data = data_lib.subset(
      data_lib.load(config.dataset, config.data_dir, config.download,
                    config.idx_dir),
      config.train_examples)
  return data_lib.split_validation(data, config.validation_examples)


def load_trained_model(model_dir: str
                       ) -> tuple[models_lib.LatentVariableModel,
                                  config_lib.TrainConfig, dict[str, Any]]:
  """The model of model_dir's latest checkpoint, its config and data info.

  Raises:
    CheckpointError: model_dir has no run, or its checkpoint is unreadable.
  """
  try:
    with open(os.path.join(model_dir, CONFIG_FILE)) as f:
      config = config_lib.TrainConfig.from_dict(json.load(f))
    with open(os.path.join(model_dir, DATA_INFO_FILE)) as f:
      info = json.load(f)
  except (OSError, ValueError, errors.ConfigError) as e:
    raise errors.CheckpointError(
        f'model_dir {model_dir} holds no readable training run '
        f'({type(e).__name__}: {e}); train one with trainers.train') from e
  path = tf.train.latest_checkpoint(os.path.join(model_dir, CHECKPOINT_SUBDIR))
  if path is None:
    raise errors.CheckpointError(
        f'model_dir {model_dir} has no checkpoint yet; train at least one '
        f'epoch with trainers.train')
  model = models_lib.build_model(config, tuple(info['image_shape']))
  _restore(tf.train.Checkpoint(model=model), path, partial=True)
  return model, config, info


def _restore(checkpoint: tf.train.Checkpoint, path: Optional[str],
             partial: bool = False) -> None:
  if path is None:
    return
  try:
    status = checkpoint.restore(path)
    if partial:
      status.expect_partial()
    status.assert_existing_objects_matched()
  except (tf.errors.OpError, ValueError, AssertionError) as e:
    first_line = str(e).strip().splitlines()[0] if str(e).strip() else ''
    raise errors.CheckpointError(
        f'checkpoint {path} cannot be restored ({type(e).__name__}: '
        f'{first_line[:300]}); it was written by a different model or is '
        f'corrupt: use another --model_dir, or delete that checkpoint to '
        f'fall back to an earlier one') from e
  logging.info('restored %s', path)


class _sigterm_sets:  # pylint: disable=invalid-name
  """Context: SIGTERM sets monitor.preempted instead of killing the process.

  Only the main thread may install handlers; elsewhere this does nothing.
  """

  def __init__(self, monitor: _TrainingMonitor):
    self.monitor = monitor
    self.previous = None

  def _handler(self, signum, frame):
    logging.warning('SIGTERM: saving a checkpoint at the next step')
    self.monitor.preempted = True

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self.previous = signal.signal(signal.SIGTERM, self._handler)
    return self

  def __exit__(self, *exc):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)
    return False


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


def _learning_rate(config: config_lib.TrainConfig, steps_per_epoch: int):
  if config.lr_schedule == 'cosine':
    return keras.optimizers.schedules.CosineDecay(
        config.learning_rate, max(1, steps_per_epoch * config.epochs))
  return config.learning_rate


class _EarlyStoppingState:
  """Best validation loss, its epoch and epochs since, kept in the
  checkpoint so that a resumed run continues the count (and a stopped run
  stays stopped)."""

  def __init__(self, patience: int):
    self.patience = patience
    self.best = tf.Variable(float('inf'), trainable=False, name='best')
    self.best_at = tf.Variable(0, dtype=tf.int64, trainable=False,
                               name='best_epoch')
    self.since = tf.Variable(0, dtype=tf.int64, trainable=False,
                             name='epochs_since_best')

  def variables(self) -> dict[str, tf.Variable]:
    if not self.patience:
      return {}
    return {'best_val_loss': self.best, 'best_epoch': self.best_at,
            'epochs_since_best': self.since}

  def update(self, epoch: int, val_loss: float) -> bool:
    """Records an epoch; True when it is the best so far."""
    if val_loss < float(self.best.numpy()):
      self.best.assign(val_loss)
      self.best_at.assign(epoch)
      self.since.assign(0)
      return True
    self.since.assign_add(1)
    return False

  def stopped(self) -> bool:
    return bool(self.patience) and int(self.since.numpy()) >= self.patience

  def best_epoch(self) -> int:
    return int(self.best_at.numpy())

  def best_loss(self) -> float:
    return float(self.best.numpy())


def _prefixed(logs: dict[str, float]) -> dict[str, float]:
  """Keras epoch logs as metrics keys: val_* as they are, the rest train_*."""
  return {k if k.startswith('val_') else f'train_{k}': v
          for k, v in logs.items()}


def _truncate_history(path: str, epochs_done: int) -> None:
  """Keeps the history of the epochs the checkpoint holds (an epoch that
  ended in a NaN or a crash after it was logged is dropped)."""
  if not os.path.exists(path):
    return
  kept = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        continue  # a line torn by a crash
      if record.get('epoch', 0) <= epochs_done:
        kept.append(line if line.endswith('\n') else line + '\n')
  with open(path, 'w') as f:
    f.writelines(kept)


def read_history(model_dir: str) -> list[dict[str, float]]:
  """history.jsonl of a run as a list of per-epoch dicts (may be empty)."""
  path = os.path.join(model_dir, HISTORY_FILE)
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def read_metrics(model_dir: str) -> dict[str, float]:
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
