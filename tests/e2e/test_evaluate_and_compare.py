"""trainers.evaluate and trainers.compare end to end, on tiny budgets."""

import dataclasses
import json
import os
import re

import numpy as np
import pytest

from tests.helpers import COMPARE_PAIR, FANNED_OUT_MODELS, run_cli
from tfp_vae.config import settings as config_lib
from tfp_vae.experiment import report
from tfp_vae.training import rundir
from tfp_vae.training import run as training


@pytest.fixture(scope='session')
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
def test_compare_writes_report_with_every_figure_and_both_models(
    compared_pair):
  """The defaults: the articles' pair at one seed."""
  # The rerun at the end writes the same files into the shared folder
  # (what it checks); the other user of the fixture reads its stderr only.
  out, stdout, stderr = compared_pair
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
  # The information metrics each encoder defines, with intervals' inputs.
  for key in ('test_mutual_information', 'test_marginal_kl',
              'test_code_gain', 'test_code_variance'):
    assert key in metrics['models']['vae']['summary'], key
  assert 'test_code_gain' in metrics['models']['mmd_vae']['summary']
  assert 'test_mutual_information' not in metrics['models']['mmd_vae'][
      'summary']
  (pair,) = metrics['differences']
  assert (pair['a'], pair['b']) == ('vae', 'mmd_vae')
  assert pair['metrics']['test_knn_accuracy']['verdict'] == (
      '1 seed: no interval')
  with open(os.path.join(out, 'report.html')) as f:
    page = f.read()
  embedded = set(re.findall(r'alt="([\w.]+\.png)"', page))
  expected = {f'{m}_{kind}.png' for m in ('vae', 'mmd_vae')
              for kind in ('samples', 'latent', 'grid', 'reconstructions',
                           'interpolations')} | {'training_curves.png',
                                                 'rate_distortion.png'}
  assert embedded == expected
  assert '<h2>Rate and distortion</h2>' in page
  assert page.count('src="data:image/png;base64,') == len(expected)
  for name in expected:
    assert os.path.getsize(os.path.join(out, 'figures', name)) > 1000
  for key, _, _ in report.METRICS[:9]:
    if key != 'test_rate' and key != 'test_neg_elbo':
      assert f'<code>{key}</code>' in page, key
  assert 'class="best"' not in page  # one seed decides nothing
  assert '1 seed: no interval' in page
  # The whole-run progress reached its end.
  assert 'compare: 6/6 steps (100%)' in stderr
  assert 'test_iwae_log_likelihood' in stdout
  # Run again: the runs and their evaluations are reused, not redone.
  again = run_cli('trainers.compare', f'--output_dir={out}', *COMPARE_PAIR)
  assert again.returncode == 0, again.stderr
  assert 'evaluating' not in again.stderr and 'not training again' in (
      again.stderr)
  with open(os.path.join(out, 'metrics.json')) as f:
    assert json.load(f) == metrics


@pytest.mark.slow
@pytest.mark.slow
def test_compare_with_the_flexible_decoder_writes_the_information_and_plane(
    tmp_path):
  """--likelihood=pixel_cnn through a whole comparison: every information
  metric each encoder defines, and the rate-distortion figure."""
  out = str(tmp_path / 'flexible')
  result = run_cli('trainers.compare', f'--output_dir={out}',
                   '--likelihood=pixel_cnn', '--models=vae,mmd_vae',
                   '--latent_dim=3', '--epochs=1', '--train_examples=100',
                   '--batch_size=50', '--eval_iwae_samples=2',
                   '--test_examples=100')
  assert result.returncode == 0, result.stderr[-3000:]
  with open(os.path.join(out, 'metrics.json')) as f:
    metrics = json.load(f)
  for name, keys in (('vae', ('test_mutual_information', 'test_marginal_kl',
                              'test_code_gain', 'test_code_variance',
                              'test_iwae_log_likelihood')),
                     ('mmd_vae', ('test_code_gain', 'test_code_variance',
                                  'test_iwae_log_likelihood'))):
    run = metrics['models'][name]['seeds']['0']
    for key in keys:
      assert np.isfinite(run[key]), (name, key)
    assert run['evaluated_test_examples'] == 100
    with open(os.path.join(out, name, 'config.json')) as f:
      assert json.load(f)['model']['likelihood'] == 'pixel_cnn'
  with open(os.path.join(out, 'vae', 'metrics.json')) as f:
    assert len(json.load(f)['test_kl_per_unit']) == 3
  assert os.path.getsize(os.path.join(out, 'figures',
                                      'rate_distortion.png')) > 1000


