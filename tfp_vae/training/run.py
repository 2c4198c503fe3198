"""One training run: config -> data + model -> fit -> checkpoints, metrics,
plots, SavedModel, in four steps (`prepare`, `build`, `loop.fit`,
`finish`) over a `running.ActiveRun`.

Resuming: the checkpoint holds model, optimizer and the number of finished
epochs.  Running the same configuration again continues from the last
checkpoint up to `epochs`; a finished run is not retrained (its metrics and
plots are refreshed, which is cheap).  A different configuration in the
same model_dir is refused (`config` marks what may change).

A NaN or infinite loss, SIGTERM and a lost peer stop the fit loop
(`tfp_vae.training.loop`, which says how).

Distributed: every worker runs the same command.  All workers restore from
the chief's `checkpoints/`; only the chief writes into model_dir (config.json,
checkpoints, metrics.json, plots, TensorBoard) and export_dir.  Other workers
save their (required, collective) checkpoints and exports under
model_dir/.worker-<id>/, which they delete at the end.
"""
import contextlib
import os
import shutil
from typing import Callable, Optional

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.data import images as images_lib
from tfp_vae.data import inputs
from tfp_vae.data import loaders
from tfp_vae.data import sources
from tfp_vae.evaluation import metrics as metrics_lib
from tfp_vae.internal import errors
from tfp_vae.internal import layout
from tfp_vae.internal import storage
from tfp_vae.model import export as export_lib
from tfp_vae.model import models as models_lib
from tfp_vae.runtime import budget
from tfp_vae.runtime import distribute
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.training import callbacks as callbacks_lib
from tfp_vae.training import checkpoints
from tfp_vae.training import lock
from tfp_vae.training import loop
from tfp_vae.training import rundir
from tfp_vae.training import running


def run(config: config_lib.TrainConfig,
        on_epoch: Optional[Callable[[int, dict], None]] = None
        ) -> dict[str, float]:
  """Trains (or resumes) the run `config` describes and writes its artifacts.

  Writes into the model_dir (layout in `tfp_vae.training.rundir`): config.json,
  data_info.json, checkpoints/, history.jsonl, metrics.json, plots/,
  tensorboard/; and a SavedModel version under export_dir when set.

  Args:
    config: the run.
    on_epoch: optional callable(epoch, logs) after each finished epoch (on
      the chief), e.g. an outer progress bar.

  Returns:
    The metrics written to metrics.json.

  Raises:
    ConfigError, DataError, CheckpointError, NonFiniteLossError, Preempted,
    PeerLost.
  """
  return execute(config, on_epoch).metrics


def execute(config: config_lib.TrainConfig,
            on_epoch: Optional[Callable[[int, dict], None]] = None,
            start_from: Optional[keras.Model] = None) -> running.ActiveRun:
  """`run`, returning the finished `running.ActiveRun`: its trained model
  (float32) and the metrics written to metrics.json (its `metrics`).

  Args:
    config, on_epoch: as `run`.
    start_from: a built model of the same configuration whose weights the
      run starts from when model_dir holds no checkpoint (a resumed run
      starts from its checkpoint).

  Raises:
    As `run`.
  """
  the_run = prepare(config)
  the_run.start_from = start_from
  with (lock.RunLock(the_run.model_dir) if the_run.chief
        else contextlib.nullcontext()), _guarded(the_run.model_dir):
    if the_run.chief:
      for path in rundir.remove_leftovers(the_run.model_dir):
        logging.info('removed %s, left by an interrupted run', path)
    plan_lib.check_same_run(config, the_run.recorded, the_run.plan)
    build(the_run)
    loop.fit(the_run, on_epoch)
    the_run.metrics = finish(the_run)
    return the_run


@contextlib.contextmanager
def _guarded(model_dir: str):
  """Context: writes under model_dir fail as `went away` if it vanishes
  (`storage.guard`)."""
  storage.guard(model_dir)
  try:
    yield
  finally:
    storage.unguard(model_dir)


