"""The interval code against hand-computed values, pairing, and verdicts
that are withheld unless the interval excludes zero."""

import math

import pytest

from tfp_vae.experiment import stats


def test_t_interval_against_hand_computed_values():
  # mean 2, s = 1, t_{0.975, 2} = 4.302653: 2 +- 4.302653 / sqrt(3).
  got = stats.t_interval([1.0, 2.0, 3.0])
  assert got.mean == 2.0 and got.n == 3
  assert got.low == pytest.approx(2 - 4.302653 / math.sqrt(3), abs=1e-6)
  assert got.high == pytest.approx(2 + 4.302653 / math.sqrt(3), abs=1e-6)
  # Five seeds: t_{0.975, 4} = 2.776445; values 10..14, s = sqrt(2.5).
  five = stats.t_interval([10, 11, 12, 13, 14])
  assert five.high - five.mean == pytest.approx(
      2.776445 * math.sqrt(2.5) / math.sqrt(5), abs=1e-6)
  one = stats.t_interval([7.0])
  assert one.mean == 7.0 and math.isnan(one.low) and not one.excludes_zero()
  assert one.to_dict() == {'mean': 7.0, 'low': None, 'high': None, 'n': 1}
  with pytest.raises(ValueError, match='finite'):
    stats.t_interval([1.0, float('nan')])


def test_differences_are_paired_by_seed():
  a = {0: 1.0, 1: 2.0, 2: 3.0}
  b = {0: 2.0, 1: 3.5, 2: 4.0, 7: 100.0}  # seed 7 has no partner
  d = stats.paired_difference(a, b)
  # Differences 1, 1.5, 1: mean 7/6, s = sqrt(1/12).
  assert d.n == 3 and d.mean == pytest.approx(7 / 6)
  assert d.high - d.mean == pytest.approx(
      4.302653 * math.sqrt(1 / 12) / math.sqrt(3), abs=1e-6)
  # Unpaired, the spread between seeds would hide the shift: the same
  # numbers as two independent samples overlap.
  assert stats.t_interval(list(a.values())).high > stats.t_interval(
      [2.0, 3.5, 4.0]).low
  with pytest.raises(ValueError, match='same seeds'):
    stats.paired_difference({0: 1.0}, {1: 1.0})


def test_better_is_given_only_where_the_interval_excludes_zero():
  clear = stats.paired_difference({0: 1.0, 1: 2.0, 2: 3.0},
                                  {0: 2.0, 1: 3.5, 2: 4.0})
  assert stats.verdict(clear, 'higher', 'vae', 'mmd_vae') == (
      'mmd_vae', 'mmd_vae better at 3 seeds')
  assert stats.verdict(clear, 'lower', 'vae', 'mmd_vae') == (
      'vae', 'vae better at 3 seeds')
  assert stats.verdict(clear, '', 'vae', 'mmd_vae') == (None, '')
  # The same mean shift with seed noise around it: no verdict.
  noisy = stats.paired_difference({0: 1.0, 1: 2.0, 2: 3.0},
                                  {0: 3.5, 1: 1.5, 2: 4.5})
  assert noisy.low < 0 < noisy.high
  assert stats.verdict(noisy, 'higher', 'vae', 'mmd_vae') == (
      None, 'no difference at 3 seeds')
  single = stats.paired_difference({0: 1.0}, {0: 5.0})
  assert stats.verdict(single, 'higher', 'a', 'b') == (
      None, '1 seed: no interval')


def _summary(per_seed):
  """comparison.summarise over constructed metrics: {label: {seed: {...}}}."""
  from tfp_vae.experiment import comparison  # pylint: disable=g-import-not-at-top
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.family import members as family  # pylint: disable=g-import-not-at-top
  runs = [comparison.ComparedRun(label, seed, config_lib.TrainConfig.create())
          for label in per_seed for seed in per_seed[label]]
  flat = {(label, seed): m for label, by in per_seed.items()
          for seed, m in by.items()}
  return comparison.summarise(runs, flat, {l: family.create(l.split(':')[0])
                                           for l in per_seed})


def test_the_summary_keeps_every_seed_and_marks_better_only_when_clear():
  from tfp_vae.experiment import report  # pylint: disable=g-import-not-at-top
  knn = {'vae': [0.60, 0.62, 0.61], 'mmd_vae': [0.70, 0.71, 0.73],
         'vae:beta=4': [0.59, 0.64, 0.60]}
  per_seed = {label: {s: {'test_knn_accuracy': v[s], 'epochs_completed': 2}
                      for s in range(3)} for label, v in knn.items()}
  summary = _summary(per_seed)
  assert summary['seeds'] == [0, 1, 2]
  assert summary['models']['vae']['seeds']['1'] == {
      'test_knn_accuracy': 0.62, 'epochs_completed': 2}
  vae = summary['models']['vae']['summary']['test_knn_accuracy']
  assert vae['mean'] == pytest.approx(0.61) and vae['n'] == 3
  pairs = {(p['a'], p['b']): p['metrics']['test_knn_accuracy']
           for p in summary['differences']}
  assert set(pairs) == {('vae', 'mmd_vae'), ('vae', 'vae:beta=4'),
                        ('mmd_vae', 'vae:beta=4')}
  assert pairs[('vae', 'mmd_vae')]['better'] == 'mmd_vae'
  assert pairs[('vae', 'vae:beta=4')]['verdict'] == 'no difference at 3 seeds'
  # mmd_vae beats both others: it is the best; epochs have no direction.
  assert report.best_of(summary, 'test_knn_accuracy') == (
      'mmd_vae', 'mmd_vae better at 3 seeds')
  assert report.best_of(summary, 'epochs_completed') == ('', '')
  # Without mmd_vae no one is best, and the row says why.
  del per_seed['mmd_vae']
  assert report.best_of(_summary(per_seed), 'test_knn_accuracy') == (
      '', 'no difference at 3 seeds')
  one = _summary({'vae': {0: {'test_knn_accuracy': 0.6}},
                  'mmd_vae': {0: {'test_knn_accuracy': 0.9}}})
  assert report.best_of(one, 'test_knn_accuracy') == ('',
                                                       '1 seed: no interval')
