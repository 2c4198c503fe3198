"""trainers.evaluate and trainers.compare end to end, on tiny budgets."""

import json
import os
import re

import numpy as np
import pytest

from tests.helpers import run_cli
from tfp_vae import config as config_lib
from tfp_vae import report
from tfp_vae import rundir
from tfp_vae import training


@pytest.fixture(scope='module')
def tiny_run(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp('eval') / 'mmd')
  training.run(config_lib.TrainConfig.create(
      model='mmd_vae', epochs=2, batch_size=100, train_examples=300,
      plot_every=0, model_dir=model_dir, verbose=False))
  return model_dir


def test_history_has_one_record_per_epoch_with_test_metrics(tiny_run):
  history = rundir.read_history(tiny_run)
  assert [r['epoch'] for r in history] == [1, 2]
  for record in history:
    for key in ('train_loss', 'train_distortion', 'train_mmd',
                'test_reconstruction_nll', 'test_mmd_to_prior', 'seconds'):
      assert np.isfinite(record[key]), key


@pytest.mark.slow
def test_evaluate_cli_adds_metrics_and_keeps_the_trainers(tiny_run, tmp_path):
  with open(os.path.join(tiny_run, 'metrics.json')) as f:
    before = json.load(f)
  result = run_cli('trainers.evaluate', f'--model_dir={tiny_run}',
                   '--eval_iwae_samples=4', f'--cache_dir={tmp_path}')
  assert result.returncode == 0, result.stderr
  with open(os.path.join(tiny_run, 'metrics.json')) as f:
    after = json.load(f)
  assert after['train_images_per_second'] == before['train_images_per_second']
  for key in ('test_iwae_log_likelihood', 'test_knn_accuracy',
              'test_logreg_accuracy', 'test_active_units',
              'test_classifier_frechet_distance',
              'train_test_classifier_frechet_distance'):
    assert np.isfinite(after[key]), key
  assert after['test_iwae_samples'] == 4
  assert after['test_iwae_proposal_scale'] == 0.1
  # Log-likelihood bound below the reconstruction term's negative plus the
  # prior's: a sanity range, not a tight check.
  assert after['test_iwae_log_likelihood'] < 0
  assert 0.1 <= after['test_knn_accuracy'] <= 1.0
  assert len(list(tmp_path.glob('feature_classifier-*.weights.h5'))) == 1


@pytest.mark.parametrize('args,message', [
    (('--model_dir={missing}',), 'holds no readable training run'),
    (('--model_dir={run}', '--eval_iwae_samples=-1'), '--eval_iwae_samples must be >= 0'),
    (('--model_dir={run}', '--proposal_scale=0'), '--proposal_scale must be a positive'),
])
@pytest.mark.slow
def test_evaluate_cli_bad_input_is_one_clear_line(tiny_run, tmp_path, args,
                                                  message):
  args = [a.format(missing=tmp_path / 'nothing', run=tiny_run) for a in args]
  result = run_cli('trainers.evaluate', *args)
  assert result.returncode == 1
  assert message in result.stderr
  assert 'Traceback' not in result.stderr