def prepare(config: config_lib.TrainConfig) -> running.ActiveRun:
  """Validates, builds the strategy, reads the model_dir's records (once:
  the run carries them), checks the model_dir, loads the data and makes
  the run's plan (`tfp_vae.runtime.plan`), which it logs."""
  config.validate()
  if config.runtime.deterministic:
    tf.config.experimental.enable_op_determinism()
    # Op determinism refuses stateful random ops without a seed; like the
    # switch itself, the seed is the process's, which the run owns.
    tf.random.set_seed(config.trainer.seed)
  # First: splitting the CPU must happen before TensorFlow initialises.
  strategy = distribute.make_strategy(config.runtime.strategy,
                                      config.runtime.cpu_replicas)
  replicas = strategy.num_replicas_in_sync
  batch_size = config.trainer.batch_size
  if batch_size % replicas:
    raise errors.ConfigError(
        'batch_size', batch_size,
        f'must be divisible by the {replicas} replicas of the '
        f'{distribute.describe(strategy)}')
  chief = distribute.is_chief(strategy)
  task_type, task_id = distribute.task(strategy)
  recorded = rundir.read_records(config.runtime.model_dir)
  # Before the data: a setting that cannot work here is refused first.
  runtime = plan_lib.resolve_runtime(
      config, distribute.describe(strategy),
      distribute.replica_setup(strategy), replicas,
      f'{task_type}:{task_id}' if task_type is not None else '', chief,
      recorded.plan)
  _check_directories(config)
  data, validation_images = prepare_data(config)
  if batch_size > len(data.train_images):
    raise errors.ConfigError(
        'batch_size', batch_size,
        f'must not exceed the {len(data.train_images)} training examples of '
        f'{config.data.dataset}')
  model_dir = config.runtime.model_dir
  own_dir = model_dir if chief else os.path.join(
      model_dir, f'.worker-{task_type}-{task_id}')
  the_plan = plan_lib.make(config, plan_lib.Data(
      dataset=data.name, source=data.source, image_shape=data.image_shape,
      num_train=len(data.train_images),
      num_validation=len(validation_images),
      num_test=len(data.test_images), num_classes=data.num_classes),
                           runtime, own_dir)
  budget.check(config, the_plan)
  os.makedirs(own_dir, exist_ok=True)
  the_plan.log()
  return running.ActiveRun(
      config=config, strategy=strategy, chief=chief, own_dir=own_dir,
      data=data, validation_images=validation_images,
      test_x=inputs.eval_images(data.test_images, config.data.binarize,
                                config.trainer.seed),
      previous_metrics=rundir.read_metrics(model_dir), plan=the_plan,
      recorded=recorded)


def build(the_run: running.ActiveRun) -> None:
  """Builds model and optimizer in the strategy's scope, restores the
  latest checkpoint and, on the chief, writes config.json (with the plan)
  and data_info.json."""
  config, the_plan = the_run.config, the_run.plan
  runtime = the_plan.runtime
  with the_run.strategy.scope():
    model = models_lib.build_model(config, the_plan=the_plan)
    optimizer = keras.optimizers.Adam(_learning_rate(
        config, the_plan.data.num_train // config.trainer.batch_size))
    if runtime.precision == 'mixed_float16':
      # Dynamic loss scaling keeps float16 gradients from underflowing.
      optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(optimizer=optimizer, jit_compile=runtime.xla,
                  steps_per_execution=runtime.steps_per_execution)
    if runtime.xla and not model.jit_compile:
      logging.warning('XLA off for the training step: Keras found the model '
                      'not compilable by XLA on this platform')
    optimizer.build(model.trainable_variables)
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name='epoch')
    # Steps of the next epoch a SIGTERM checkpoint already holds.
    epoch_steps_var = tf.Variable(0, dtype=tf.int64, trainable=False,
                                  name='epoch_steps')
    best_manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=model),
        os.path.join(the_run.own_dir, rundir.BEST_CHECKPOINT_SUBDIR),
        max_to_keep=1)
    stopping = callbacks_lib.EarlyStopping(
        config.trainer.early_stopping_patience, the_run.state, best_manager)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer,
                                   epoch=epoch_var,
                                   epoch_steps=epoch_steps_var,
                                   **stopping.variables())
  restored = checkpoints.restore_latest(checkpoint, os.path.join(
      the_run.model_dir, rundir.CHECKPOINT_SUBDIR))
  if restored is None and the_run.start_from is not None:
    _start_from(model, the_run.start_from, the_plan)
  the_run.manager = tf.train.CheckpointManager(
      checkpoint, os.path.join(the_run.own_dir, rundir.CHECKPOINT_SUBDIR),
      max_to_keep=3 if the_run.chief else 1)
  if config.trainer.lr_schedule == 'constant':
    optimizer.learning_rate.assign(config.trainer.learning_rate)
  the_run.model, the_run.stopping = model, stopping
  the_run.epoch_var, the_run.epoch_steps_var = epoch_var, epoch_steps_var
  if the_run.chief:
    with storage.writing('records', 'config.json and data_info.json',
                         the_run.model_dir):
      rundir.write_config(the_run.model_dir, config, the_plan)
      # What trainers.export needs to rebuild the model without the data.
      data = the_run.data
      rundir.write_data_info(the_run.model_dir, {
          'dataset': data.name, 'image_shape': list(data.image_shape),
          'num_classes': data.num_classes,
          'class_names': list(data.class_names), 'source': data.source,
          'num_train': the_plan.data.num_train,
          'num_test': the_plan.data.num_test, 'labelled': data.labelled,
          'test_split': data.test_split, 'streamed': data.streamed})


