"""A .npy or .npz file as a data source (the package doc): its arrays
checked for rank, dtype and range when it opens."""

import os

import numpy as np

from tfp_vae.data import sources
from tfp_vae.internal import errors

_NPZ_KEYS = {
    'train_images': ('images', 'x', 'x_train', 'train_images'),
    'train_labels': ('labels', 'y', 'y_train', 'train_labels'),
    'test_images': ('test_images', 'x_test'),
    'test_labels': ('test_labels', 'y_test'),
}


@sources.SOURCES.register
class Arrays(sources.Source):
  """A .npy or .npz file (the package doc)."""
  name = 'arrays'
  summary = '.npy images or .npz images with optional labels'

  @classmethod
  def claims(cls, path):
    return ('://' not in path and os.path.isfile(path) and
            path.lower().endswith(('.npy', '.npz')))

  def open(self, path, transform):
    if path.lower().endswith('.npy'):
      images = self._array(path, np.load(path, mmap_mode='r'))
      return sources.Opened(
          sources.Split(self._reader(images, path, transform), None), None,
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
    return sources.Opened(train, test, (), f'array file {path}', True)

  def _split(self, path, arrays, split, transform, shape) -> sources.Split:
    images = self._array(f'{path}[{split}_images]', arrays[f'{split}_images'])
    labels = arrays.get(f'{split}_labels')
    if labels is not None:
      labels = sources.check_labels(labels, len(images),
                                    f'{path}[{split}_labels]')
    return sources.Split(self._reader(images, path, transform, shape), labels)

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
  def _reader(images, path, transform, shape=None) -> sources.Reader:
    def read_one(i):
      image = np.asarray(images[i])
      if image.dtype != np.uint8:
        image = np.round(image * 255).astype(np.uint8)
      image = image[..., None] if image.ndim == 2 else image
      return image[..., :3] if image.shape[-1] == 4 else image
    return sources.Reader(len(images), read_one, lambda i: f'{path}[{i}]',
                          transform, shape)


def _range(images: np.ndarray, chunk: int = 4096) -> tuple[float, float]:
  """(min, max) of a possibly memory-mapped array, a chunk at a time."""
  low, high = np.inf, -np.inf
  for start in range(0, len(images), chunk):
    part = np.asarray(images[start:start + chunk])
    low, high = min(low, float(part.min())), max(high, float(part.max()))
  return low, high

