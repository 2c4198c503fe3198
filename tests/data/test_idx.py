"""IDX files (valid, truncated, wrong magic, mismatched counts), the dataset
lookup order, the fast offline error, class names, and the real
Fashion-MNIST files where the distribution package installed them."""

import gzip
import json
import os
import socket
import struct
import time
from unittest import mock

import numpy as np
import pytest
import tensorflow_datasets as tfds

from tests.helpers import run_cli
from tfp_vae.data import images as images_lib
from tfp_vae.data import loaders
from tfp_vae.internal import errors
from tfp_vae.data import idx
from tfp_vae.evaluation import plots

FASHION_DIR = loaders.distribution_dir('fashion_mnist')
HAVE_FASHION = idx.has_dataset(FASHION_DIR)
NEEDS_FASHION = pytest.mark.skipif(
    not HAVE_FASHION,
    reason=f'Fashion-MNIST is not installed in {FASHION_DIR} (apt-get '
           f'install dataset-fashion-mnist; .ci/run does it where apt-get '
           f'exists)')


def write_idx(path, array, compress=None):
  """An IDX file of uint8 `array` (gzip when the path ends in .gz)."""
  array = np.asarray(array, np.uint8)
  raw = bytes([0, 0, idx.UNSIGNED_BYTE, array.ndim]) + struct.pack(
      f'>{array.ndim}I', *array.shape) + array.tobytes()
  if compress if compress is not None else str(path).endswith('.gz'):
    raw = gzip.compress(raw)
  with open(path, 'wb') as f:
    f.write(raw)
  return str(path)


def write_dataset(directory, train=24, test=12, shape=(28, 28), seed=0,
                  gz=True):
  """The four IDX files of a small random dataset in the MNIST layout."""
  os.makedirs(directory, exist_ok=True)
  rng = np.random.default_rng(seed)
  arrays = {}
  for split, n in (('train', train), ('test', test)):
    images = rng.integers(0, 256, (n, *shape), dtype=np.uint8)
    labels = np.arange(n) % 10
    image_stem, label_stem = idx.SPLIT_FILES[split]
    suffix = '.gz' if gz else ''
    write_idx(os.path.join(directory, image_stem + suffix), images)
    write_idx(os.path.join(directory, label_stem + suffix), labels)
    arrays[split] = (images, labels)
  return arrays


@pytest.mark.parametrize('gz', [True, False])
def test_valid_files_read_back_exactly(tmp_path, gz):
  arrays = write_dataset(tmp_path, gz=gz)
  d = loaders.load_idx('toy', str(tmp_path))
  assert d.train_images.shape == (24, 28, 28, 1) and d.image_shape == (
      28, 28, 1)
  np.testing.assert_array_equal(d.train_images[..., 0], arrays['train'][0])
  np.testing.assert_array_equal(d.test_labels, arrays['test'][1])
  assert d.num_classes == 10 and d.class_names == tuple(
      str(c) for c in range(10))
  assert d.train_labels.dtype == np.int64


def test_colour_images_keep_their_channels(tmp_path):
  write_dataset(tmp_path, shape=(8, 8, 3))
  assert loaders.load_idx('toy', str(tmp_path)).image_shape == (8, 8, 3)


def _one_file(tmp_path, raw, gz=False):
  path = str(tmp_path / ('f.gz' if gz else 'f'))
  with open(path, 'wb') as f:
    f.write(gzip.compress(raw) if gz else raw)
  return path


def _header(*shape, value_type=idx.UNSIGNED_BYTE):
  return bytes([0, 0, value_type, len(shape)]) + struct.pack(
      f'>{len(shape)}I', *shape)


@pytest.mark.parametrize('raw,message', [
    (_header(3, 2, 2) + bytes(11), 'holds 11 values where its header '
     'promises 3x2x2 = 12; the file is truncated'),
    (_header(3, 2, 2) + bytes(13), 'followed by extra bytes'),
    (b'\x08\x03\x00\x00' + bytes(20), 'not an IDX file (magic number'),
    (b'', 'not an IDX file (magic number empty'),
    (_header(4, value_type=0x0D) + bytes(16), 'value type 0x0d is not '
     'supported'),
    (bytes([0, 0, 8, 3, 0, 0]), 'IDX header truncated'),
])
def test_bad_files_are_named_with_the_problem(tmp_path, raw, message):
  for gz in (False, True):
    path = _one_file(tmp_path, raw, gz)
    with pytest.raises(errors.DataError) as e:
      idx.read(path)
    assert str(e.value).startswith(f'{path}: ') and message in str(e.value)