def _start_from(model: keras.Model, start: keras.Model,
                the_plan: plan_lib.Plan) -> None:
  """`model` given `start`'s weights.

  Raises:
    InputError: `start` holds other weights (built for other images).
  """
  weights = start.get_weights()
  if [w.shape for w in weights] != [tuple(v.shape) for v in model.weights]:
    raise errors.InputError(
        f'the model was built for images of shape '
        f'{getattr(start, "image_shape", None)}, but the data\'s are '
        f'{tuple(the_plan.image_shape)}: use a new model for this data')
  model.set_weights(weights)


def finish(the_run: running.ActiveRun) -> dict[str, float]:
  """Restores the best weights after early stopping, then on the chief
  writes metrics.json, the final plots and the export; other workers take
  part in the export's collective ops and clean up.  Returns the metrics."""
  config, model, stopping = the_run.config, the_run.model, the_run.stopping
  if stopping.stopped():
    checkpoints.restore(tf.train.Checkpoint(model=model),
                   tf.train.latest_checkpoint(os.path.join(
                       the_run.model_dir, rundir.BEST_CHECKPOINT_SUBDIR)),
                   partial=True)
    logging.info('early stopping: using the weights of epoch %d (best '
                 'validation loss %.4f)', stopping.best_epoch(),
                 stopping.best_loss())
  # Metrics, plots and the export in float32 (`models.in_float32`).
  the_run.model = model = models_lib.in_float32(model, config,
                                                the_run.plan)
  export_dir = config.runtime.export_dir
  if not the_run.chief:
    if export_dir:
      export_lib.export_savedmodel(model, the_run.data.image_shape,
                                   os.path.join(the_run.own_dir, 'export'))
    shutil.rmtree(the_run.own_dir, ignore_errors=True)
    return {'epochs_completed': the_run.epochs_done}

  # The process's peak memory before the end-of-run evaluation, which
  # holds the test images and codes whatever the source
  # (bench/data_sources.py reads this line).
  logging.info('peak memory after training: %d MB', budget.peak_rss_mb())
  results, terms = metrics_lib.test_set_metrics(model, the_run.test_x,
                                        seed=config.trainer.seed)
  results['epochs_completed'] = the_run.epochs_done
  if config.data.validation_examples:
    results['validation_examples'] = config.data.validation_examples
  if stopping.stopped():
    results['early_stopped_best_epoch'] = stopping.best_epoch()
    results['early_stopped_best_val_loss'] = stopping.best_loss()
  results['num_parameters'] = int(model.count_params())
  results['train_images_per_second'] = _throughput(the_run)
  if the_run.state.last_logs:
    results.update(callbacks_lib.prefixed(the_run.state.last_logs))
  else:  # nothing trained here: the last epoch's record has them
    history = rundir.read_history(the_run.model_dir)
    last = history[-1] if history else the_run.previous_metrics
    results.update({k: v for k, v in last.items()
                    if k.startswith(('train_', 'val_')) and k not in results})
  results.update(model.member.recorded())
  the_run.draw(terms=terms)
  if export_dir:
    _export_unless_current(the_run, model, export_dir)
  previous = the_run.previous_metrics
  evaluated = previous.get(rundir.EVALUATED_EPOCH_KEY)
  if evaluated is not None and evaluated != results['epochs_completed']:
    # trainers.evaluate measured other weights: its figures would be stale.
    stale = sorted(set(previous) - set(results))
    logging.warning('dropped the evaluation of epoch %s from metrics.json '
                    '(the model is now at epoch %d): %s; run '
                    'trainers.evaluate again', evaluated,
                    results['epochs_completed'], ', '.join(stale))
    previous = {}
  merged = {**previous, **results}
  where = rundir.path(the_run.model_dir, rundir.METRICS_FILE)
  with storage.writing('metrics', 'metrics.json', where):
    rundir.write_json(where, merged)
  # The whole run's peak, the evaluation, plots and export included.
  logging.info('peak memory over the run: %d MB', budget.peak_rss_mb())
  return merged


