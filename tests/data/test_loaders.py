"""The embedded split is as documented; TFDS loading through mock_data."""

import dataclasses
import gzip
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfp_vae.data import images as images_lib
from tfp_vae.data import inputs
from tfp_vae.data import loaders
from tfp_vae.internal import errors


def test_mnist_5k_split_is_last_100_per_class_in_file_order(mnist_5k):
  d = mnist_5k
  assert d.train_images.shape == (4000, 28, 28, 1)
  assert d.test_images.shape == (1000, 28, 28, 1)
  assert d.train_images.dtype == np.uint8 and d.image_shape == (28, 28, 1)
  np.testing.assert_array_equal(np.bincount(d.train_labels), [400] * 10)
  np.testing.assert_array_equal(np.bincount(d.test_labels), [100] * 10)
  # Independent reading of the file: rows are pixels then the label.
  with loaders.mnist_5k_path().open('rb') as f:
    rows = np.loadtxt(gzip.open(f), delimiter=',', dtype=np.int64)
  assert rows.shape == (5000, 785)
  for c in range(10):
    idx = np.flatnonzero(rows[:, -1] == c)
    expected_test = rows[idx[-100:], :784].reshape(-1, 28, 28, 1)
    expected_train = rows[idx[:-100], :784].reshape(-1, 28, 28, 1)
    np.testing.assert_array_equal(d.test_images[d.test_labels == c],
                                  expected_test)
    np.testing.assert_array_equal(d.train_images[d.train_labels == c],
                                  expected_train)
  # No test image appears in the training set.
  train_rows = {img.tobytes() for img in d.train_images}
  assert not any(img.tobytes() in train_rows for img in d.test_images)


def test_train_dataset_batches_scaled_and_binarized(mnist_5k):
  ds = inputs.train_dataset(mnist_5k.train_images, 300, seed=0)
  batches = list(ds)
  assert len(batches) == 4000 // 300  # full batches only
  x = batches[0].numpy()
  assert x.shape == (300, 28, 28, 1) and x.dtype == np.float32
  assert 0 <= x.min() and x.max() <= 1 and 0 < x.mean() < 0.5
  b1 = next(iter(inputs.train_dataset(mnist_5k.train_images, 300, 0, True)))
  assert set(np.unique(b1.numpy())) <= {0.0, 1.0}
  # Reshuffled every epoch: the order is a function of (seed, step), so the
  # stream read from the cursor of epoch 2 differs from epoch 1's and is
  # the same every time it is read.
  cursor = tf.Variable(0, dtype=tf.int64)
  stream = inputs.train_dataset(mnist_5k.train_images, 300, 0, cursor=cursor)
  e1 = next(iter(stream)).numpy()
  cursor.assign(4000 // 300)
  e2, again = [next(iter(stream)).numpy() for _ in range(2)]
  assert not np.array_equal(e1, e2)
  np.testing.assert_array_equal(e2, again)
  # A cursor inside an epoch starts at that step's batch.
  cursor.assign(1)
  np.testing.assert_array_equal(next(iter(stream)).numpy(), batches[1].numpy())


def test_eval_images_binarized_once_with_seed(mnist_5k):
  a = inputs.eval_images(mnist_5k.test_images[:10], True, seed=1)
  b = inputs.eval_images(mnist_5k.test_images[:10], True, seed=1)
  np.testing.assert_array_equal(a, b)
  assert set(np.unique(a)) <= {0.0, 1.0}


def _prepared():
  """TFDS's mock_data mocks reading, not `is_prepared`."""
  return mock.patch.object(tfds.core.DatasetBuilder, 'is_prepared',
                           return_value=True)


def test_tfds_dataset_loads_through_mock_data(tmp_path):
  (tmp_path / 'fashion_mnist').mkdir()  # where TFDS keeps prepared data
  with tfds.testing.mock_data(num_examples=12), _prepared():
    d = loaders.load('fashion_mnist', data_dir=str(tmp_path))
  assert d.train_images.shape == (12, 28, 28, 1)
  assert d.test_images.shape == (12, 28, 28, 1)
  assert d.train_images.dtype == np.uint8 and d.num_classes == 10
  assert d.train_labels.shape == (12,)


def test_tfds_colour_dataset_through_mock_data(tmp_path):
  (tmp_path / 'cifar10').mkdir()
  with tfds.testing.mock_data(num_examples=4), _prepared():
    d = loaders.load('cifar10', data_dir=str(tmp_path))
  assert d.image_shape == (32, 32, 3)


def test_unprepared_dataset_without_download_says_how_to_fix(tmp_path):
  with pytest.raises(errors.DataError) as e:
    loaders.load('mnist', data_dir=str(tmp_path), download=False)
  message = str(e.value)
  assert "'mnist' is not on this machine (no prepared TFDS data in" in message
  assert str(tmp_path) in message and 'downloading is off' in message
  assert '--idx_dir=DIR' in message and 'network access' in message


def test_unknown_dataset_is_named():
  with pytest.raises(errors.DataError, match="unknown dataset 'not_a_set'"):
    loaders.load('not_a_set')


def test_subset_takes_classes_in_turn_in_split_order(mnist_5k):
  from tfp_vae.internal import errors  # pylint: disable=g-import-not-at-top
  small = images_lib.subset(mnist_5k, 500)
  assert small.train_images.shape == (500, 28, 28, 1)
  assert np.bincount(small.train_labels, minlength=10).tolist() == [50] * 10
  # Within a class, the first examples of the split, in order.
  first_sevens = mnist_5k.train_images[mnist_5k.train_labels == 7][:50]
  np.testing.assert_array_equal(small.train_images[small.train_labels == 7],
                                first_sevens)
  assert small.test_images is mnist_5k.test_images
  assert images_lib.subset(mnist_5k, 0) is mnist_5k
  assert len(images_lib.subset(mnist_5k, 13).train_images) == 13
  with pytest.raises(errors.ConfigError, match='train_examples'):
    images_lib.subset(mnist_5k, 4001)


def test_test_split_subset_takes_classes_in_turn_and_keeps_training(
    mnist_5k):
  small = images_lib.subset_test_split(mnist_5k, 30)
  assert small.test_images.shape == (30, 28, 28, 1)
  assert np.bincount(small.test_labels, minlength=10).tolist() == [3] * 10
  np.testing.assert_array_equal(
      small.test_images[small.test_labels == 4],
      mnist_5k.test_images[mnist_5k.test_labels == 4][:3])
  assert small.train_images is mnist_5k.train_images
  assert images_lib.subset_test_split(mnist_5k, 0) is mnist_5k
  unlabelled = images_lib.subset_test_split(
      dataclasses.replace(mnist_5k, test_labels=None), 7)
  np.testing.assert_array_equal(unlabelled.test_images,
                                mnist_5k.test_images[:7])
  with pytest.raises(errors.ConfigError,
                     match='test_examples.*must not exceed the 1000 test'):
    images_lib.subset_test_split(mnist_5k, 1001)


def test_pipelines_run_without_the_autotuner(mnist_5k):
  # An autotuned iterator made the end of an epoch wait up to 8 s for the
  # autotuner's thread (inputs._pipeline_options); Keras makes one per epoch.
  train = inputs.train_dataset(mnist_5k.train_images[:300], 100, seed=0)
  evaluation = inputs.eval_dataset(mnist_5k.test_images[:300], 100)
  for ds in (train, evaluation):
    assert ds.options().autotune.enabled is False
    assert [b.shape[0] for b in ds] == [100, 100, 100]