def test_truncated_gzip_is_named(tmp_path):
  good = gzip.compress(_header(100, 28, 28) + bytes(78400))
  path = _one_file(tmp_path, good[:len(good) // 2])
  os.rename(path, path + '.gz')
  with pytest.raises(errors.DataError, match='not a readable gzip file'):
    idx.read(path + '.gz')


def test_mismatched_counts_name_both_files(tmp_path):
  write_dataset(tmp_path)
  write_idx(tmp_path / 'train-labels-idx1-ubyte.gz', np.zeros(23))
  with pytest.raises(errors.DataError) as e:
    loaders.load_idx('toy', str(tmp_path))
  assert 'holds 24 images but' in str(e.value)
  assert 'train-labels-idx1-ubyte.gz holds 23 labels' in str(e.value)


def test_labels_with_two_dimensions_are_refused(tmp_path):
  write_dataset(tmp_path)
  write_idx(tmp_path / 't10k-labels-idx1-ubyte.gz', np.zeros((12, 2)))
  with pytest.raises(errors.DataError, match='labels must have 1 dimension'):
    loaders.load_idx('toy', str(tmp_path))


# -- lookup order ------------------------------------------------------------


@pytest.fixture
def distribution_root(tmp_path, monkeypatch):
  root = tmp_path / 'share'
  monkeypatch.setattr(loaders, 'DISTRIBUTION_ROOT', str(root))
  return root


def test_distribution_location_is_used_for_a_tfds_name(tmp_path,
                                                       distribution_root):
  write_dataset(distribution_root / 'fashion-mnist', train=30)
  d = loaders.load('fashion_mnist', data_dir=str(tmp_path / 'tfds'),
                   download=False)
  assert len(d.train_images) == 30
  assert d.class_names[0] == 'T-shirt/top' and d.class_names[9] == (
      'Ankle boot')
  assert d.source == f'IDX files in {distribution_root / "fashion-mnist"}'


def test_idx_dir_flag_wins_over_the_distribution_and_serves_any_name(
    tmp_path, distribution_root):
  write_dataset(distribution_root / 'fashion-mnist', train=30)
  write_dataset(tmp_path / 'mine', train=20)
  d = loaders.load('fashion_mnist', data_dir=str(tmp_path / 'tfds'),
                   idx_dir=str(tmp_path / 'mine'))
  assert len(d.train_images) == 20
  # A name TFDS does not know loads from IDX files too.
  d = loaders.load('kuzushiji_like', idx_dir=str(tmp_path / 'mine'))
  assert len(d.train_images) == 20 and d.name == 'kuzushiji_like'


def test_idx_dir_without_the_files_names_them(tmp_path):
  with pytest.raises(errors.DataError) as e:
    loaders.load('fashion_mnist', data_dir=str(tmp_path), idx_dir=str(tmp_path))
  assert f'--idx_dir={tmp_path} lacks' in str(e.value)
  assert 't10k-labels-idx1-ubyte.gz' in str(e.value)


def test_prepared_tfds_data_comes_before_idx_files(tmp_path,
                                                   distribution_root):
  write_dataset(distribution_root / 'fashion-mnist', train=30)
  (tmp_path / 'fashion_mnist').mkdir()  # where TFDS keeps prepared data
  with tfds.testing.mock_data(num_examples=7), mock.patch.object(
      tfds.core.DatasetBuilder, 'is_prepared', return_value=True):
    d = loaders.load('fashion_mnist', data_dir=str(tmp_path))
  assert len(d.train_images) == 7 and d.source.startswith('TFDS data in')
  assert d.class_names[0] == 'T-shirt/top'  # TFDS's own label names


def test_download_is_the_last_resort_and_goes_through_tfds(
    tmp_path, distribution_root, monkeypatch):
  # The one fault that cannot be made here is a reachable download host.
  monkeypatch.setattr(loaders, '_unreachable', lambda *a, **k: '')
  with tfds.testing.mock_data(num_examples=5):
    d = loaders.load('fashion_mnist', data_dir=str(tmp_path))
  assert len(d.train_images) == 5 and d.image_shape == (28, 28, 1)


def _closed_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.parametrize('download', [True, False])
def test_missing_dataset_fails_in_seconds_naming_both_remedies(
    tmp_path, distribution_root, monkeypatch, download):
  # A real refused connection stands for the unreachable download host.
  monkeypatch.setattr(loaders, 'DOWNLOAD_HOST', ('127.0.0.1', _closed_port()))
  start = time.perf_counter()
  with pytest.raises(errors.DataError) as e:
    loaders.load('fashion_mnist', data_dir=str(tmp_path / 'tfds'),
                 download=download)
  assert time.perf_counter() - start < 10 + loaders.DOWNLOAD_PROBE_SECONDS
  message = str(e.value)
  assert "dataset 'fashion_mnist' is not on this machine" in message
  assert 'apt-get install dataset-fashion-mnist' in message
  assert '--idx_dir' in message and '--data_dir' in message
  assert ('--nodownload' in message) != download
  assert ('is unreachable' in message) == download


def test_unknown_name_without_files_is_named(tmp_path, distribution_root):
  with pytest.raises(errors.DataError, match="unknown dataset 'not_a_set'"):
    loaders.load('not_a_set', data_dir=str(tmp_path))


@pytest.mark.slow
def test_corrupt_file_at_the_command_line_is_one_line(tmp_path):
  write_dataset(tmp_path / 'idx', train=200, test=50)
  path = tmp_path / 'idx' / 'train-images-idx3-ubyte.gz'
  raw = gzip.decompress(path.read_bytes())
  path.write_bytes(gzip.compress(raw[:-100]))
  r = run_cli('trainers.train', '--dataset=toy', f'--idx_dir={tmp_path}/idx',
              f'--model_dir={tmp_path}/run', '--epochs=1')
  assert r.returncode == 1
  errors_printed = [l for l in r.stderr.splitlines()
                    if l.startswith('error:')]
  assert errors_printed == [
      f'error: {path}: holds {200 * 784 - 100} values where its header '
      f'promises 200x28x28 = {200 * 784}; the file is truncated']
  assert 'Traceback' not in r.stderr


def test_latent_plot_names_the_classes(tmp_path):
  codes = np.random.default_rng(0).normal(size=(40, 2))
  labels = np.arange(40) % 10
  fig = plots.latent_scatter(
      codes, labels, 'title', str(tmp_path / 'latent.png'),
      images_lib.CLASS_NAMES['fashion_mnist'])
  names = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
  assert names == list(images_lib.CLASS_NAMES['fashion_mnist'])
  assert os.path.getsize(tmp_path / 'latent.png') > 1000


@NEEDS_FASHION
def test_real_fashion_mnist_files():
  d = loaders.load('fashion_mnist', data_dir='/nonexistent', download=False)
  assert d.train_images.shape == (60000, 28, 28, 1)
  assert d.test_images.shape == (10000, 28, 28, 1)
  assert np.bincount(d.train_labels).tolist() == [6000] * 10
  assert np.bincount(d.test_labels).tolist() == [1000] * 10
  assert d.class_names == images_lib.CLASS_NAMES['fashion_mnist']


@NEEDS_FASHION
@pytest.mark.slow
def test_real_fashion_mnist_trains_plots_and_exports(tmp_path):
  r = run_cli('trainers.train', '--dataset=fashion_mnist',
              '--train_examples=3000', '--epochs=1', '--plot_every=1',
              f'--model_dir={tmp_path}/run', f'--export_dir={tmp_path}/exp')
  assert r.returncode == 0, r.stderr[-3000:]
  assert f'reading IDX files in {FASHION_DIR}' in r.stderr
  with open(tmp_path / 'run' / 'data_info.json') as f:
    info = json.load(f)
  assert info['num_train'] == 3000 and info['num_test'] == 10000
  assert info['class_names'][0] == 'T-shirt/top'
  with open(tmp_path / 'run' / 'metrics.json') as f:
    metrics = json.load(f)
  assert np.isfinite(metrics['test_loss']) and metrics[
      'epochs_completed'] == 1
  for name in ('samples', 'latent', 'grid', 'reconstructions'):
    assert os.path.getsize(tmp_path / 'run' / 'plots' / f'{name}.png') > 1000
    assert os.path.exists(tmp_path / 'run' / 'plots' / 'epoch_0001' /
                          f'{name}.png')
  assert os.path.exists(tmp_path / 'exp' / '1' / 'saved_model.pb')
