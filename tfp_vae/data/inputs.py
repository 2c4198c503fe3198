"""In-memory arrays (or a streamed reader) -> tf.data pipelines: the
training stream, a function of (seed, step) alone so that a resumed run
continues exactly, and the fixed evaluation batches.  Images are uint8
[N, H, W, C] scaled to [0, 1] floats in the pipeline.
"""

from typing import Optional

import numpy as np
import tensorflow as tf

from tfp_vae.data import images as images_lib
from tfp_vae.data import sources


def to_float(images: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [0, 1]."""
  return tf.cast(images, tf.float32) / 255.0


def binarize(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Dynamic binarization: pixel = 1 with probability equal to its value;
  `seed` is a stateless seed pair."""
  u = tf.random.stateless_uniform(tf.shape(images), seed=seed)
  return tf.cast(u < images, tf.float32)


def steps_per_epoch(num_images: int, batch_size: int) -> int:
  """Full batches per epoch (the remainder is left out, differently each
  epoch)."""
  return num_images // batch_size


def _pipeline_options() -> tf.data.Options:
  """tf.data without its autotuner.

  Keras makes a new iterator every epoch.  Destroying an autotuned
  iterator waits for the autotuner's background thread, which sleeps
  between its rounds, so some epochs ended with both cores idle (the main
  thread in `~IteratorResource` -> `UnboundedThreadPool` join).  The
  pipeline is a gather and a cast per batch, so fixed parallelism loses
  nothing.  The measurements, with their machine and date:
  docs/performance.md, "The end-of-epoch stall".
  """
  options = tf.data.Options()
  options.autotune.enabled = False
  return options


_PIPELINE_OPTIONS = _pipeline_options()
MAP_PARALLELISM = 2
PREFETCH_BATCHES = 2


def train_dataset(images: np.ndarray, batch_size: int, seed: int,
                  binarized: bool = False,
                  cursor: Optional[tf.Variable] = None,
                  steps: Optional[int] = None) -> tf.data.Dataset:
  """Training batches in [0, 1] from one deterministic stream.

  The stream's global step s (counted from the start of training) is the
  batch `s % S` of epoch `s // S` (S = steps per epoch) of the permutation
  `stateless_shuffle(range(N), seed=(seed, epoch))`: data order is a
  function of (seed, step) alone, so a run resumed at any step sees what the
  uninterrupted run saw.  Batches are full (drop_remainder).  With
  `binarized`, pixels are Bernoulli draws seeded by (seed, s).

  Each iteration of the dataset yields the stream from step `cursor` (an
  int64 variable, read when the iteration starts; 0 without one) to the end
  of that step's epoch: set it before each epoch (Keras restarts the
  iteration every epoch).

  Args:
    images: uint8 [N, H, W, C], or a `sources.Reader` (streamed).
    batch_size: B.
    seed: the run's seed.
    binarized: dynamic binarization.
    cursor: where each iteration starts.
    steps: the number of batches an iteration yields, when known (so Keras
      can show it); checked.
  """
  num = len(images)
  per_epoch = steps_per_epoch(num, batch_size)
  gather = _gather(images, batch_size)
  seed = tf.constant(seed, tf.int64)

  def from_step(start):
    epoch, offset = start // per_epoch, start % per_epoch
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num, dtype=tf.int64), seed=tf.stack([seed, epoch]))
    batches = tf.reshape(order[:per_epoch * batch_size],
                         [per_epoch, batch_size])[offset:]
    return tf.data.Dataset.zip(
        tf.data.Dataset.from_tensor_slices(batches),
        tf.data.Dataset.range(start, start + per_epoch - offset))

  def start():
    return (cursor.read_value() if cursor is not None
            else tf.constant(0, tf.int64))

  ds = tf.data.Dataset.range(1).flat_map(lambda _: from_step(start()))
  if steps is not None:
    ds = ds.apply(tf.data.experimental.assert_cardinality(steps))

  def load(indices, step):
    x = to_float(gather(indices))
    if binarized:
      x = binarize(x, tf.stack([seed, step]))
    return x

  return ds.map(load, num_parallel_calls=MAP_PARALLELISM).prefetch(
      PREFETCH_BATCHES).with_options(_PIPELINE_OPTIONS)


def _gather(images: images_lib.Images, batch_size: int):
  """indices -> uint8 [B, H, W, C]: a gather from memory, or a parallel
  read from the files of a streamed split (`sources.Reader`)."""
  if not isinstance(images, sources.Reader):
    images_t = tf.constant(images)
    return lambda indices: tf.gather(images_t, indices)
  shape = [batch_size, *images.shape_hw]

  def read(indices):
    x = tf.numpy_function(images.read, [indices], tf.uint8, stateful=False,
                          name='read_images')
    x.set_shape(shape)
    return x
  return read


def eval_dataset(images: np.ndarray, batch_size: int,
                 binarized: bool = False, seed: int = 0) -> tf.data.Dataset:
  """Fixed batches of `eval_images(images)` (validation during training)."""
  return tf.data.Dataset.from_tensor_slices(
      eval_images(images, binarized, seed)).batch(batch_size).prefetch(
          PREFETCH_BATCHES).with_options(_PIPELINE_OPTIONS)


def eval_images(images: np.ndarray, binarized: bool = False,
                seed: int = 0) -> np.ndarray:
  """Test images as float32 in [0, 1]; binarized once with `seed` if asked."""
  x = images.astype(np.float32) / 255.0
  if binarized:
    x = (np.random.default_rng(seed).uniform(size=x.shape) < x).astype(
        np.float32)
  return x
