"""Training speed and memory of each data source, in memory and streamed,
side by side with the IDX files in memory (the baseline) in the same run.

Writes Fashion-MNIST (the Debian package's IDX files) as a PNG folder with
class subfolders and as TFRecord shards, and a generated set of
`--large` 28x28 images (ten times Fashion-MNIST by default) as one .npy;
then runs `python -m trainers.train` on each, one at a time, and reads
images/s from its metrics.json, peak RSS up to the end of training (the
trainer's log lines, its own VmHWM), and the
seconds from start until the data is loaded and checked (the plan's log
line, just before the model is built):

  python bench/data_sources.py --epochs=2 --large=600000
"""

import io
import json
import os
import re
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_integer('epochs', 2, 'Epochs per Fashion-MNIST run.')
flags.DEFINE_integer('large', 600_000, 'Images of the generated set (0: '
                     'skip it).')
flags.DEFINE_integer('large_epochs', 1, 'Epochs per run on the generated '
                     'set.')
flags.DEFINE_list('only', [], 'Run only these variants (names below).')
flags.DEFINE_string('work_dir', '', 'Where the data and runs go (default: '
                    'a temporary folder).')
FLAGS = flags.FLAGS
FASHION = '/usr/share/datasets/fashion-mnist'


def write_sources(root: str) -> dict[str, str]:
  """The PNG folder and TFRecord shards of Fashion-MNIST's training and
  test splits."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  d = loaders.load_idx('fashion_mnist', FASHION)
  folder, records = os.path.join(root, 'png'), os.path.join(root, 'tfrecord')
  os.makedirs(records, exist_ok=True)
  for split, images, labels in (('train', d.train_images, d.train_labels),
                                ('test', d.test_images, d.test_labels)):
    writers = [tf.io.TFRecordWriter(os.path.join(
        records, f'{split}-{s:05d}-of-00004.tfrecord')) for s in range(4)]
    for i, (image, label) in enumerate(zip(images, labels)):
      where = os.path.join(folder, split, str(label))
      os.makedirs(where, exist_ok=True)
      buf = io.BytesIO()
      Image.fromarray(image[..., 0]).save(buf, 'PNG')
      with open(os.path.join(where, f'{i:05d}.png'), 'wb') as f:
        f.write(buf.getvalue())
      if split == 'train':
        writers[i % 4].write(tf.train.Example(features=tf.train.Features(
            feature={'image': tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[buf.getvalue()])), 'label': tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[int(label)]))})
                                              ).SerializeToString())
    for w in writers:
      w.close()
  return {'png': folder, 'tfrecord': os.path.join(records, 'train-*')}


def write_large(root: str, count: int) -> str:
  """`count` generated 28x28 grey images (blurred noise), as one .npy."""
  path = os.path.join(root, 'large.npy')
  out = np.lib.format.open_memmap(path, 'w+', np.uint8, (count, 28, 28))
  rng = np.random.default_rng(0)
  for start in range(0, count, 50_000):
    n = min(50_000, count - start)
    x = rng.random((n, 7, 7), np.float32)
    out[start:start + n] = (np.kron(x, np.ones((4, 4), np.float32)) *
                            255).astype(np.uint8)
  out.flush()
  return path


# Logged once the data is loaded and checked, just before the model is
# built (tfp_vae/runtime/plan.py): the time users wait before training starts.
DATA_READY = re.compile(r'plan\.py:\d+\] model ')
# The trainer's own peaks (VmHWM, tfp_vae/runtime/budget.py), read from its log:
# a parent's rusage of a child keeps the parent's peak across exec on Linux.
TRAINED = re.compile(r'peak memory after training: (\d+) MB')
OVER_RUN = re.compile(r'peak memory over the run: (\d+) MB')


def train(name: str, args: list[str], run_dir: str) -> list:
  """[variant, images/s, peak RSS MB of the trainer up to the end of
  training, over the whole run (the end-of-run evaluation included),
  seconds to data ready]."""
  model_dir = os.path.join(run_dir, name.replace(' ', '_'))
  start = time.time()
  proc = subprocess.Popen(
      [sys.executable, '-m', 'trainers.train', *args, '--plot_every=0',
       f'--model_dir={model_dir}'], cwd=benchlib.REPO,
      stderr=subprocess.PIPE, text=True)
  ready = trained = whole = None
  for line in proc.stderr:
    if ready is None and DATA_READY.search(line):
      ready = time.time() - start
    if TRAINED.search(line):
      trained = int(TRAINED.search(line).group(1))
    if OVER_RUN.search(line):
      whole = int(OVER_RUN.search(line).group(1))
  if proc.wait():
    return [name, f'failed (exit {proc.returncode})', '', '', '']
  with open(os.path.join(model_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  return [name, round(metrics['train_images_per_second']),
          trained if trained is not None else 'not logged',
          whole if whole is not None else 'not logged',
          round(ready, 1) if ready is not None else 'not logged']


def main(argv):
  del argv
  root = FLAGS.work_dir or tempfile.mkdtemp(prefix='bench_data_')
  paths = write_sources(root)
  runs = os.path.join(root, 'runs')
  fashion = [f'--epochs={FLAGS.epochs}', '--noverbose']
  variants = [
      ('idx in memory (baseline)', ['--dataset=fashion_mnist'] + fashion),
      ('png folder in memory', [f'--dataset={paths["png"]}', '--stream=off']
       + fashion),
      ('png folder streamed', [f'--dataset={paths["png"]}', '--stream=on'] +
       fashion),
      ('tfrecord in memory', [f'--dataset={paths["tfrecord"]}',
                              '--stream=off'] + fashion),
      ('tfrecord streamed', [f'--dataset={paths["tfrecord"]}',
                             '--stream=on'] + fashion),
  ]
  if FLAGS.large:
    large = write_large(root, FLAGS.large)
    common = [f'--dataset={large}', f'--epochs={FLAGS.large_epochs}',
              '--noverbose']
    variants += [(f'{FLAGS.large:,} .npy streamed', common + ['--stream=on']),
                 (f'{FLAGS.large:,} .npy in memory', common + ['--stream=off'])]
  rows = []
  for name, args in variants:
    if FLAGS.only and name not in FLAGS.only:
      continue
    rows.append(train(name, args, runs))
    print(rows[-1], flush=True)
  print(benchlib.machine_line())
  benchlib.print_table(['variant', 'train images/s',
                        'peak RSS MB, training', 'peak RSS MB, whole run',
                        's to data ready'], rows)


if __name__ == '__main__':
  app.run(main)
