"""Statistics over seeds that do not overclaim: means with 95% intervals,
paired differences, and a verdict only where the interval says so.

The interval is Student's t over seeds: mean +- t_{0.975, n-1} * s / sqrt(n),
s the sample standard deviation of the n per-seed values.  Why t and not a
bootstrap: with the 3 to 5 seeds a comparison can afford, a percentile
bootstrap has only n^n resamples of n values and its intervals are too
narrow (they cover far less than 95%); the t interval is exact for normal
per-seed values and widens properly as n shrinks (t_{0.975, 2} = 4.30).
One seed gives no interval at all.

Differences are paired: model B minus model A on the same seed (the same
weights initialisation, data order and Monte-Carlo draws), so what the two
share cancels; the t interval is over the n per-seed differences.  A model
is called better on a metric only where that interval excludes zero and the
metric has a direction; everywhere else the verdict is "no difference at N
seeds" (or, for one seed, "1 seed: no interval").

This module does not import TensorFlow.
"""

import dataclasses
import math
from typing import Optional, Sequence

LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Interval:
  """A mean over n seeds and its two-sided t interval (nan for n < 2)."""
  mean: float
  low: float
  high: float
  n: int

  def excludes_zero(self) -> bool:
    return self.n >= 2 and (self.low > 0 or self.high < 0)

  def to_dict(self) -> dict:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in dataclasses.asdict(self).items()}


def t_quantile(df: int, level: float = LEVEL) -> float:
  """The (1 + level) / 2 quantile of Student's t with df degrees of
  freedom."""
  from scipy import stats as scipy_stats  # pylint: disable=g-import-not-at-top
  return float(scipy_stats.t.ppf((1.0 + level) / 2.0, df))


def t_interval(values: Sequence[float], level: float = LEVEL) -> Interval:
  """The mean of `values` and its t interval.

  Raises:
    ValueError: no values, or a value that is not finite.
  """
  values = [float(v) for v in values]
  if not values:
    raise ValueError('an interval needs at least one value')
  if not all(math.isfinite(v) for v in values):
    raise ValueError(f'values must be finite, got {values}')
  n = len(values)
  mean = sum(values) / n
  if n < 2:
    return Interval(mean, math.nan, math.nan, n)
  sd = math.sqrt(sum((v - mean)**2 for v in values) / (n - 1))
  half = t_quantile(n - 1, level) * sd / math.sqrt(n)
  return Interval(mean, mean - half, mean + half, n)


def paired_difference(a: dict, b: dict, level: float = LEVEL) -> Interval:
  """The interval of b - a over the seeds both have ({seed: value}).

  Raises:
    ValueError: they share no seed.
  """
  seeds = sorted(set(a) & set(b))
  if not seeds:
    raise ValueError('a paired difference needs values on the same seeds')
  return t_interval([b[s] - a[s] for s in seeds], level)


def verdict(difference: Interval, better: str, a: str, b: str
            ) -> tuple[Optional[str], str]:
  """(the better model or None, the words for it) from the interval of
  b - a on a metric whose `better` is 'higher', 'lower' or ''."""
  if difference.n < 2:
    return None, '1 seed: no interval'
  if not better:
    return None, ''
  if not difference.excludes_zero():
    return None, f'no difference at {difference.n} seeds'
  b_higher = difference.low > 0
  winner = b if b_higher == (better == 'higher') else a
  return winner, f'{winner} better at {difference.n} seeds'
