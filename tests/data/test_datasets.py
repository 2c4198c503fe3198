"""tfp_vae.datasets (tfp_vae/data/datasets.py): the arrays a notebook loads."""

import numpy as np

import tfp_vae


def test_datasets_come_shuffled_once(digits):
  (x_train, y_train), (x_test, y_test) = tfp_vae.datasets.load_data(
      'mnist_5k')
  assert x_train.shape == (4000, 28, 28, 1) and x_train.dtype == np.float32
  assert x_test.shape == (1000, 28, 28, 1) and len(y_test) == 1000
  assert 0.0 <= x_train.min() and x_train.max() <= 1.0
  # Any slice is representative: every class among the first 300.
  assert np.bincount(y_train[:300], minlength=10).min() >= 15
  np.testing.assert_array_equal(digits[0], x_train[:300])
  (other, _), _ = tfp_vae.datasets.load_data('mnist_5k', seed=1)
  assert not np.array_equal(other[:300], x_train[:300])
