"""TFRecord files of tf.train.Example records as a data source (the
package doc): the records indexed when the files open, each image read at
its offset when asked for."""

import glob
import os
import struct
import threading
from typing import Any, Optional

import numpy as np

from tfp_vae.data import sources
from tfp_vae.internal import errors

_TFRECORD_IMAGE_KEYS = ('image', 'image/encoded')
_TFRECORD_LABEL_KEYS = ('label', 'image/class/label')


@sources.SOURCES.register
class TFRecords(sources.Source):
  """TFRecord files of encoded images (the package doc)."""
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

    reader = sources.Reader(
        len(index), lambda i: sources.decode(payload(i), name_of(i)),
        name_of, transform)
    return sources.Opened(
        sources.Split(reader, np.array(labels, np.int64) if all(has)
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