def _export_unless_current(the_run: running.ActiveRun, model,
                           export_dir: str) -> None:
  """A new version, unless the latest one holds these weights already (it
  recorded this epoch, or it recorded none and nothing was trained now)."""
  folders = layout.version_dirs(export_dir)
  if folders:
    latest = max(folders)
    recorded = export_lib.exported_epoch(
        os.path.join(export_dir, folders[latest]))
    if recorded == the_run.epochs_done or (recorded is None and
                                           not the_run.trained):
      logging.info('%s already holds version %d of epoch %d: not exporting '
                   'again', export_dir, latest, the_run.epochs_done)
      return
  path = export_lib.export_savedmodel(model, the_run.data.image_shape,
                                      export_dir, epoch=the_run.epochs_done)
  logging.info('exported SavedModel to %s', path)


def prepare_data(config: config_lib.TrainConfig
                 ) -> tuple[images_lib.ImageData, np.ndarray]:
  """The run's data as it trains on it: the dataset, cut to
  `train_examples`, without the `validation_examples` (returned apart, uint8
  images).

  Raises:
    DataError, ConfigError: the data cannot be loaded or cut as asked.
  """
  runtime, cfg = config.runtime, config.data
  data = images_lib.subset(
      loaders.load(cfg.dataset, runtime.data_dir, runtime.download,
                   runtime.idx_dir, sources.Transform(
                        cfg.image_size, cfg.channels, cfg.center_crop),
                   cfg.stream),
      cfg.train_examples)
  return images_lib.split_validation(data, config.data.validation_examples)


def _check_directories(config: config_lib.TrainConfig) -> None:
  """model_dir and export_dir must be directories this process can write,
  checked before any data is read or any epoch trained.

  Raises:
    ConfigError: naming the directory and what is wrong with it (not a
      directory, or this user may not write it).
    StorageUnavailable: its storage is full, read-only or gone (a restart
      may find it back).
  """
  for name in ('model_dir', 'export_dir'):
    where = getattr(config.runtime, name)
    if where is None:
      continue
    if os.path.exists(where) and not os.path.isdir(where):
      raise errors.ConfigError(name, where, 'is a file, not a directory')
    try:
      os.makedirs(where, exist_ok=True)
      probe = os.path.join(where, f'.write-test.tmp-{os.getpid()}')
      with open(probe, 'w') as f:
        f.write('ok')
      os.remove(probe)
    except OSError as e:
      if e.errno in storage.UNAVAILABLE:
        raise storage.describe(e.errno, f'a first file in --{name}',
                               where) from None
      raise errors.ConfigError(
          name, where, f'is not a writable directory ({e.strerror or e})'
      ) from None


def _learning_rate(config: config_lib.TrainConfig, steps_per_epoch: int):
  if config.trainer.lr_schedule == 'cosine':
    return keras.optimizers.schedules.CosineDecay(
        config.trainer.learning_rate,
        max(1, steps_per_epoch * config.trainer.epochs))
  return config.trainer.learning_rate


def _throughput(the_run: running.ActiveRun) -> float:
  """Training images per second, excluding the first (tracing) epoch when
  more than one epoch ran; from the history's epoch times when nothing was
  trained in this process."""
  seconds = the_run.state.epoch_seconds
  if not seconds:
    seconds = [r['seconds'] for r in rundir.read_history(the_run.model_dir)
               if 'seconds' in r]
  if not seconds:
    return float(the_run.previous_metrics.get('train_images_per_second', 0.0))
  if len(seconds) > 1:
    seconds = seconds[1:]
  batch = the_run.config.trainer.batch_size
  images_per_epoch = the_run.plan.data.num_train // batch * batch
  return images_per_epoch * len(seconds) / sum(seconds)
