"""A user's own data: folders of images, .npy/.npz arrays, TFRecord files
and any TFDS image dataset, in memory and streamed, with and without labels;
bad data named in one line."""

import io
import json
import os
import shutil
import signal

import numpy as np
from PIL import Image
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tests.helpers import checkpoint_tensors, run_cli, train_in_process
from tfp_vae.config import settings as config_lib
from tfp_vae.data import images as images_lib
from tfp_vae.data import inputs
from tfp_vae.data import loaders
from tfp_vae.internal import errors
from tfp_vae.experiment import evaluate as evaluation
from tfp_vae.data import sources


def _image(label: int, size: int = 28, channels: int = 1,
           seed: int = 0) -> np.ndarray:
  """A band whose row depends on the label, with noise."""
  rng = np.random.default_rng(seed)
  x = rng.integers(0, 40, (size, size, channels)).astype(np.uint8)
  x[label * 2:label * 2 + 8] = 220
  return x


def _png(x: np.ndarray, kind: str = 'PNG') -> bytes:
  out = io.BytesIO()
  Image.fromarray(x[..., 0] if x.shape[-1] == 1 else x).save(out, kind)
  return out.getvalue()


def make_folder(root, count=60, classes=3, size=28, channels=1,
                suffix='.png'):
  for i in range(count):
    folder = os.path.join(root, f'class_{i % classes}') if classes else root
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f'{i:04d}{suffix}'), 'wb') as f:
      f.write(_png(_image(i % max(classes, 1), size, channels, i),
                   'JPEG' if suffix == '.jpg' else 'PNG'))
  return str(root)


def make_tfrecords(path, count=60, labelled=True, shards=2):
  for shard in range(shards):
    with tf.io.TFRecordWriter(f'{path}-{shard:05d}.tfrecord') as w:
      for i in range(shard, count, shards):
        feature = {'image': tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[_png(_image(i % 3, seed=i))]))}
        if labelled:
          feature['label'] = tf.train.Feature(
              int64_list=tf.train.Int64List(value=[i % 3]))
        w.write(tf.train.Example(features=tf.train.Features(
            feature=feature)).SerializeToString())
  return f'{path}-*.tfrecord'


def _arrays(count=60):
  images = np.stack([_image(i % 3, seed=i) for i in range(count)])
  return images, np.arange(count) % 3


def test_folder_class_subfolders_are_labels_and_a_test_split_is_held_out(
    tmp_path):
  d = loaders.load(make_folder(tmp_path / 'f'))
  assert d.class_names == ('class_0', 'class_1', 'class_2')
  assert d.num_classes == 3 and d.image_shape == (28, 28, 1)
  assert len(d.train_images) + len(d.test_images) == 60
  assert len(d.test_images) == 6  # 10%
  assert 'held out: 6 of 60 images' in d.test_split
  again = loaders.load(str(tmp_path / 'f'))
  np.testing.assert_array_equal(d.test_images, again.test_images)
  # The label of each image is its folder's: the band's row.
  for image, label in zip(d.train_images, d.train_labels):
    assert image[label * 2, 0, 0] == 220


