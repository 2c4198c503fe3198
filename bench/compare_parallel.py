"""Wall time of a comparison with its runs one after another against k at
once (`trainers.compare --parallel`).

Each setting runs the whole `python -m trainers.compare` command in a fresh
output folder (training, evaluation, figures, report), interleaved over
`--repeats`, and reads the per-run seconds it records in timing.json:

  python bench/compare_parallel.py --parallel=1,2 --seeds=2 --epochs=10
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_list('parallel', ['1', '2'], 'Settings of --parallel; the '
                  'first is the baseline.')
flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'The compared members.')
flags.DEFINE_integer('seeds', 2, 'Seeds per member.')
flags.DEFINE_integer('epochs', 10, 'Epochs per run.')
flags.DEFINE_string('dataset', 'mnist_5k', 'Dataset.')
flags.DEFINE_integer('train_examples', 0, 'Training images per run (0: all '
                     'of the dataset).')
flags.DEFINE_integer('eval_iwae_samples', 100, 'k of the IWAE estimate.')
flags.DEFINE_integer('repeats', 1, 'Interleaved repeats of each setting.')
FLAGS = flags.FLAGS


def _once(parallel: int, out: str) -> dict:
  start = time.perf_counter()
  subprocess.run(
      [sys.executable, '-m', 'trainers.compare', f'--output_dir={out}',
       f'--models={",".join(FLAGS.models)}', f'--seeds={FLAGS.seeds}',
       f'--epochs={FLAGS.epochs}', f'--dataset={FLAGS.dataset}',
       f'--eval_iwae_samples={FLAGS.eval_iwae_samples}',
       f'--train_examples={FLAGS.train_examples}',
       f'--parallel={parallel}', '--noprogress'], cwd=benchlib.REPO,
      check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  wall = time.perf_counter() - start
  with open(os.path.join(out, 'timing.json')) as f:
    timing = json.load(f)
  runs = [s for by_seed in timing['runs'].values() for s in by_seed.values()]
  return {'wall': wall, 'runs': runs}


def main(argv):
  del argv
  print(benchlib.machine_line())
  settings = [int(p) for p in FLAGS.parallel]
  results = {p: [] for p in settings}
  tmp = tempfile.mkdtemp(prefix='compare-parallel-')
  try:
    for repeat in range(FLAGS.repeats):
      for p in settings:
        out = os.path.join(tmp, f'p{p}-r{repeat}')
        results[p].append(_once(p, out))
        shutil.rmtree(out, ignore_errors=True)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  n = len(FLAGS.models) * FLAGS.seeds
  base = min(r['wall'] for r in results[settings[0]])
  rows = []
  for p in settings:
    walls = [r['wall'] for r in results[p]]
    runs = [s for r in results[p] for s in r['runs']]
    rows.append([p, f'{min(walls):.0f} [{", ".join(f"{w:.0f}" for w in walls)}]',
                 f'{sum(runs) / len(runs):.0f} [{min(runs):.0f}, '
                 f'{max(runs):.0f}]', f'{base / min(walls):.2f}'])
  print(f'\ntrainers.compare, {n} runs ({",".join(FLAGS.models)} x '
        f'{FLAGS.seeds} seeds) of {FLAGS.epochs} epochs on {FLAGS.dataset}, '
        f'IWAE k={FLAGS.eval_iwae_samples}')
  benchlib.print_table(['--parallel', 'whole command s [repeats]',
                        'per run s, mean [min, max]',
                        f'speed vs --parallel={settings[0]}'], rows)


if __name__ == '__main__':
  app.run(main)
