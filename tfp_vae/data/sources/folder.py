"""A folder of images as a data source (the package doc): class subfolders
become labels, `train/` and `test/` subfolders the splits; every file's
header is checked when the folder opens."""

import os
from typing import Sequence

import numpy as np

from tfp_vae.data import sources
from tfp_vae.internal import errors

IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.gif', '.bmp')


@sources.SOURCES.register
class Folder(sources.Source):
  """A folder of images (the package doc)."""
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
      return sources.Opened(train, test, tuple(names),
                            f'image folder {path}')
    names = _class_dirs(path)
    return sources.Opened(self._split(path, names, transform, None), None,
                          tuple(names), f'image folder {path}')

  def _split(self, path, names, transform, shape) -> sources.Split:
    files, labels = _list_images(path, names)
    reader = sources.Reader(
        len(files), lambda i: sources.decode(_read(files[i]), files[i]),
        lambda i: files[i], transform, shape)
    _check_headers(files, reader)
    return sources.Split(reader, np.array(labels, np.int64) if names else None)


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


def _check_headers(files: Sequence[str], reader: sources.Reader) -> None:
  """Every file's header is an image's, of the first image's size unless
  the transform sets one: found before training, without decoding."""
  size = None
  for path in files:
    with open(path, 'rb') as f:
      head = f.read(HEADER_BYTES)
    shape = sources.header_shape(head, path)
    size = size or shape
    if shape != size and not reader.transform.image_size:
      raise errors.DataError(
          f'{path}: {shape[0]}x{shape[1]}, but {files[0]} is '
          f'{size[0]}x{size[1]}: pass --image_size=S to bring every image '
          f'to S x S')