def test_compare_refuses_bad_flags_before_training(tmp_path):
  result = run_cli('trainers.compare', f'--output_dir={tmp_path}',
                   '--train_examples=5000')
  assert result.returncode == 1
  assert '--train_examples must not exceed the 4000' in result.stderr
  assert not os.path.exists(tmp_path / 'vae' / 'checkpoints')


@pytest.mark.slow
def test_the_fanned_out_runs_are_paired_over_the_same_seeds(
    compared_fanned_out):
  """`--parallel=2`'s results, without a browser: every member over the
  same seeds, each run trained in its own trainers.train process with its
  own seed and member, intervals from the two seeds."""
  report_dir = compared_fanned_out
  with open(os.path.join(report_dir, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['seeds'] == [0, 1]
  assert metrics['order'] == list(FANNED_OUT_MODELS)
  for label, model in metrics['models'].items():
    assert set(model['seeds']) == {'0', '1'}
    for seed, run_dir in model['runs'].items():
      with open(os.path.join(run_dir, 'config.json')) as f:
        config = json.load(f)
      assert config['trainer']['seed'] == int(seed)
      assert config['model']['name'] == label.split(':')[0]
      with open(os.path.join(run_dir, 'compare.log')) as f:
        assert '-m trainers.train' in f.read()
    knn = model['summary']['test_knn_accuracy']
    assert knn['n'] == 2 and knn['low'] <= knn['mean'] <= knn['high']
    assert model['seeds']['1']['epochs_completed'] == 2
    # --test_examples reached each trainers.evaluate child.
    assert model['seeds']['1']['evaluated_test_examples'] == 500
  n = len(FANNED_OUT_MODELS)
  assert len(metrics['differences']) == n * (n - 1) // 2


@pytest.mark.slow
def test_a_fanned_out_run_trains_what_one_process_trains(compared_fanned_out,
                                                         tmp_path):
  """A run `--parallel=2` trained in its own trainers.train process (one
  thread) equals, bit for bit under --deterministic, the same run trained
  in this process; what the comparison collected is what the run wrote."""
  with open(os.path.join(compared_fanned_out, 'metrics.json')) as f:
    metrics = json.load(f)
  run_dir = metrics['models']['mmd_vae']['runs']['1']
  assert metrics['models']['mmd_vae']['seeds']['1'] == rundir.read_metrics(
      run_dir)
  config = rundir.read_config(run_dir)
  assert config.runtime.deterministic and config.trainer.seed == 1
  here = dataclasses.replace(config, runtime=dataclasses.replace(
      config.runtime, model_dir=str(tmp_path / 'here'), export_dir=None))
  training.run(here)
  # The epochs' records: metrics.json's test metrics are the evaluation's,
  # on the fixture's 500 test images (--test_examples).
  trained = rundir.read_history(here.runtime.model_dir)
  fanned = rundir.read_history(run_dir)
  assert len(trained) == len(fanned) == 2
  for key in ('test_loss', 'test_reconstruction_nll', 'test_mmd_to_prior',
              'train_loss', 'epoch'):
    assert trained[-1][key] == fanned[-1][key], key


def test_an_evaluation_on_other_test_examples_is_not_reused(tmp_path):
  """trainers.compare reuses a run's evaluation only when it measured the
  same part of the test split (--test_examples)."""
  from tfp_vae.experiment import comparison  # pylint: disable=g-import-not-at-top
  evaluated = {'epochs_completed': 2, 'evaluated_epoch': 2,
               'test_knn_accuracy': 0.5, 'evaluated_test_examples': 100}
  rundir.write_json(str(tmp_path / rundir.METRICS_FILE), evaluated)
  on = lambda n: config_lib.EvalConfig(iwae_samples=0, test_examples=n)
  assert comparison._evaluated(str(tmp_path), on(100))
  assert not comparison._evaluated(str(tmp_path), on(0))
  del evaluated['evaluated_test_examples']  # no key: the whole split
  rundir.write_json(str(tmp_path / rundir.METRICS_FILE), evaluated)
  assert comparison._evaluated(str(tmp_path), on(0))
  assert not comparison._evaluated(str(tmp_path), on(100))
