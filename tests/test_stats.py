"""The interval code against hand-computed values, pairing, and verdicts
that are withheld unless the interval excludes zero."""

import math

import pytest

from tfp_vae import stats


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