def test_folder_with_train_and_test_subfolders(tmp_path):
  make_folder(tmp_path / 'f' / 'train', 30)
  make_folder(tmp_path / 'f' / 'test', 9)
  d = loaders.load(str(tmp_path / 'f'))
  assert (len(d.train_images), len(d.test_images)) == (30, 9)
  assert d.test_split == "the dataset's test split"
  assert list(d.test_labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_flat_colour_folder_without_labels(tmp_path):
  d = loaders.load(make_folder(tmp_path / 'f', classes=0, size=40, channels=3,
                               suffix='.jpg'))
  assert d.train_labels is None and d.test_labels is None
  assert d.num_classes == 0 and d.image_shape == (40, 40, 3)


@pytest.mark.parametrize('transform, shape', [
    (sources.Transform(32), (32, 32, 3)),
    (sources.Transform(32, 1), (32, 32, 1)),
    (sources.Transform(16, 3, center_crop=True), (16, 16, 3)),
])
def test_image_size_and_channels(tmp_path, transform, shape):
  d = loaders.load(make_folder(tmp_path / 'f', classes=0, size=40, channels=3),
                   transform=transform)
  assert d.image_shape == shape and d.test_images.shape[1:] == shape


def test_center_crop_keeps_the_middle():
  x = np.zeros((40, 20, 1), np.uint8)
  x[10:30] = 255  # the centre square is all white
  out = sources.Transform(20, center_crop=True)(x)
  assert out.shape == (20, 20, 1) and out.min() == 255


def test_named_datasets_take_the_transform_too(mnist_5k):
  del mnist_5k
  d = loaders.load('mnist_5k', transform=sources.Transform(32, 3))
  assert d.image_shape == (32, 32, 3) and d.num_classes == 10


def test_npy_uint8_and_float(tmp_path):
  images, _ = _arrays()
  np.save(tmp_path / 'a.npy', images[..., 0])
  np.save(tmp_path / 'b.npy', images.astype(np.float32) / 255)
  a, b = loaders.load(str(tmp_path / 'a.npy')), loaders.load(str(tmp_path /
                                                                 'b.npy'))
  assert a.image_shape == b.image_shape == (28, 28, 1)
  np.testing.assert_array_equal(a.train_images, b.train_images)
  assert a.train_labels is None


def test_npz_with_labels_and_test_split(tmp_path):
  images, labels = _arrays()
  np.savez(tmp_path / 'd.npz', x_train=images[:50], y_train=labels[:50],
           x_test=images[50:], y_test=labels[50:])
  d = loaders.load(str(tmp_path / 'd.npz'))
  assert (len(d.train_images), len(d.test_images)) == (50, 10)
  np.testing.assert_array_equal(d.test_labels, labels[50:])
  assert d.num_classes == 3


@pytest.mark.parametrize('labelled', [True, False])
def test_tfrecord_glob(tmp_path, labelled):
  d = loaders.load(make_tfrecords(str(tmp_path / 'data'), labelled=labelled))
  assert len(d.train_images) + len(d.test_images) == 60
  assert (d.train_labels is not None) == labelled
  assert '2 TFRecord file(s)' in d.source


@pytest.mark.parametrize('kind', ['folder', 'npy', 'tfrecords'])
def test_streamed_reads_what_memory_holds(tmp_path, kind):
  images, _ = _arrays()
  path = {'folder': lambda: make_folder(tmp_path / 'f'),
          'npy': lambda: np.save(tmp_path / 'a.npy', images) or str(
              tmp_path / 'a.npy'),
          'tfrecords': lambda: make_tfrecords(str(tmp_path / 'r'))}[kind]()
  memory, streamed = loaders.load(path, stream='off'), loaders.load(path,
                                                                    stream='on')
  assert streamed.streamed and not memory.streamed
  np.testing.assert_array_equal(images_lib.in_memory(streamed.train_images),
                                memory.train_images)
  # The training stream: the same batches at every step, from any cursor.
  for start in (0, 7):
    cursor = tf.Variable(start, dtype=tf.int64)
    a = list(inputs.train_dataset(memory.train_images, 6, seed=3,
                                  cursor=cursor))
    b = list(inputs.train_dataset(streamed.train_images, 6, seed=3,
                                  cursor=cursor))
    assert len(a) == len(b) > 0
    for x, y in zip(a, b):
      np.testing.assert_array_equal(x.numpy(), y.numpy())


def test_stream_on_is_refused_where_data_is_read_whole(tmp_path, mnist_5k):
  del mnist_5k
  with pytest.raises(errors.ConfigError,
                     match='dataset mnist_5k loads into memory'):
    loaders.load('mnist_5k', stream='on')
  images, labels = _arrays()
  np.savez(tmp_path / 'd.npz', images=images, labels=labels)
  with pytest.raises(errors.ConfigError, match='save its images as a .npy'):
    loaders.load(str(tmp_path / 'd.npz'), stream='on')


def test_auto_streams_past_the_threshold(tmp_path, monkeypatch):
  images, _ = _arrays()
  np.save(tmp_path / 'a.npy', images)
  assert not loaders.load(str(tmp_path / 'a.npy')).streamed
  monkeypatch.setattr(loaders, 'STREAM_BYTES', 1000)
  assert loaders.load(str(tmp_path / 'a.npy')).streamed


def test_train_sample_is_bounded_and_fixed(tmp_path, monkeypatch):
  d = loaders.load(make_folder(tmp_path / 'f'), stream='on')
  monkeypatch.setattr(images_lib, 'TRAIN_SAMPLE_MAX', 10)
  images, labels = images_lib.train_sample(d)
  again, _ = images_lib.train_sample(d)
  assert images.shape == (10, 28, 28, 1) and labels.shape == (10,)
  np.testing.assert_array_equal(images, again)


def _write(path, content: bytes):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb') as f:
    f.write(content)
  return path


def _bad_folder(root, bad_name, content):
  make_folder(root, 12)
  return _write(os.path.join(root, 'class_1', bad_name), content)


def _case_empty(tmp):
  os.makedirs(tmp / 'empty' / 'cats')
  return str(tmp / 'empty'), str(tmp / 'empty'), 'no images'


def _case_corrupt(tmp):
  bad = _bad_folder(tmp / 'f', 'bad.png', b'\x89PNG\r\n\x1a\n' + b'x' * 60)
  return str(tmp / 'f'), bad, 'corrupt image'


def _case_truncated(tmp):
  png = _png(np.random.default_rng(0).integers(0, 255, (28, 28, 1)).astype(
      np.uint8))
  bad = _bad_folder(tmp / 'f', 'cut.png', png[:len(png) // 2])
  return str(tmp / 'f'), bad, 'truncated image'


def _case_mixed(tmp):
  bad = _bad_folder(tmp / 'f', 'big.png', _png(_image(0, 30)))
  return str(tmp / 'f'), bad, 'pass --image_size=S'


def _case_not_an_image(tmp):
  bad = _bad_folder(tmp / 'f', 'notes.txt', b'hello')
  return str(tmp / 'f'), bad, 'not an image file'


def _case_npy(tmp, array, why):
  np.save(tmp / 'a.npy', array)
  return str(tmp / 'a.npy'), str(tmp / 'a.npy'), why


def _case_labels(tmp):
  images, labels = _arrays()
  np.savez(tmp / 'd.npz', images=images, labels=labels[:-1])
  return str(tmp / 'd.npz'), 'labels', '59 labels of shape [59] for 60 images'


def _case_tfrecord(tmp):
  path = make_tfrecords(str(tmp / 'r'), shards=1)
  file = path.replace('*', '00000')
  with open(file, 'rb') as f:
    content = f.read()
  _write(file, content[:-100])
  return path, file, 'truncated at byte'


BAD = {
    'empty folder': _case_empty,
    'corrupt image': _case_corrupt,
    'truncated image': _case_truncated,
    'mixed sizes': _case_mixed,
    'non-image file': _case_not_an_image,
    'npy of rank 2': lambda t: _case_npy(t, np.zeros((5, 784), np.uint8),
                                         'images of shape [5, 784]'),
    'npy of int32': lambda t: _case_npy(t, np.zeros((5, 8, 8), np.int32),
                                        'images are int32'),
    'float outside [0, 1]': lambda t: _case_npy(
        t, np.full((5, 8, 8), 255.0, np.float32), 'span [255, 255]'),
    'labels that do not match': _case_labels,
    'truncated TFRecord': _case_tfrecord,
}


@pytest.mark.parametrize('case', sorted(BAD))
def test_bad_data_is_one_line_naming_the_file(tmp_path, case):
  path, culprit, why = BAD[case](tmp_path)
  with pytest.raises(errors.DataError) as e:
    loaders.load(path)
  message = str(e.value)
  assert culprit in message and why in message, message
  assert '\n' not in message


def test_truncated_image_streamed_is_named_when_read(tmp_path):
  path, culprit, _ = _case_truncated(tmp_path)
  d = loaders.load(path, stream='on')  # its header is fine: found on reading
  with pytest.raises(errors.DataError, match='truncated image'):
    images_lib.in_memory(d.train_images)
  assert culprit in str(d.train_images.failure)


def test_a_path_that_is_nothing_is_named(tmp_path):
  with pytest.raises(errors.DataError, match='no such file or directory'):
    loaders.load(str(tmp_path / 'nothing' / 'here'))


class UnlabelledTrainOnly(tfds.core.GeneratorBasedBuilder):
  """A real TFDS dataset, built here offline: images only, train only."""
  VERSION = tfds.core.Version('1.0.0')

  def _info(self):
    return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
        {'picture': tfds.features.Image(shape=(16, 16, 1))}))

  def _split_generators(self, dl_manager):
    del dl_manager
    return {'train': self._generate_examples()}

  def _generate_examples(self):
    for i in range(40):
      yield i, {'picture': _image(i % 3, 16, seed=i)}


def test_any_tfds_image_dataset_without_labels_or_test_split(tmp_path):
  UnlabelledTrainOnly(data_dir=str(tmp_path)).download_and_prepare()
  d = loaders.load('unlabelled_train_only', data_dir=str(tmp_path),
                   download=False)
  assert d.image_shape == (16, 16, 1) and d.train_labels is None
  assert (len(d.train_images), len(d.test_images)) == (36, 4)
  assert 'held out of train: 4 of 40 images' in d.test_split


# End to end, the way users run it.

_SETTINGS = ('--epochs=2', '--batch_size=10', '--plot_every=1', '--noverbose')


def _train(args, model_dir, env=None):
  return run_cli('trainers.train', *args, *_SETTINGS,
                 f'--model_dir={model_dir}',
                 f'--export_dir={model_dir}/export', env=env)


def _train_here(args, model_dir):
  """`_train` in this process (tests/helpers.py's train_in_process): for
  what the data does, not the process; (exit code, error line)."""
  return train_in_process(*args, *_SETTINGS, f'--model_dir={model_dir}',
                          f'--export_dir={model_dir}/export')


def mnist_folder(root, count=200):
  """A PNG folder with class subfolders, written from mnist_5k."""
  digits = loaders.load('mnist_5k')
  # mnist_5k's training split is ordered by class: spread the pick over it.
  for i in np.random.default_rng(0).permutation(len(digits.train_labels))[:count]:
    folder = os.path.join(root, str(digits.train_labels[i]))
    os.makedirs(folder, exist_ok=True)
    _write(os.path.join(folder, f'{i:04d}.png'), _png(digits.train_images[i]))
  return str(root)


@pytest.mark.slow
@pytest.mark.parametrize('source', ['png-folder-streamed', 'npy',
                                    'tfrecords-streamed',
                                    'jpeg-64-colour-unlabelled'])
def test_each_source_trains_evaluates_and_exports(tmp_path, source):
  images, _ = _arrays()
  args = {
      'png-folder-streamed': lambda: [
          f'--dataset={mnist_folder(tmp_path / "f")}', '--stream=on'],
      'npy': lambda: np.save(tmp_path / 'a.npy', images) or [
          f'--dataset={tmp_path / "a.npy"}'],
      'tfrecords-streamed': lambda: [
          f'--dataset={make_tfrecords(str(tmp_path / "r"))}', '--stream=on'],
      'jpeg-64-colour-unlabelled': lambda: [
          f'--dataset={make_folder(tmp_path / "c", classes=0, size=64, channels=3, suffix=".jpg")}',
          '--model=mmd_vae'],
  }[source]()
  model_dir = str(tmp_path / 'run')
  code, line = _train_here(args, model_dir)
  assert code == 0, line
  # What trainers.evaluate calls (the command itself:
  # tests/e2e/test_evaluate_and_compare.py).
  evaluation.evaluate_run(model_dir, config_lib.EvalConfig(
      iwae_samples=4, cache_dir=str(tmp_path / 'cache')).validate())
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  assert np.isfinite(metrics['test_iwae_log_likelihood'])
  assert np.isfinite(metrics['test_classifier_frechet_distance'])
  unlabelled = source.endswith('unlabelled') or source == 'npy'
  assert ('test_knn_accuracy' in metrics) != unlabelled
  assert ('test_probes' in metrics) == unlabelled
  with open(os.path.join(model_dir, 'data_info.json')) as f:
    info = json.load(f)
  assert info['labelled'] != unlabelled
  assert info['streamed'] == source.endswith('streamed')
  shape = (64, 64, 3) if source.startswith('jpeg') else (28, 28, 1)
  assert tuple(info['image_shape']) == shape
  loaded = tf.saved_model.load(os.path.join(model_dir, 'export', '1'))
  out = loaded.signatures['serving_default'](
      images=tf.zeros((2, *shape), tf.float32))
  assert all(v.dtype == tf.float32 for v in out.values())
  assert os.path.exists(os.path.join(model_dir, 'plots', 'latent.png'))


def _weights(model_dir):
  return checkpoint_tensors(model_dir, lambda n: n.startswith('model/'))


@pytest.mark.slow
def test_streamed_run_equals_in_memory_and_resumes_exactly(tmp_path):
  folder = make_folder(tmp_path / 'f', 120)
  # 108 training images, batch 8: 13 steps an epoch; 10 steps per call
  # (the default here), so calls end at steps 10, 13, 23, 26: 10 and 23 are
  # inside an epoch.
  common = [f'--dataset={folder}', '--deterministic', '--plot_every=0',
            '--batch_size=8']
  memory, streamed, resumed = (str(tmp_path / n) for n in
                               ('memory', 'streamed', 'resumed'))
  # In this process: the data's part; the kills below need processes.
  assert _train_here(common + ['--stream=off'], memory) == (0, None)
  assert _train_here(common + ['--stream=on'], streamed) == (0, None)
  killed = str(tmp_path / 'killed')
  for model_dir, fault, code in ((resumed, 'step:10:term', 143),
                                 (killed, 'checkpoint:1', -signal.SIGKILL)):
    first = _train(common + ['--stream=on'], model_dir,
                   env={'TFP_VAE_FAULT': fault})
    assert first.returncode == code, first.stderr[-2000:]
    assert _train(common + ['--stream=on'], model_dir).returncode == 0
  reference = _weights(memory)
  for other in (streamed, resumed, killed):
    weights = _weights(other)
    assert weights.keys() == reference.keys()
    for name, value in reference.items():
      np.testing.assert_array_equal(weights[name], value, err_msg=name)


@pytest.mark.slow
def test_a_bad_image_found_while_streaming_keeps_the_checkpoint(tmp_path):
  make_folder(tmp_path / 'f' / 'train', 30)
  make_folder(tmp_path / 'f' / 'test', 6)
  culprit = str(tmp_path / 'f' / 'train' / 'class_1' / '0004.png')
  with open(culprit, 'rb') as f:
    good = f.read()
  model_dir = str(tmp_path / 'run')
  args = [f'--dataset={tmp_path / "f"}', '--stream=on']
  assert run_cli('trainers.train', *args, '--epochs=1', '--batch_size=10',
                 '--plot_every=0', '--noverbose', f'--model_dir={model_dir}'
                 ).returncode == 0
  _write(culprit, good[:len(good) // 2])  # its header still reads
  r = _train(args, model_dir)
  assert r.returncode == 1
  last = r.stderr.strip().splitlines()[-1]
  assert culprit in last and 'truncated image' in last, last
  assert 'the last checkpoint is kept' in last
  _write(culprit, good)
  again = _train(args, model_dir)
  assert again.returncode == 0, again.stderr[-2000:]
  assert 'resuming' in again.stderr and 'from epoch 1 of 2' in again.stderr


@pytest.mark.slow
@pytest.mark.parametrize('case', ['corrupt image', 'npy of rank 2',
                                  'labels that do not match'])
def test_bad_data_from_the_command_line_is_one_line_before_training(
    tmp_path, case):
  # In this process: the command's error line; the real process's is
  # checked by test_a_bad_image_found_while_streaming_keeps_the_checkpoint.
  path, culprit, why = BAD[case](tmp_path)
  code, last = _train_here([f'--dataset={path}'], str(tmp_path / 'run'))
  assert code == 1
  assert culprit in last and why in last, last
  assert not os.path.exists(os.path.join(tmp_path, 'run', 'checkpoints'))


_ANON_GROWTH = '''
import json, sys
from trainers import common
common.start()  # what the trainers do before importing TF
import tensorflow as tf
from tfp_vae.data import inputs
from tfp_vae.data import loaders

def anon_mb():
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith('RssAnon:'):
        return int(line.split()[1]) / 1024

path, stream = sys.argv[1:]
before = anon_mb()
d = loaders.load(path, stream=stream)
peak, batches = anon_mb(), 0
for batch in inputs.train_dataset(d.train_images, 100, seed=0):
  batches += 1
  if batches % 25 == 0:
    peak = max(peak, anon_mb())
print(json.dumps({'growth_mb': max(peak, anon_mb()) - before,
                  'batches': batches, 'streamed': d.streamed}))
'''


@pytest.mark.slow
def test_a_streamed_epoch_holds_the_pipeline_not_the_data(tmp_path):
  """docs/data.md: streamed, memory is bounded by the pipeline's buffers.
  A 157 MB `.npy` (200,000 images) read through a whole training epoch:
  streamed, the process's anonymous memory grows by far less than the
  data (the memory-mapped file's pages are page cache, reclaimable, not
  the process's own); in memory, the same measure grows by at least the
  data, so it would see the data held."""
  from tests.helpers import REPO  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  count = 200_000
  path = str(tmp_path / 'large.npy')
  images = np.lib.format.open_memmap(path, mode='w+', dtype=np.uint8,
                                     shape=(count, 28, 28, 1))
  rng = np.random.default_rng(0)
  for start in range(0, count, 20_000):
    images[start:start + 20_000] = rng.integers(
        0, 256, (20_000, 28, 28, 1), dtype=np.uint8)
  images.flush()
  del images
  size_mb = count * 28 * 28 / 2**20
  grown = {}
  for stream in ('on', 'off'):
    r = subprocess.run([sys.executable, '-c', _ANON_GROWTH, path, stream],
                       cwd=REPO, capture_output=True, text=True, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    grown[stream] = json.loads(r.stdout.strip().splitlines()[-1])
  # Every training batch was read: 90% of the images (10% held out).
  assert grown['on']['streamed'] and not grown['off']['streamed']
  assert grown['on']['batches'] == grown['off']['batches'] == (
      count - 10_000) // 100
  assert grown['off']['growth_mb'] > size_mb, grown
  assert grown['on']['growth_mb'] < 0.4 * size_mb, grown
