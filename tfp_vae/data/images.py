"""A dataset in memory or streamed (`ImageData`), and its cuts: the
training examples a run keeps (`subset`), its validation examples
(`split_validation`), a held-out test split, the training sample that
evaluation reads (`train_sample`), and a transform of every image.

Labels are optional: data without them has `train_labels` and
`test_labels` None, and `num_classes` 0.  Images are kept as uint8
[N, H, W, C]; a streamed training split is a `sources.Reader`, read by
index with the same order as in memory.
"""

import dataclasses
from concurrent import futures
from typing import Optional, Union

from absl import logging
import numpy as np

from tfp_vae.data import sources
from tfp_vae.internal import errors

# Training images evaluation reads into memory (probes, Frechet features):
# at most this many, and at most this many float32 bytes.
TRAIN_SAMPLE_MAX = 60_000
TRAIN_SAMPLE_BYTES = 1 << 30
Images = Union[np.ndarray, sources.Reader]
DIGITS = tuple(str(d) for d in range(10))
# Class names of datasets read from IDX files (TFDS datasets carry theirs).
CLASS_NAMES = {
    'mnist': DIGITS,
    'mnist_5k': DIGITS,
    'fashion_mnist': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                      'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
}


@dataclasses.dataclass(frozen=True)
class ImageData:
  """A dataset: its splits, labels and names.

  Attributes:
    name: dataset name (the path for a user's data).
    train_images: uint8 [N, H, W, C], or a `sources.Reader` when streamed.
    train_labels, test_labels: int64 [N] class labels (used only by plots
      and probes, never by training), or None for data without labels.
    test_images: uint8 [N, H, W, C].
    num_classes: number of label values (0 without labels).
    class_names: a name per label value ('T-shirt/top', ...), for plots.
    source: where the data was read from, for logs and data_info.json.
    test_split: where the test split comes from ('the dataset's test
      split', or how it was held out), for data_info.json.
  """
  name: str
  train_images: Images
  train_labels: Optional[np.ndarray]
  test_images: np.ndarray
  test_labels: Optional[np.ndarray]
  num_classes: int
  class_names: tuple[str, ...] = ()
  source: str = ''
  test_split: str = "the dataset's test split"

  def __post_init__(self):
    if not self.class_names and self.num_classes:
      object.__setattr__(self, 'class_names', tuple(
          CLASS_NAMES.get(self.name, ())[:self.num_classes]) or tuple(
              str(c) for c in range(self.num_classes)))

  @property
  def image_shape(self) -> tuple[int, int, int]:
    return tuple(int(d) for d in self.train_images.shape[1:])

  @property
  def labelled(self) -> bool:
    return self.train_labels is not None

  @property
  def streamed(self) -> bool:
    return isinstance(self.train_images, sources.Reader)


def take(images: Images, indices: np.ndarray) -> Images:
  """images[indices], lazily for a reader."""
  if isinstance(images, sources.Reader):
    return images.subset(indices)
  return images[indices]


def _labels_at(labels: Optional[np.ndarray], indices: np.ndarray
               ) -> Optional[np.ndarray]:
  return None if labels is None else labels[indices]


def hold_out(images: Images, labels: Optional[np.ndarray], of: str = ''):
  """(train images, train labels, test images, test labels, how) of a
  split without a test split (`sources.hold_out`); `how` says so for
  data_info.json."""
  kept, held = sources.hold_out(len(images))
  how = (f'held out{of}: {len(held)} of {len(images)} images, by a fixed '
         f'permutation (seed {sources.HELD_OUT_SEED})')
  return (take(images, kept), _labels_at(labels, kept), take(images, held),
          _labels_at(labels, held), how)


def in_memory(images: Images, threads: int = 2,
              chunk: int = 1024) -> np.ndarray:
  """uint8 [N, H, W, C] of an array or a reader (read in parallel)."""
  if not isinstance(images, sources.Reader):
    return images
  starts = range(0, len(images), chunk)
  with futures.ThreadPoolExecutor(threads) as pool:
    parts = list(pool.map(lambda s: images.read(
        np.arange(s, min(s + chunk, len(images)))), starts))
  return np.concatenate(parts) if parts else np.zeros(images.shape, np.uint8)