@pytest.mark.slow
def test_compare_writes_report_with_every_figure_and_both_models(tmp_path):
  """The defaults: the sources' pair at one seed."""
  out = str(tmp_path / 'compare')
  result = run_cli('trainers.compare', f'--output_dir={out}', '--epochs=2',
                   '--train_examples=200', '--batch_size=50',
                   '--eval_iwae_samples=3')
  assert result.returncode == 0, result.stderr
  with open(os.path.join(out, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['seeds'] == [0]
  assert set(metrics['models']) == {'vae', 'mmd_vae'}
  for name, model in metrics['models'].items():
    run = model['seeds']['0']
    for key in ('test_iwae_log_likelihood', 'test_reconstruction_nll',
                'test_mmd_to_prior', 'test_active_units',
                'test_knn_accuracy', 'test_logreg_accuracy',
                'test_classifier_frechet_distance', 'epochs_completed'):
      assert key in run, (name, key)
      # One seed: the mean is that seed's value, and there is no interval.
      assert model['summary'][key]['mean'] == run[key]
      assert model['summary'][key]['low'] is None
    assert run['epochs_completed'] == 2
    assert model['runs'] == {'0': os.path.join(out, name)}
  assert 'test_neg_elbo' in metrics['models']['vae']['seeds']['0']
  (pair,) = metrics['differences']
  assert (pair['a'], pair['b']) == ('vae', 'mmd_vae')
  assert pair['metrics']['test_knn_accuracy']['verdict'] == (
      '1 seed: no interval')
  with open(os.path.join(out, 'report.html')) as f:
    page = f.read()
  embedded = set(re.findall(r'alt="([\w.]+\.png)"', page))
  expected = {f'{m}_{kind}.png' for m in ('vae', 'mmd_vae')
              for kind in ('samples', 'latent', 'grid', 'reconstructions',
                           'interpolations')} | {'training_curves.png'}
  assert embedded == expected
  assert page.count('src="data:image/png;base64,') == len(expected)
  for name in expected:
    assert os.path.getsize(os.path.join(out, 'figures', name)) > 1000
  for key, _, _ in report.METRICS[:9]:
    if key != 'test_rate' and key != 'test_neg_elbo':
      assert f'<code>{key}</code>' in page, key
  assert 'class="best"' not in page  # one seed decides nothing
  assert '1 seed: no interval' in page
  # The whole-run progress reached its end.
  assert 'compare: 6/6 steps (100%)' in result.stderr
  assert 'test_iwae_log_likelihood' in result.stdout
  # Run again: the runs and their evaluations are reused, not redone.
  again = run_cli('trainers.compare', f'--output_dir={out}', '--epochs=2',
                  '--train_examples=200', '--batch_size=50',
                  '--eval_iwae_samples=3')
  assert again.returncode == 0, again.stderr
  assert 'evaluating' not in again.stderr and 'not training again' in (
      again.stderr)
  with open(os.path.join(out, 'metrics.json')) as f:
    assert json.load(f) == metrics


@pytest.mark.slow
def test_compare_refuses_bad_flags_before_training(tmp_path):
  result = run_cli('trainers.compare', f'--output_dir={tmp_path}',
                   '--train_examples=5000')
  assert result.returncode == 1
  assert '--train_examples must not exceed the 4000' in result.stderr
  assert not os.path.exists(tmp_path / 'vae' / 'checkpoints')


@pytest.mark.slow
def test_compare_parallel_writes_the_numbers_of_the_runs_one_at_a_time(
    tmp_path):
  """`--parallel=2` trains and evaluates each (member, seed) as its own
  trainers.train and trainers.evaluate processes, two at once: its
  metrics.json holds what those runs wrote, paired over the same seeds,
  and the same numbers as `--parallel=1` (every run in one process) for
  the same runs.  No browser needed (test_report_browser.py checks the
  page)."""
  args = ('--models=vae', '--seeds=2', '--epochs=1', '--train_examples=100',
          '--batch_size=50', '--plot_every=0', '--eval_iwae_samples=2',
          '--deterministic', '--noprogress')
  results = {}
  for parallel in (1, 2):
    out = str(tmp_path / f'parallel{parallel}')
    r = run_cli('trainers.compare', f'--output_dir={out}',
                f'--parallel={parallel}', *args, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    with open(os.path.join(out, 'metrics.json')) as f:
      results[parallel] = json.load(f)
  fanned, in_process = results[2], results[1]
  assert fanned['seeds'] == in_process['seeds'] == [0, 1]
  vae = fanned['models']['vae']
  out = str(tmp_path / 'parallel2')
  assert vae['runs'] == {'0': os.path.join(out, 'vae'),
                         '1': os.path.join(out, 'vae-seed1')}
  for seed, run_dir in vae['runs'].items():
    # Each child ran as a user would, with its seed, and its own files are
    # what the comparison collected.
    with open(os.path.join(run_dir, 'compare.log')) as f:
      log = f.read()
    assert '-m trainers.train' in log and '-m trainers.evaluate' in log
    with open(os.path.join(run_dir, 'config.json')) as f:
      assert json.load(f)['trainer']['seed'] == int(seed)
    assert vae['seeds'][seed] == rundir.read_metrics(run_dir)
  # Training (--deterministic) gives the same weights bit for bit; the
  # evaluations run with one thread per child against two here, so their
  # sums may round differently (IWAE differed in the 10th digit).
  trained = ('test_loss', 'test_neg_elbo', 'test_reconstruction_nll',
             'epochs_completed')
  evaluated = ('test_iwae_log_likelihood', 'test_knn_accuracy',
               'test_logreg_accuracy', 'test_classifier_frechet_distance')
  alone = in_process['models']['vae']
  for seed in ('0', '1'):
    for key in trained:
      assert vae['seeds'][seed][key] == alone['seeds'][seed][key], (seed,
                                                                    key)
    for key in evaluated:
      assert vae['seeds'][seed][key] == pytest.approx(
          alone['seeds'][seed][key], rel=1e-6), (seed, key)
  assert vae['seeds']['0']['test_loss'] != vae['seeds']['1']['test_loss']
  for key in trained[:-1] + evaluated:
    for end in ('mean', 'low', 'high'):
      assert vae['summary'][key][end] == pytest.approx(
          alone['summary'][key][end], rel=1e-6), (key, end)
