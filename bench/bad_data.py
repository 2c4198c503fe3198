"""Seconds from `python -m trainers.train` to its one-line error, for each
kind of bad data, at Fashion-MNIST's size.

Builds Fashion-MNIST's 70,000 images as a PNG folder and as TFRecord shards
(as bench/data_sources.py does; give both the same --work_dir to build them
once), then spoils a copy of each source one way at a time: one bad file
among the 60,000 training images (sorted last, so an in-memory load decodes
everything before it), an empty folder, arrays of the wrong rank, dtype or
range, labels that do not match, a truncated shard.  Each row is one fresh
trainer at its defaults (`--stream=auto`: in memory at this size) and with
`--stream=on`, timed to its exit; the table gives the seconds, the exit
code and the start of the message:

  python bench/bad_data.py --work_dir=/tmp/bench_data
"""

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position
import data_sources  # pylint: disable=g-import-not-at-top,wrong-import-position

# --work_dir (sources already there are reused) and --only (here: the
# cases' names) are data_sources.py's flags.
FLAGS = flags.FLAGS

LAST = 'zzzzz.png'  # sorts after every training image of its class folder


def _png(x: np.ndarray) -> bytes:
  from PIL import Image  # pylint: disable=g-import-not-at-top
  out = io.BytesIO()
  Image.fromarray(x).save(out, 'PNG')
  return out.getvalue()


def _sources(root: str) -> dict[str, str]:
  done = os.path.join(root, 'sources.done')
  if not os.path.exists(done):
    paths = data_sources.write_sources(root)
    with open(done, 'w') as f:
      f.write('\n'.join(f'{k}={v}' for k, v in paths.items()))
  with open(done) as f:
    return dict(line.split('=', 1) for line in f.read().splitlines())


class _Spoiled:
  """Context: a file added to (or an edit of) a source, undone after."""

  def __init__(self, path: str, content: bytes | None = None,
               truncate_to: int | None = None):
    self.path, self.content, self.truncate_to = path, content, truncate_to
    self.saved = None

  def __enter__(self):
    if self.truncate_to is not None:
      with open(self.path, 'rb') as f:
        self.saved = f.read()
      with open(self.path, 'wb') as f:
        f.write(self.saved[:self.truncate_to])
    else:
      with open(self.path, 'wb') as f:
        f.write(self.content)
    return self

  def __exit__(self, *exc):
    if self.saved is not None:
      with open(self.path, 'wb') as f:
        f.write(self.saved)
    else:
      os.remove(self.path)


def _arrays(root: str, name: str, **arrays) -> str:
  path = os.path.join(root, name)
  if name.endswith('.npz'):
    np.savez(path, **arrays)
  else:
    np.save(path, arrays['images'])
  return path


def cases(root: str, paths: dict[str, str]):
  """(name, dataset path, context that spoils it) for each case."""
  import contextlib  # pylint: disable=g-import-not-at-top
  png = paths['png']
  last_class = os.path.join(png, 'train', '9')
  good = np.zeros((28, 28), np.uint8)
  good_png = _png(good)
  shard = sorted(p for p in os.listdir(os.path.dirname(paths['tfrecord']))
                 if p.startswith('train-'))[-1]
  shard = os.path.join(os.path.dirname(paths['tfrecord']), shard)
  empty = os.path.join(root, 'empty')
  os.makedirs(empty, exist_ok=True)
  n = 60_000
  return [
      ('corrupt image', png, _Spoiled(os.path.join(last_class, LAST),
                                      b'\x89PNG\r\n\x1a\nnot really')),
      ('truncated image', png, _Spoiled(os.path.join(last_class, LAST),
                                        good_png[:len(good_png) // 2])),
      ('mixed sizes', png, _Spoiled(os.path.join(last_class, LAST),
                                    _png(np.zeros((32, 32), np.uint8)))),
      ('non-image file', png, _Spoiled(os.path.join(last_class, 'notes.txt'),
                                       b'not an image')),
      ('empty folder', empty, contextlib.nullcontext()),
      ('npy of rank 2', _arrays(root, 'rank2.npy', images=np.zeros(
          (n, 784), np.uint8)), contextlib.nullcontext()),
      ('npy of int32', _arrays(root, 'int32.npy', images=np.zeros(
          (n, 28, 28), np.int32)), contextlib.nullcontext()),
      ('float outside [0, 1]', _arrays(root, 'float.npy', images=np.full(
          (n, 28, 28), 255.0, np.float32)), contextlib.nullcontext()),
      ('labels that do not match', _arrays(
          root, 'labels.npz', images=np.zeros((n, 28, 28), np.uint8),
          labels=np.zeros(n - 1, np.int64)), contextlib.nullcontext()),
      ('truncated TFRecord', paths['tfrecord'], _Spoiled(
          shard, truncate_to=os.path.getsize(shard) - 100)),
  ]


def time_to_error(dataset: str, stream: str, run_dir: str) -> list:
  """[seconds, exit code, the error line's start]."""
  shutil.rmtree(run_dir, ignore_errors=True)
  start = time.perf_counter()
  proc = subprocess.run(
      [sys.executable, '-m', 'trainers.train', f'--dataset={dataset}',
       f'--stream={stream}', '--epochs=1', '--plot_every=0', '--noverbose',
       f'--model_dir={run_dir}'], cwd=benchlib.REPO, capture_output=True,
      text=True, check=False)
  seconds = time.perf_counter() - start
  last = (proc.stderr.strip().splitlines() or [''])[-1]
  last = last.replace(os.path.dirname(dataset.rstrip('/*')), '...')
  return [f'{seconds:.1f}', proc.returncode, last[:110]]


def main(argv):
  del argv
  root = FLAGS.work_dir or tempfile.mkdtemp(prefix='bench_data_')
  paths = _sources(root)
  rows = []
  for name, dataset, spoiled in cases(root, paths):
    if FLAGS.only and name not in FLAGS.only:
      continue
    with spoiled:
      for stream in ('auto', 'on'):
        rows.append([name, stream, *time_to_error(
            dataset, stream, os.path.join(root, 'runs', 'bad'))])
        print(rows[-1], flush=True)
  print(benchlib.machine_line())
  benchlib.print_table(['bad data', '--stream', 's to the error',
                        'exit code', 'the error (paths shortened)'], rows)


if __name__ == '__main__':
  app.run(main)