def train_sample(data: ImageData) -> tuple[np.ndarray, Optional[np.ndarray]]:
  """(uint8 images, labels or None) of the training split in memory, as
  evaluation uses them: all of it when it fits in `TRAIN_SAMPLE_MAX` images
  and `TRAIN_SAMPLE_BYTES` as float32, else that many picked by a fixed
  permutation (seed 0, the same for every run of the data)."""
  count = len(data.train_images)
  per_image = 4 * int(np.prod(data.image_shape))
  cap = min(TRAIN_SAMPLE_MAX, max(1, TRAIN_SAMPLE_BYTES // per_image))
  if count <= cap:
    return in_memory(data.train_images), data.train_labels
  picked = np.sort(np.random.default_rng(0).permutation(count)[:cap])
  logging.info('evaluating on %d of the %d training images (a fixed '
               'sample)', cap, count)
  return (in_memory(take(data.train_images, picked)),
          _labels_at(data.train_labels, picked))


def _class_by_class(labels: Optional[np.ndarray], num_classes: int,
                    num_examples: int) -> np.ndarray:
  """Indices of the first `num_examples` examples taken class by class in
  turn: within a class the order is kept; classes are visited in label
  order, round robin (classes that run out are skipped).  Without labels,
  the first `num_examples`."""
  if labels is None:
    return np.arange(num_examples)
  by_class = [np.flatnonzero(labels == c) for c in range(num_classes)]
  picked = []
  rank = 0
  while len(picked) < num_examples:
    for indices in by_class:
      if rank < len(indices) and len(picked) < num_examples:
        picked.append(indices[rank])
    rank += 1
  return np.array(picked, dtype=np.int64)


_SPLIT_NAMES = {'train': 'training', 'test': 'test'}


def _first_of(data: ImageData, split: str, num_examples: int) -> ImageData:
  """`data` with split ('train' or 'test') cut to its first `num_examples`
  examples taken class by class (`_class_by_class`); 0 keeps everything.

  Raises:
    ConfigError: num_examples exceeds the split (named by --<split>_examples).
  """
  images, labels = getattr(data, f'{split}_images'), getattr(
      data, f'{split}_labels')
  total = len(images)
  if not num_examples or num_examples == total:
    return data
  if num_examples > total:
    raise errors.ConfigError(
        f'{split}_examples', num_examples,
        f'must not exceed the {total} {_SPLIT_NAMES[split]} examples of '
        f'{data.name}')
  picked = _class_by_class(labels, data.num_classes, num_examples)
  return dataclasses.replace(data, **{
      f'{split}_images': take(images, picked),
      f'{split}_labels': _labels_at(labels, picked)})


def subset(data: ImageData, num_examples: int) -> ImageData:
  """The first `num_examples` training examples taken class by class in turn
  (`_class_by_class`), in that round-robin order.  The test split is
  unchanged.  0 keeps everything.

  Raises:
    ConfigError: num_examples exceeds the training split.
  """
  return _first_of(data, 'train', num_examples)


def subset_test_split(data: ImageData, num_examples: int) -> ImageData:
  """The first `num_examples` test examples taken class by class in turn
  (`_class_by_class`), for an evaluation on part of the test split.  0 keeps
  everything.

  Raises:
    ConfigError: num_examples exceeds the test split.
  """
  return _first_of(data, 'test', num_examples)


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
    return data, np.zeros((0, *data.image_shape), np.uint8)
  total = len(data.train_images)
  if num_examples >= total:
    raise errors.ConfigError(
        'validation_examples', num_examples,
        f'must leave training examples: the training split has {total}')
  order = np.random.default_rng(0).permutation(total)
  held, kept = np.sort(order[:num_examples]), np.sort(order[num_examples:])
  return (dataclasses.replace(
      data, train_images=take(data.train_images, kept),
      train_labels=_labels_at(data.train_labels, kept)),
          in_memory(take(data.train_images, held)))


def transformed(data: ImageData, transform: sources.Transform) -> ImageData:
  """`data` with `transform` applied to every in-memory image."""
  if transform == sources.Transform():
    return data

  def each(images):
    return np.stack([transform(image) for image in images])
  return dataclasses.replace(data, train_images=each(data.train_images),
                             test_images=each(data.test_images))
