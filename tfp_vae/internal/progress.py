"""Progress of long steps as log lines, readable on a terminal and in a file.

A step that may take more than a few seconds (the IWAE estimate over a test
set, encoding 60,000 training images, training the Frechet feature
classifier) reports through `Progress`: one INFO line through absl logging
at most every `interval` seconds and one when it ends, e.g.

  IWAE log-likelihood (k=100): 2,000/10,000 images (20%), 41 s, about 2 min 44 s left

Plain lines, no terminal control codes, so a redirected log stays clean.
"""

import time
from typing import Callable, Optional

from absl import logging

DEFAULT_INTERVAL = 10.0


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  if seconds < 60:
    return f'{seconds} s'
  minutes, seconds = divmod(seconds, 60)
  if minutes < 60:
    return f'{minutes} min {seconds} s'
  hours, minutes = divmod(minutes, 60)
  return f'{hours} h {minutes} min'


class Progress:
  """Counts units of a step towards `total` and logs how far it got.

  Args:
    what: the step's name, starting the line.
    total: units in the whole step.
    unit: the units' name ('images', 'epochs').
    interval: seconds between lines (the first line comes after one
      interval, so a step shorter than that prints only its end line).
    log: where lines go (absl's INFO by default).
  """

  def __init__(self, what: str, total: int, unit: str = 'images',
               interval: float = DEFAULT_INTERVAL,
               log: Optional[Callable[[str], None]] = None):
    self.what = what
    self.total = max(int(total), 0)
    self.unit = unit
    self.interval = interval
    self.log = log or (lambda line: logging.info('%s', line))
    self.done = 0
    self.skipped = 0  # units done before this process: not in the rate
    self.start = time.perf_counter()
    self._last = self.start

  def line(self) -> str:
    elapsed = time.perf_counter() - self.start
    text = (f'{self.what}: {self.done:,}/{self.total:,} {self.unit}'
            f' ({self.done / max(self.total, 1):.0%}), {_duration(elapsed)}')
    worked = self.done - self.skipped
    if 0 < worked and self.done < self.total:
      left = elapsed / worked * (self.total - self.done)
      text += f', about {_duration(left)} left'
    return text

  def skip(self, units: int) -> None:
    """Counts `units` already done (a resumed run's finished epochs)
    without counting them into the time estimate."""
    self.skipped += max(0, min(units, self.total - self.done))
    self.update(units)

  def update(self, units: int = 1) -> None:
    """Adds `units` done; logs when an interval has passed or at the end."""
    self.done = min(self.done + units, self.total)
    now = time.perf_counter()
    if self.done >= self.total or now - self._last >= self.interval:
      self._last = now
      self.log(self.line())
