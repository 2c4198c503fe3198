"""Training throughput with 1 and 2 replicas on this machine.

Each configuration runs `python -m trainers.train` in fresh processes (the CPU
can only be split before TensorFlow initialises) on mnist_5k and reads
train_images_per_second from metrics.json:

  default       one process, one device;
  mirrored x2   one process, MirroredStrategy over 2 logical CPU devices;
  2 workers     two processes, MultiWorkerMirroredStrategy over localhost.

Each configuration runs at every `--steps_per_execution` value (default: the
trainer's default, 10, and 1), interleaved, `--repeats` times.

  python bench/replica_throughput.py --epochs=6
"""

import json
import os
import socket
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

flags.DEFINE_integer('epochs', 6, 'Epochs per run (the first is not timed).')
flags.DEFINE_integer('batch_size', 100, 'Global batch.')
flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to measure.')
flags.DEFINE_list('steps_per_execution', ['10', '1'],
                  'Steps per call to measure; the first is the baseline.')
flags.DEFINE_integer('repeats', 2, 'Interleaved repeats of each run.')
FLAGS = flags.FLAGS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


def _run(model: str, extra: list[str], workers: int = 1) -> float:
  with tempfile.TemporaryDirectory() as tmp:
    args = [sys.executable, '-m', 'trainers.train', f'--model={model}',
            f'--model_dir={tmp}/run', f'--epochs={FLAGS.epochs}',
            f'--batch_size={FLAGS.batch_size}', '--plot_every=0',
            '--noverbose', *extra]
    envs = [dict(os.environ)]
    if workers > 1:
      hosts = [f'localhost:{_port()}' for _ in range(workers)]
      envs = [dict(os.environ, TF_CONFIG=json.dumps(
          {'cluster': {'worker': hosts},
           'task': {'type': 'worker', 'index': i}})) for i in range(workers)]
    procs = [subprocess.Popen(args, cwd=REPO, env=e,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for e in envs]
    for p in procs:
      _, err = p.communicate()
      if p.returncode:
        raise RuntimeError(err[-2000:])
    with open(f'{tmp}/run/metrics.json') as f:
      return json.load(f)['train_images_per_second']


def main(_):
  import statistics  # pylint: disable=g-import-not-at-top
  configs = [('default (1 replica)', ['--strategy=default'], 1),
             ('mirrored, 2 logical CPUs',
              ['--strategy=mirrored', '--cpu_replicas=2'], 1),
             ('multi_worker, 2 processes', ['--strategy=multi_worker'], 2)]
  spes = [int(v) for v in FLAGS.steps_per_execution]
  import benchlib  # pylint: disable=g-import-not-at-top
  print('\n' + benchlib.machine_line())
  print(f'mnist_5k, conv, latent 2, global batch {FLAGS.batch_size}, '
        f'{FLAGS.epochs} epochs (first not timed), {os.cpu_count()} CPU '
        f'cores, {FLAGS.repeats} interleaved repeats')
  print('| model | configuration | steps per call | train img/s median '
        '[runs] | vs steps per call ' + str(spes[0]) + ' |')
  print('|---|---|---|---|---|')
  for model in FLAGS.models:
    for label, extra, workers in configs:
      runs = {spe: [] for spe in spes}
      for repeat in range(FLAGS.repeats):
        order = spes if repeat % 2 == 0 else spes[::-1]
        for spe in order:
          runs[spe].append(_run(
              model, extra + [f'--steps_per_execution={spe}'], workers))
      base = statistics.median(runs[spes[0]])
      for spe in spes:
        ips = statistics.median(runs[spe])
        each = ', '.join(f'{v:.0f}' for v in runs[spe])
        print(f'| {model} | {label} | {spe} | {ips:.0f} [{each}] | '
              f'{ips / base:.2f} |', flush=True)


if __name__ == '__main__':
  app.run(main)
