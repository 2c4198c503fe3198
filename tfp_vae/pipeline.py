"""The command line's training run from Python: `tfp_vae.fit`.

`fit(model, data, model_dir=..., epochs=...)` runs `training.execute`, the
loop of `python -m trainers.train`, on a model of the Python API: the run
takes the model's member, settings and seed, and writes what the command
line writes into model_dir (config.json, checkpoints/, history.jsonl,
metrics.json, plots/, tensorboard/, and a SavedModel under export_dir).
Calling it again on the same model_dir resumes exactly where the run
stopped, up to the new `epochs`; the trained weights are then in `model`,
whose `run` holds the run's config, data info and test metrics.

Data is a named dataset (or a path, as `--dataset`), or images as arrays:
they are written to model_dir/images.npz (8-bit, as the command line
trains on them) and the run reads that file, so the run directory holds
its data, and `trainers.train --dataset=model_dir/images.npz` resumes it
too.
"""

import os
from typing import Any, Optional

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_vae import api
from tfp_vae.config import groups as config_groups
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.training import rundir
from tfp_vae.training import run as training

ARRAYS_FILE = 'images.npz'
# Keyword arguments of fit that are the command line's flags of the same
# names (the model's settings are the model's).
RUN_GROUPS = ('data', 'trainer', 'runtime')
# Set by fit from its own arguments, or by the model.
NOT_SETTINGS = ('dataset', 'model_dir', 'seed')


def _settings() -> set[str]:
  return {f.name for group in RUN_GROUPS
          for f in config_groups.group_fields()[group]} - set(NOT_SETTINGS)


def _split(value: Any, what: str) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """(images, labels or None) of an array or an (images, labels) pair."""
  labels = None
  if isinstance(value, tuple):
    if len(value) != 2:
      raise errors.InputError(
          f'{what} must be images or a pair (images, labels), got a tuple '
          f'of {len(value)}')
    value, labels = value
  if isinstance(value, tf.data.Dataset):
    raise errors.InputError(
        f'{what}: fit takes arrays or a dataset name, not a tf.data '
        f'dataset (the run makes its own pipeline); use model.fit for '
        f'tf.data')
  images = api.check_images(value, binary=True, what=what)
  if labels is not None:
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or labels.dtype.kind not in 'iu':
      raise errors.InputError(
          f'{what}: labels must be integers [{len(images)}], one per image, '
          f'got {labels.dtype} {tuple(labels.shape)}')
  return images, labels


def _as_bytes(images: np.ndarray) -> np.ndarray:
  """uint8 images of floats in [0, 1] (the pipeline's own format)."""
  out = np.round(images * 255.0).astype(np.uint8)
  if float(np.max(np.abs(out / 255.0 - images), initial=0.0)) > 1e-3:
    logging.warning('fit trains on 8-bit images, as the command line does: '
                    'the images were rounded to multiples of 1/255')
  return out


def write_arrays(model_dir: str, data: Any, test_data: Any = None) -> str:
  """model_dir/images.npz holding `data` (and `test_data`), as uint8;
  returns its path.  A file there already must hold the same images.

  Raises:
    InputError: bad images or labels, or a test split of another shape.
    CheckpointError: model_dir's run was trained on other images.
  """
  arrays = {}
  images, labels = _split(data, 'data')
  arrays['images'] = _as_bytes(images)
  if labels is not None:
    arrays['labels'] = labels.astype(np.int64)
  if test_data is not None:
    test_images, test_labels = _split(test_data, 'test_data')
    if test_images.shape[1:] != images.shape[1:]:
      raise errors.InputError(
          f'test_data images have shape {test_images.shape[1:]}, the '
          f'training images {images.shape[1:]}')
    if (labels is None) != (test_labels is None):
      raise errors.InputError('labels for one of data and test_data only; '
                              'give both or neither')
    arrays['test_images'] = _as_bytes(test_images)
    if test_labels is not None:
      arrays['test_labels'] = test_labels.astype(np.int64)
  where = os.path.join(model_dir, ARRAYS_FILE)
  if os.path.exists(where):
    with np.load(where) as held:
      same = set(held.files) == set(arrays) and all(
          np.array_equal(held[k], v) for k, v in arrays.items())
    if not same:
      raise errors.CheckpointError(
          f'model_dir {model_dir} was trained on other images ({where} '
          f'differs from data/test_data); use another model_dir')
    return where
  os.makedirs(model_dir, exist_ok=True)
  tmp = where + f'.tmp-{os.getpid()}'
  with open(tmp, 'wb') as f:
    np.savez(f, **arrays)
  os.replace(tmp, where)
  return where


