"""How close a killed-and-resumed run ends to an uninterrupted one, with and
without `--deterministic`.

tests/faults/test_kills_and_resumes.py asserts that a run killed at a step
and resumed ends with exactly the uninterrupted run's weights, under `--deterministic`.
Runs without it (the trainers' default, and `make experiment*`) are not
covered by that test; this prints what a resume gives there.  For each
model and each setting of `--deterministic` it runs `trainers.train`:

  * twice uninterrupted (A and B: how far two identical commands land
    from each other, the floor for any comparison);
  * once killed with SIGKILL at `--kill_step` (TFP_VAE_FAULT, as the tests
    do), then the same command again, which resumes from the checkpoint;

and prints, against A, the largest absolute difference of any weight or
optimizer slot in the final checkpoint and the difference of the final
test loss (metrics.json), with the number of tensors compared and the
`deterministic` each run recorded in its config.json.  A control run with
`--seed=1` (per model, at the first setting) shows that the measure sees a
difference where there is one.  Each run is a fresh process, one at a
time; TensorFlow is imported here only after the last one, to read
checkpoints.

  python bench/resume_exactness.py --epochs=3 --kill_step=50
"""

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to measure.')
flags.DEFINE_string('dataset', 'mnist_5k', 'Dataset.')
flags.DEFINE_integer('epochs', 3, 'Epochs per run.')
flags.DEFINE_integer('latent_dim', 16, 'Latent size (the latent-16 '
                     'experiment of docs/experiment.md by default).')
flags.DEFINE_integer('batch_size', 100, 'Batch.')
flags.DEFINE_integer('kill_step', 50, 'The training step after which the '
                     'interrupted run is killed (SIGKILL; mid-epoch 2 of '
                     'mnist_5k at batch 100).')
flags.DEFINE_list('deterministic', ['on', 'off'], 'Settings of '
                  '--deterministic to measure.')
FLAGS = flags.FLAGS


def _train(model: str, deterministic: str, model_dir: str,
           fault: str = '', seed: int = 0) -> int:
  env = {k: v for k, v in os.environ.items() if k != 'TFP_VAE_FAULT'}
  if fault:
    env['TFP_VAE_FAULT'] = fault
  args = [f'--model={model}', f'--dataset={FLAGS.dataset}',
          f'--epochs={FLAGS.epochs}', f'--latent_dim={FLAGS.latent_dim}',
          f'--batch_size={FLAGS.batch_size}', '--plot_every=0',
          f'--seed={seed}',
          '--noverbose', f'--model_dir={model_dir}',
          '--deterministic' if deterministic == 'on' else '--nodeterministic']
  return subprocess.run([sys.executable, '-m', 'trainers.train', *args],
                        cwd=benchlib.REPO, env=env, check=False,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode


def _state(model_dir: str) -> dict:
  """Every weight and optimizer slot of the newest checkpoint."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  path = tf.train.latest_checkpoint(os.path.join(model_dir, 'checkpoints'))
  reader = tf.train.load_checkpoint(path)
  return {n: reader.get_tensor(n) for n, _ in tf.train.list_variables(path)
          if n.startswith('optimizer/_') or n.startswith('model/')}


def _recorded(model_dir: str) -> bool:
  with open(os.path.join(model_dir, 'config.json')) as f:
    return json.load(f)['runtime']['deterministic']


def _compare(a: str, b: str) -> tuple[float, float, int]:
  """(max |weight difference|, test loss of b - a, tensors compared)."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import rundir  # pylint: disable=g-import-not-at-top
  sa, sb = _state(a), _state(b)
  assert sa.keys() == sb.keys() and sa, (sorted(sa)[:5], sorted(sb)[:5])
  worst = max(float(np.max(np.abs(np.asarray(sa[n], np.float64) -
                                  np.asarray(sb[n], np.float64))))
              for n in sa if np.asarray(sa[n]).dtype.kind == 'f')
  loss = (rundir.read_metrics(b)['test_loss'] -
          rundir.read_metrics(a)['test_loss'])
  return worst, loss, len(sa)


def main(argv):
  del argv
  started = datetime.date.today().isoformat()
  tmp = tempfile.mkdtemp(prefix='resume-exactness-')
  runs = {}
  try:
    for model in FLAGS.models:
      for det in FLAGS.deterministic:
        base = os.path.join(tmp, f'{model}-{det}')
        for name in ('a', 'b'):
          code = _train(model, det, f'{base}-{name}')
          assert code == 0, (model, det, name, code)
        killed = _train(model, det, f'{base}-resumed',
                        f'step:{FLAGS.kill_step}')
        assert killed == -signal.SIGKILL, (model, det, killed)
        code = _train(model, det, f'{base}-resumed')
        assert code == 0, (model, det, 'resume', code)
        runs[(model, det)] = base
        if det == FLAGS.deterministic[0]:
          code = _train(model, det, f'{base}-seed1', seed=1)
          assert code == 0, (model, det, 'seed 1', code)
    print(benchlib.machine_line())
    print(f'Date: {started}; {FLAGS.dataset}, latent {FLAGS.latent_dim}, '
          f'batch {FLAGS.batch_size}, {FLAGS.epochs} epochs; killed '
          f'(SIGKILL) after step {FLAGS.kill_step} and resumed.\n')
    rows = []
    for (model, det), base in runs.items():
      recorded = {_recorded(f'{base}-{n}') for n in ('a', 'b', 'resumed')}
      assert recorded == {det == 'on'}, (model, det, recorded)
      floor = _compare(f'{base}-a', f'{base}-b')
      resumed = _compare(f'{base}-a', f'{base}-resumed')
      rows.append([model, f'--deterministic={det}', f'{resumed[0]:.3g}',
                   f'{resumed[1]:+.4g}', f'{floor[0]:.3g}',
                   f'{floor[1]:+.4g}', resumed[2]])
      if os.path.isdir(f'{base}-seed1'):
        control = _compare(f'{base}-a', f'{base}-seed1')
        rows.append([model, f'control: --seed=1 against A, '
                     f'--deterministic={det}', f'{control[0]:.3g}',
                     f'{control[1]:+.4g}', '', '', control[2]])
    benchlib.print_table(
        ['model', 'setting', 'resumed vs A: max abs weight difference',
         'resumed vs A: test loss difference',
         'B vs A (both uninterrupted): max abs weight difference',
         'B vs A: test loss difference', 'tensors compared'], rows)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
