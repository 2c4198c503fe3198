"""Users' own data: a folder of images, a .npy or .npz file, TFRecord files.

`--dataset=PATH` is claimed by the first registered source (`SOURCES`)
whose `claims(path)` holds:

  folder     a directory of PNG/JPEG/GIF/BMP images; class subfolders become
             labels (sorted names, as keras.utils.image_dataset_from_directory
             does); `train/` and `test/` subfolders become the splits.
  arrays     a .npy file (images) or .npz file (`images`/`x`/`x_train`,
             optional `labels`/`y`/`y_train`, optional `test_images`/`x_test`
             and `test_labels`/`y_test`): uint8 in [0, 255] or float in
             [0, 1], [N, H, W] or [N, H, W, C].
  tfrecords  TFRecord files of tf.train.Example records with the encoded
             image under `image` (or `image/encoded`) and an optional int64
             `label` (or `image/class/label`): one file, or a glob; any path
             tf.io.gfile reads (local, gs://, ...).

A source gives one `Reader` per split: images by index, decoded (Pillow) and
shaped by the run's `Transform` (`--image_size`, `--channels`,
`--center_crop`).  The data module either reads a whole split into memory or
streams the training split from its files, batch by batch, through the same
reader.  Without a test split, a fixed test split (`HELD_OUT_FRACTION`, at
most `HELD_OUT_MAX`, permutation seed `HELD_OUT_SEED`) is held out, the same
for every run of the data.

Everything wrong with the data is a `DataError` of one line naming the file
and what is wrong; what can be known before training (unreadable headers,
mixed sizes, wrong rank or dtype, labels that do not match, empty folders)
is found when the source opens.

The package holds what every source shares (this module: the transform,
the reader, the registry and its lookup) and one module per source:
`folder`, `arrays`, `tfrecords`.

It does not import TensorFlow, except for TFRecord paths outside the local
file system (tf.io.gfile).
"""

import dataclasses
import glob
import io
import os
from typing import Callable, Optional, Sequence

import numpy as np

from tfp_vae.internal import errors
from tfp_vae.internal import registry

HELD_OUT_FRACTION = 0.1
HELD_OUT_MAX = 10_000
HELD_OUT_SEED = 0


@dataclasses.dataclass(frozen=True)
class Transform:
  """How every image is shaped: `image_size` S > 0 makes it S x S (centre
  crop to a square first with `center_crop`, else resize), `channels` 1 or
  3 converts grey and colour (0 keeps both as they come)."""
  image_size: int = 0
  channels: int = 0
  center_crop: bool = False

  def __call__(self, image: np.ndarray) -> np.ndarray:
    """uint8 [H, W, C] -> uint8 [S, S, C'] (module doc)."""
    if self.channels and image.shape[-1] != self.channels:
      image = (np.repeat(image, 3, axis=-1) if self.channels == 3 else
               np.round(image[..., :3].astype(np.float32) @ np.array(
                   [0.299, 0.587, 0.114], np.float32))[..., None].clip(
                       0, 255).astype(np.uint8))
    if not self.image_size or image.shape[:2] == (self.image_size,) * 2:
      return image
    from PIL import Image  # pylint: disable=g-import-not-at-top
    h, w = image.shape[:2]
    if self.center_crop:
      side = min(h, w)
      top, left = (h - side) // 2, (w - side) // 2
      image = image[top:top + side, left:left + side]
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    out = np.asarray(pil.resize((self.image_size, self.image_size),
                                Image.BILINEAR))
    return out[..., None] if out.ndim == 2 else out


def decode(data: bytes, name: str) -> np.ndarray:
  """An encoded image -> uint8 [H, W, 1 or 3] (alpha dropped, palettes
  expanded).

  Raises:
    DataError: `name` is not an image, or is corrupt or truncated.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      grey = image.mode in ('1', 'L', 'LA', 'I', 'I;16', 'F')
      array = np.asarray(image.convert('L' if grey else 'RGB'))
  except Exception as e:  # Pillow raises OSError, ValueError, SyntaxError...
    raise errors.DataError(f'{name}: {_why_not_an_image(e, data)}') from e
  return array[..., None] if array.ndim == 2 else array


def _why_not_an_image(e: Exception, data: bytes) -> str:
  text = str(e)
  if not data:
    return 'empty file, not an image'
  if 'cannot identify image file' in text:
    return 'not an image (PNG, JPEG, GIF or BMP) or corrupt header'
  if 'truncated' in text:
    return 'truncated image (the file ends before the image does)'
  return f'corrupt image ({text})'


def header_shape(data: bytes, name: str) -> tuple[int, int]:
  """(height, width) from an image's header, without decoding it.

  Raises:
    DataError: the header is not an image's.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  try:
    with Image.open(io.BytesIO(data)) as image:
      width, height = image.size
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(f'{name}: {_why_not_an_image(e, data)}') from e
  return height, width


