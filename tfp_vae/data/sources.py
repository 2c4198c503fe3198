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

This module does not import TensorFlow, except for TFRecord paths outside
the local file system (tf.io.gfile).
"""

import dataclasses
import glob
import io
import os
import struct
import threading
from typing import Any, Callable, Optional, Sequence

import numpy as np

from tfp_vae.internal import errors
from tfp_vae.internal import registry

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.bmp')
HELD_OUT_FRACTION = 0.1
HELD_OUT_MAX = 10_000
HELD_OUT_SEED = 0
_NPZ_KEYS = {
    'train_images': ('images', 'x', 'x_train', 'train_images'),
    'train_labels': ('labels', 'y', 'y_train', 'train_labels'),
    'test_images': ('test_images', 'x_test'),
    'test_labels': ('test_labels', 'y_test'),
}
_TFRECORD_IMAGE_KEYS = ('image', 'image/encoded')
_TFRECORD_LABEL_KEYS = ('label', 'image/class/label')


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


@SOURCES.register
class Folder(Source):
  """A folder of images (module doc)."""
  name = 'folder'
  summary = 'a directory of images; class subfolders become labels'

  @classmethod
  def claims(cls, path):
    return '://' not in path and os.path.isdir(path)

  def open(self, path, transform):
    splits = [os.path.join(path, s) for s in ('train', 'test')]
    if all(os.path.isdir(s) for s in splits):
      names = sorted(set(_class_dirs(splits[0])) | set(_class_dirs(
          splits[1])))
      train = self._split(splits[0], names, transform, None)
      test = self._split(splits[1], names, transform, train.images.shape_hw)
      return Opened(train, test, tuple(names), f'image folder {path}')
    names = _class_dirs(path)
    return Opened(self._split(path, names, transform, None), None,
                  tuple(names), f'image folder {path}')

  def _split(self, path, names, transform, shape) -> Split:
    files, labels = _list_images(path, names)
    reader = Reader(len(files), lambda i: decode(_read(files[i]), files[i]),
                    lambda i: files[i], transform, shape)
    _check_headers(files, reader)
    return Split(reader, np.array(labels, np.int64) if names else None)


def _class_dirs(path: str) -> list[str]:
  return sorted(e.name for e in os.scandir(path) if e.is_dir() and
                not e.name.startswith('.'))


def _list_images(path: str, names: Sequence[str]
                 ) -> tuple[list[str], list[int]]:
  """Image files under `path` (in class subfolders when `names`), sorted,
  with their labels.  Raises DataError for a folder without images."""
  files, labels = [], []
  for label, folder in (enumerate(names) if names else [(0, '')]):
    where = os.path.join(path, folder)
    if not os.path.isdir(where):
      continue  # a class the other split has
    found = sorted(os.path.join(where, f) for f in os.listdir(where)
                   if not f.startswith('.') and
                   os.path.isfile(os.path.join(where, f)))
    odd = [f for f in found if not f.lower().endswith(IMAGE_SUFFIXES)]
    if odd:
      raise errors.DataError(
          f'{odd[0]}: not an image file ({", ".join(IMAGE_SUFFIXES)}); '
          f'move it out of {where}')
    files += found
    labels += [label] * len(found)
  if not files:
    raise errors.DataError(
        f'{path}: no images ({", ".join(IMAGE_SUFFIXES)}) in it' +
        (' or in its class subfolders' if names else ''))
  return files, labels


def _read(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


HEADER_BYTES = 64 * 1024


def _check_headers(files: Sequence[str], reader: Reader) -> None:
  """Every file's header is an image's, of the first image's size unless
  the transform sets one: found before training, without decoding."""
  size = None
  for path in files:
    with open(path, 'rb') as f:
      head = f.read(HEADER_BYTES)
    shape = header_shape(head, path)
    size = size or shape
    if shape != size and not reader.transform.image_size:
      raise errors.DataError(
          f'{path}: {shape[0]}x{shape[1]}, but {files[0]} is '
          f'{size[0]}x{size[1]}: pass --image_size=S to bring every image '
          f'to S x S')


@SOURCES.register
class Arrays(Source):
  """A .npy or .npz file (module doc)."""
  name = 'arrays'
  summary = '.npy images or .npz images with optional labels'

  @classmethod
  def claims(cls, path):
    return ('://' not in path and os.path.isfile(path) and
            path.lower().endswith(('.npy', '.npz')))

  def open(self, path, transform):
    if path.lower().endswith('.npy'):
      images = self._array(path, np.load(path, mmap_mode='r'))
      return Opened(Split(self._reader(images, path, transform), None), None,
                    (), f'array file {path}')
    with np.load(path) as npz:
      arrays = {k: npz[n] for k, names in _NPZ_KEYS.items() for n in names
                if n in npz.files}
      if 'train_images' not in arrays and len(npz.files) == 1:
        arrays['train_images'] = npz[npz.files[0]]
      if 'train_images' not in arrays:
        raise errors.DataError(
            f'{path}: no images array; name it one of '
            f'{list(_NPZ_KEYS["train_images"])} (found {npz.files})')
    train = self._split(path, arrays, 'train', transform, None)
    test = (self._split(path, arrays, 'test', transform,
                        train.images.shape_hw)
            if 'test_images' in arrays else None)
    if test is not None and (train.labels is None) != (test.labels is None):
      raise errors.DataError(f'{path}: labels for one split only; give '
                             f'both or neither')
    return Opened(train, test, (), f'array file {path}', True)

  def _split(self, path, arrays, split, transform, shape) -> Split:
    images = self._array(f'{path}[{split}_images]', arrays[f'{split}_images'])
    labels = arrays.get(f'{split}_labels')
    if labels is not None:
      labels = check_labels(labels, len(images), f'{path}[{split}_labels]')
    return Split(self._reader(images, path, transform, shape), labels)

  @staticmethod
  def _array(where: str, images: np.ndarray) -> np.ndarray:
    if images.ndim not in (3, 4) or (images.ndim == 4 and
                                     images.shape[-1] not in (1, 3, 4)):
      raise errors.DataError(
          f'{where}: images of shape {list(images.shape)}; [N, H, W] or '
          f'[N, H, W, C] with C 1, 3 or 4 is needed')
    if images.dtype != np.uint8 and not np.issubdtype(images.dtype,
                                                      np.floating):
      raise errors.DataError(
          f'{where}: images are {images.dtype}; uint8 in [0, 255] or float '
          f'in [0, 1] is needed')
    if images.dtype != np.uint8:
      low, high = _range(images)
      if low < 0 or high > 1:
        raise errors.DataError(
            f'{where}: float images span [{low:g}, {high:g}], not [0, 1]; '
            f'divide by 255 or store uint8')
    return images

  @staticmethod
  def _reader(images, path, transform, shape=None) -> Reader:
    def read_one(i):
      image = np.asarray(images[i])
      if image.dtype != np.uint8:
        image = np.round(image * 255).astype(np.uint8)
      image = image[..., None] if image.ndim == 2 else image
      return image[..., :3] if image.shape[-1] == 4 else image
    return Reader(len(images), read_one, lambda i: f'{path}[{i}]',
                  transform, shape)


def _range(images: np.ndarray, chunk: int = 4096) -> tuple[float, float]:
  """(min, max) of a possibly memory-mapped array, a chunk at a time."""
  low, high = np.inf, -np.inf
  for start in range(0, len(images), chunk):
    part = np.asarray(images[start:start + chunk])
    low, high = min(low, float(part.min())), max(high, float(part.max()))
  return low, high


@SOURCES.register
class TFRecords(Source):
  """TFRecord files of encoded images (module doc)."""
  name = 'tfrecords'
  summary = 'TFRecord files (a glob) of Examples with an encoded image'

  @classmethod
  def claims(cls, path):
    lower = path.lower()
    return ('.tfrecord' in lower or '*' in path) and bool(_glob(path))

  def open(self, path, transform):
    files = sorted(_glob(path))
    index, labels = [], []
    for file in files:
      for offset, length, label in _scan(file):
        index.append((file, offset, length))
        labels.append(label)
    if not index:
      raise errors.DataError(f'{path}: no records in {len(files)} file(s)')
    has = [lab is not None for lab in labels]
    if any(has) and not all(has):
      first = index[has.index(False)]
      raise errors.DataError(
          f'{first[0]}: record at byte {first[1]} has no label, others do')
    handles = _Handles()

    def payload(i):
      file, offset, length = index[i]
      return _image_bytes(handles.pread(file, offset, length), file, offset)

    def name_of(i):
      return f'{index[i][0]} (record at byte {index[i][1]})'

    reader = Reader(len(index), lambda i: decode(payload(i), name_of(i)),
                    name_of, transform)
    return Opened(Split(reader, np.array(labels, np.int64) if all(has)
                        else None), None, (),
                  f'{len(files)} TFRecord file(s) {path}')


def _glob(path: str) -> list[str]:
  if '://' in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile.glob(path)
  return [p for p in glob.glob(path) if os.path.isfile(p)]


def _open(path: str):
  if '://' in path:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.io.gfile.GFile(path, 'rb')
  return open(path, 'rb')


class _Handles:
  """One open file per (thread, path): reads at offsets run in parallel."""

  def __init__(self):
    self._local = threading.local()

  def pread(self, path: str, offset: int, length: int) -> bytes:
    files = self._local.__dict__.setdefault('files', {})
    if path not in files:
      files[path] = _open(path)
    f = files[path]
    f.seek(offset)
    return f.read(length)


def _scan(path: str):
  """(offset, length, label or None) of each record in a TFRecord file.

  Raises:
    DataError: the file is not TFRecord or is truncated.
  """
  with _open(path) as f:
    offset = 0
    while True:
      head = f.read(12)
      if not head:
        return
      if len(head) < 12:
        raise errors.DataError(f'{path}: truncated at byte {offset} (a '
                               f'record header is cut off)')
      (length,) = struct.unpack('<Q', head[:8])
      data = f.read(length)
      crc = f.read(4)
      if len(data) < length or len(crc) < 4:
        raise errors.DataError(
            f'{path}: truncated at byte {offset} (the record says {length} '
            f'bytes; the file ends first), or not a TFRecord file')
      yield offset + 12, length, _label(data, path, offset)
      offset += 16 + length


def _example(data: bytes, path: str, offset: int) -> Any:
  from tensorflow.core.example import example_pb2  # pylint: disable=g-import-not-at-top
  try:
    return example_pb2.Example.FromString(data).features.feature
  except Exception as e:  # pylint: disable=broad-except
    raise errors.DataError(f'{path}: record at byte {offset} is not a '
                           f'tf.train.Example ({e})') from e


def _label(data: bytes, path: str, offset: int) -> Optional[int]:
  feature = _example(data, path, offset)
  for key in _TFRECORD_LABEL_KEYS:
    if key in feature and feature[key].int64_list.value:
      return int(feature[key].int64_list.value[0])
  if not any(k in feature for k in _TFRECORD_IMAGE_KEYS):
    raise errors.DataError(
        f'{path}: record at byte {offset} has no image feature '
        f'({" or ".join(_TFRECORD_IMAGE_KEYS)}); it has {sorted(feature)}')
  return None


def _image_bytes(data: bytes, path: str, offset: int) -> bytes:
  feature = _example(data, path, offset)
  for key in _TFRECORD_IMAGE_KEYS:
    if key in feature and feature[key].bytes_list.value:
      return feature[key].bytes_list.value[0]
  raise errors.DataError(
      f'{path}: record at byte {offset} has no image bytes under '
      f'{" or ".join(_TFRECORD_IMAGE_KEYS)}')
