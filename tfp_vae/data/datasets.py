"""Named datasets and a user's data as float arrays, for Python users.

>>> from tfp_vae import datasets
>>> (x_train, y_train), (x_test, y_test) = datasets.load_data('mnist_5k')
>>> x_train.shape, x_train.dtype.name, float(x_train.max()) <= 1.0
((4000, 28, 28, 1), 'float32', True)
>>> sorted(set(y_train[:500].tolist())) == list(range(10))
True

Each split comes in a fixed shuffled order (a permutation seeded by
`seed`, the same on every call), so any slice is representative: the
files keep `mnist_5k` sorted by class.  The command line's pipeline
(`tfp_vae.data.inputs`) reads the same splits and shuffles every epoch itself.
"""

from typing import Optional

import numpy as np

from tfp_vae.data import inputs
from tfp_vae.data import loaders

Split = tuple[np.ndarray, Optional[np.ndarray]]


def load_data(name: str = 'mnist_5k', *, seed: int = 0,
              data_dir: Optional[str] = None, idx_dir: Optional[str] = None,
              download: bool = False) -> tuple[Split, Split]:
  """((x_train, y_train), (x_test, y_test)), as `keras.datasets` returns
  them: images float32 [N, H, W, C] in [0, 1], labels int64 [N] (None for
  data without labels), each split in a fixed shuffled order.

  Args:
    name: a dataset name (mnist_5k is embedded; fashion_mnist, mnist and
      other TFDS or IDX datasets as `tfp_vae.data.loaders.load_named` finds them)
      or a path (a folder of images, a .npy/.npz file, TFRecord files).
    seed: the shuffling permutation's seed.
    data_dir, idx_dir: where to look for TFDS and IDX data.
    download: let TFDS download a dataset found nowhere on this machine.

  Raises:
    DataError: the data is nowhere, or bad (one line naming the file).
  """
  data = loaders.load(name, data_dir=data_dir, download=download,
                      idx_dir=idx_dir, stream='off')
  rng = np.random.default_rng(seed)
  splits = []
  for images, labels in ((data.train_images, data.train_labels),
                         (data.test_images, data.test_labels)):
    order = rng.permutation(len(images))
    splits.append((inputs.eval_images(np.asarray(images)[order]),
                   None if labels is None else labels[order]))
  return splits[0], splits[1]