def _check_call(model: Any, model_dir: Any, settings: dict) -> None:
  """A tfp_vae model, a model_dir path, and only fit's own settings."""
  if not isinstance(model, api.Model):
    raise errors.InputError(
        f'model must be a tfp_vae model (tfp_vae.VAE(...), '
        f'tfp_vae.build(...)), got {type(model).__name__}')
  known = _settings()
  model_settings = set(api.MODEL_SETTINGS) | set(family.all_settings()) | {
      'seed'}
  for key, value in settings.items():
    if key in model_settings:
      raise errors.ConfigError(key, value,
                               'is a setting of the model: pass it to the '
                               'model (tfp_vae.VAE(..., '
                               f'{key}=...)), not to fit')
    if key not in known:
      raise errors.ConfigError(key, value, 'is not a setting of fit')
  if not isinstance(model_dir, str) or not model_dir:
    raise errors.ConfigError('model_dir', model_dir,
                             'must be a directory path')


def fit(model: api.Model, data: Any = 'mnist_5k', *, model_dir: str,
        epochs: int = config_groups.TrainerConfig().epochs,
        test_data: Any = None, export_dir: Optional[str] = None,
        verbose: bool = True, **settings: Any) -> dict[str, Any]:
  """Trains `model` as `python -m trainers.train` does, into `model_dir`.

  The run takes the model's member, settings and seed; a built model's
  weights are the run's start when model_dir holds no checkpoint.  A
  model_dir with a checkpoint of the same run is resumed exactly (data
  order and noise are functions of seed and step) up to `epochs`; a
  finished one is not retrained.  Afterwards `model` holds the trained
  weights (float32) and `model.run` the run (config, data info, metrics).

  Args:
    model: a `tfp_vae.Model` (`tfp_vae.VAE(...)`, `tfp_vae.build(...)`).
    data: a dataset name or path (`--dataset`), or float images [N, H, W,
      C] in [0, 1], or a pair (images, labels); arrays are stored in
      model_dir/images.npz.
    model_dir: the run directory.
    epochs: the epochs the run reaches.
    test_data: with array data, the test split (images or (images,
      labels)); without it a fixed tenth (at most 10,000) of `data` is
      held out.
    export_dir: write a SavedModel version there at the end.
    verbose: the progress bar.
    **settings: the command line's data, trainer and runtime flags
      (batch_size, learning_rate, lr_schedule, plot_every,
      validation_examples, train_examples, early_stopping_patience,
      binarize, precision, ...).

  Returns:
    The metrics written to metrics.json.

  Raises:
    ConfigError: a bad or unknown setting, or one of the model's.
    InputError: bad images or labels.
    DataError: a dataset that cannot be read.
    CheckpointError: model_dir holds a different run.
  """
  _check_call(model, model_dir, settings)
  if isinstance(data, str):
    if test_data is not None:
      raise errors.InputError(
          'test_data goes with array data; a named dataset has its own '
          'test split')
    dataset = data
  elif data is None:
    raise errors.InputError('data must be a dataset name or images, got '
                            'None')
  else:
    dataset = os.path.join(model_dir, ARRAYS_FILE)
  # Settings first: a refused one leaves nothing behind.
  config = model.train_config.replace(
      dataset=dataset, model_dir=model_dir, epochs=epochs,
      export_dir=export_dir, verbose=verbose, **settings).validate()
  if not isinstance(data, str):
    write_arrays(model_dir, data, test_data)
  the_run = training.execute(config, start_from=(
      model if model.image_shape is not None else None))
  if model.image_shape is None:
    model.build((None, *the_run.data.image_shape))
  model.set_weights(the_run.model.get_weights())
  model.run = api.Run(model_dir, config, rundir.read_data_info(model_dir),
                      dict(the_run.metrics))
  return dict(the_run.metrics)