class Reader:
  """One split's images by index: `read(indices)` -> uint8 [n, H, W, C].

  Thread-safe (the streamed pipeline reads in parallel).  `failure` holds
  the last DataError a read raised, for the trainer to name it.

  Args:
    count: images in the split.
    read_one: index -> uint8 [h, w, c] before the transform.
    name_of: index -> what to name in errors (a file, a record).
    transform: the run's Transform.
    shape: [H, W, C] after the transform (None: the first image's).
  """

  def __init__(self, count: int, read_one: Callable[[int], np.ndarray],
               name_of: Callable[[int], str], transform: Transform,
               shape: Optional[Sequence[int]] = None):
    self.count = count
    self._read_one = read_one
    self.name_of = name_of
    self.transform = transform
    self.failure: Optional[errors.DataError] = None
    if count == 0:
      raise errors.DataError('no images')
    self.shape_hw = (tuple(shape) if shape else
                     transform(read_one(0)).shape)

  def __len__(self) -> int:
    return self.count

  @property
  def shape(self) -> tuple[int, ...]:
    return (self.count, *self.shape_hw)

  def _image(self, i: int) -> np.ndarray:
    image = self.transform(self._read_one(i))
    if image.shape != self.shape_hw:
      h, w, c = self.shape_hw
      raise errors.DataError(
          f'{self.name_of(i)}: {image.shape[0]}x{image.shape[1]} with '
          f'{image.shape[2]} channel(s), but the first image is {h}x{w} with '
          f'{c}: pass --image_size=S (and --channels=C) to bring every '
          f'image to one shape')
    return image

  def read(self, indices) -> np.ndarray:
    """uint8 [len(indices), H, W, C]."""
    try:
      return np.stack([self._image(int(i)) for i in np.asarray(indices)]
                      ) if len(indices) else np.zeros((0, *self.shape_hw),
                                                      np.uint8)
    except errors.DataError as e:
      self.failure = e
      raise

  def subset(self, indices: np.ndarray) -> 'Reader':
    """The images at `indices` as a reader (nothing is read)."""
    indices = np.asarray(indices, np.int64)
    return Reader(len(indices), lambda i: self._read_one(int(indices[i])),
                  lambda i: self.name_of(int(indices[i])), self.transform,
                  self.shape_hw)


@dataclasses.dataclass
class Split:
  """A split as a source opens it: a reader and its labels (or None)."""
  images: Reader
  labels: Optional[np.ndarray]


@dataclasses.dataclass
class Opened:
  """What a source found at a path."""
  train: Split
  test: Optional[Split]
  class_names: tuple[str, ...]
  source: str
  # Read whole when opened (a .npz): streaming it would save nothing.
  in_memory_already: bool = False


class Source(registry.Registrable):
  """A kind of path `--dataset` takes (module doc)."""

  @classmethod
  def claims(cls, path: str) -> bool:
    raise NotImplementedError

  def open(self, path: str, transform: Transform) -> Opened:
    raise NotImplementedError


SOURCES = registry.Registry('data source', 'dataset', Source, 'folder')


def is_path(dataset: str) -> bool:
  """Whether `--dataset` names a path (or glob) rather than a dataset."""
  return ('/' in dataset or dataset.startswith('.') or '*' in dataset or
          os.path.splitext(dataset)[1].lower() in (
              '.npy', '.npz', '.tfrecord', '.tfrecords'))


def open_path(path: str, transform: Transform) -> Opened:
  """The source that claims `path`, opened.

  Raises:
    DataError: nothing is at `path`, or no source takes it, or the data is
      bad (one line naming the file).
  """
  for _, cls in SOURCES.items():
    if cls.claims(path):
      return cls().open(path, transform)
  if not _exists(path):
    raise errors.DataError(f'--dataset={path}: no such file or directory')
  raise errors.DataError(
      f'--dataset={path}: not a data source; give a folder of images, a '
      f'.npy or .npz file, or TFRecord files ({", ".join(SOURCES.names())})')


def _exists(path: str) -> bool:
  if '://' in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return bool(tf.io.gfile.glob(path))
  return bool(glob.glob(path)) or os.path.exists(path)


def hold_out(count: int) -> tuple[np.ndarray, np.ndarray]:
  """(train indices, test indices) of a split without a test split: the
  same for every run of data of that size (module doc)."""
  num_test = min(HELD_OUT_MAX, max(1, int(count * HELD_OUT_FRACTION)))
  if num_test >= count:
    raise errors.DataError(
        f'{count} image(s) cannot give both a training and a test split')
  order = np.random.default_rng(HELD_OUT_SEED).permutation(count)
  return np.sort(order[num_test:]), np.sort(order[:num_test])


def check_labels(labels: np.ndarray, count: int, where: str) -> np.ndarray:
  """Labels as int64 [count], or a DataError naming `where`."""
  labels = np.asarray(labels)
  if labels.ndim != 1 or len(labels) != count:
    raise errors.DataError(
        f'{where}: {labels.shape[0] if labels.ndim else 0} labels of shape '
        f'{list(labels.shape)} for {count} images; one integer label per '
        f'image is needed')
  if not np.issubdtype(labels.dtype, np.integer):
    if not (np.issubdtype(labels.dtype, np.floating) and
            np.all(labels == np.round(labels))):
      raise errors.DataError(f'{where}: labels are {labels.dtype}, not '
                             f'integer class numbers')
  labels = labels.astype(np.int64)
  if len(labels) and labels.min() < 0:
    raise errors.DataError(f'{where}: negative label {labels.min()}')
  return labels


# The sources, registered in this order (the first that claims a path opens
# it); they import this module, whose names are all defined by now.
# pylint: disable=wrong-import-position,g-import-not-at-top,cyclic-import
# pylint: disable=unused-import
from tfp_vae.data.sources import folder
from tfp_vae.data.sources import arrays
from tfp_vae.data.sources import tfrecords
