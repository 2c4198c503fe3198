"""The IDX file format of MNIST and Fashion-MNIST, read and checked.

An IDX file is a header and a C-order array of big-endian values:

  bytes 0-1   zero
  byte  2     the value type: 0x08 unsigned byte (the only one image
              datasets use, and the only one read here)
  byte  3     the number of dimensions n
  4 n bytes   each dimension's size, a big-endian uint32
  the rest    prod(sizes) values

Files may be gzip-compressed (`.gz`), as the datasets ship them.  Every
check failure raises `DataError` naming the file and what was wrong, so a
truncated download or a mislabelled file is one sentence, not a traceback.
"""

import gzip
import os
import struct
import zlib

import numpy as np

from tfp_vae.internal import errors

UNSIGNED_BYTE = 0x08
# The files of a dataset in this layout, by split: (images, labels).
SPLIT_FILES = {
    'train': ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte'),
    'test': ('t10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'),
}


def read(path: str) -> np.ndarray:
  """The array stored in the IDX file `path` (gzip or plain), uint8.

  Raises:
    DataError: the file is missing, not gzip when named .gz, has a bad magic
      number or value type, or holds more or fewer values than its header
      says.
  """
  try:
    with open(path, 'rb') as f:
      raw = f.read()
    if path.endswith('.gz'):
      raw = gzip.decompress(raw)
  except FileNotFoundError:
    raise errors.DataError(f'{path}: no such file') from None
  except (OSError, EOFError, zlib.error) as e:
    raise errors.DataError(
        f'{path}: not a readable gzip file ({type(e).__name__}: {e}); '
        f'the file is corrupt or truncated, download or install it again'
    ) from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
    raise errors.DataError(
        f'{path}: not an IDX file (magic number {raw[:4].hex() or "empty"}, '
        f'expected 0000 then the type and the number of dimensions)')
  value_type, ndim = raw[2], raw[3]
  if value_type != UNSIGNED_BYTE:
    raise errors.DataError(
        f'{path}: IDX value type 0x{value_type:02x} is not supported '
        f'(image datasets use 0x08, unsigned bytes)')
  header = 4 + 4 * ndim
  if ndim == 0 or len(raw) < header:
    raise errors.DataError(
        f'{path}: IDX header truncated ({len(raw)} bytes for {ndim} '
        f'dimensions)')
  shape = struct.unpack(f'>{ndim}I', raw[4:header])
  expected = int(np.prod(shape, dtype=np.int64))
  got = len(raw) - header
  if got != expected:
    raise errors.DataError(
        f'{path}: holds {got} values where its header promises '
        f'{"x".join(map(str, shape))} = {expected}; the file is '
        f'{"truncated" if got < expected else "followed by extra bytes"}')
  return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def find(directory: str, stem: str) -> str:
  """`directory/stem.gz` or `directory/stem`, whichever exists (gz first);
  the .gz path when neither does."""
  for name in (stem + '.gz', stem):
    path = os.path.join(directory, name)
    if os.path.exists(path):
      return path
  return os.path.join(directory, stem + '.gz')


def has_dataset(directory: str) -> bool:
  """Whether `directory` holds the four files of SPLIT_FILES (any may be
  gzip-compressed)."""
  return all(os.path.exists(find(directory, stem))
             for files in SPLIT_FILES.values() for stem in files)


def read_split(directory: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(images uint8 [N, H, W, C], labels int64 [N]) of `split` in
  `directory`.

  Raises:
    DataError: a file is unreadable, images are not [N, H, W] or
      [N, H, W, C], labels are not [N], or the counts differ.
  """
  image_path, label_path = (find(directory, stem)
                            for stem in SPLIT_FILES[split])
  images = read(image_path)
  labels = read(label_path)
  if images.ndim not in (3, 4):
    raise errors.DataError(
        f'{image_path}: images must have 3 dimensions (count, height, '
        f'width) or 4 (with channels); the header gives {images.ndim}')
  if labels.ndim != 1:
    raise errors.DataError(
        f'{label_path}: labels must have 1 dimension; the header gives '
        f'{labels.ndim}')
  if len(images) != len(labels):
    raise errors.DataError(
        f'{image_path} holds {len(images)} images but {label_path} holds '
        f'{len(labels)} labels; the files do not belong together')
  if images.ndim == 3:
    images = images[..., None]
  return images, labels.astype(np.int64)
