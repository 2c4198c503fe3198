"""The guard that decides whether a member trains in mixed_bfloat16: from a
machine class's measured rows (`measurements.BFLOAT16_ROWS`), bfloat16 only
where it trains faster and, after GUARD_EPOCHS, its test loss is within
GUARD_FLOOR of float32's or within float32's spread over seeds, whichever is
larger, over at least GUARD_SEEDS seeds, measured under today's
mixed-precision policy (`tfp_vae.nn.precision.POLICY`) (`judge_member`).  A
comparison trains every member in one precision: bfloat16 only where every
compared member passes (`judge_bfloat16`).
"""

from typing import Iterable

from tfp_vae.family import members as family
from tfp_vae.runtime import measurements

# The guard (`judge_bfloat16`): bfloat16 only where it trains faster and its
# test loss after GUARD_EPOCHS is within GUARD_FLOOR of float32's, or within
# float32's own spread over seeds where that is larger, for every model in
# GUARD_MODELS, each over at least GUARD_SEEDS seeds.
GUARD_EPOCHS = 20
GUARD_FLOOR = 0.001
GUARD_MODELS = family.COMPARED_PAIR  # the VAE and the MMD-VAE
GUARD_SEEDS = 2


def slowest(rows: Iterable[measurements.PrecisionRow]
            ) -> measurements.PrecisionRow:
  """The row where bfloat16 gained least (or lost most) on float32."""
  return min(rows, key=lambda r: r.speedup)


def judge_member(rows: Iterable[measurements.PrecisionRow],
                 kept: Iterable[str], model: str) -> tuple[bool, str]:
  """(pick mixed_bfloat16 for `model`, why) from a class's `rows`: `model`'s
  own rows only, counting for the loss those measured with the policy
  `kept` (`tfp_vae.nn.precision.POLICY`).  A member without rows, or whose
  rows fail, trains in float32."""
  rows = [r for r in rows if r.model == model]
  kept = frozenset(kept)
  if not rows:
    return False, f'{model} has no bfloat16 rows on this class'
  # A slowdown measured under any policy holds under today's: keeping more
  # in float32 is not faster.
  slowest_row = slowest(rows)
  if slowest_row.speedup <= 1:
    return False, (f'{model}: bfloat16 trained {slowest_row.speedup:.2f}x '
                   f'the images/s of float32 (seed {slowest_row.seed})')
  current = [r for r in rows if r.kept == kept]
  if not current:
    older = sorted({', '.join(sorted(r.kept)) for r in rows})
    return False, (f'{model}: bfloat16 was not measured with today\'s '
                   f'float32 parts ({", ".join(sorted(kept))}); its rows '
                   f'were measured keeping {"; ".join(older)}')
  judged = [r for r in current if r.test_loss and r.epochs == GUARD_EPOCHS]
  if len({r.seed for r in judged}) < GUARD_SEEDS:
    return False, (f'the guard needs {model}\'s test loss after '
                   f'{GUARD_EPOCHS} epochs over {GUARD_SEEDS} seeds; '
                   f'{len(judged)} measured')
  float32 = [r.test_loss[0] for r in judged]
  if not all(float32):
    return False, f'{model}\'s float32 test loss of 0 cannot be compared'
  spread = (max(float32) - min(float32)) / min(abs(x) for x in float32)
  tolerance = max(GUARD_FLOOR, spread)
  worst = max(judged, key=lambda r: r.loss_change)
  dates = ', '.join(sorted({r.provenance.date for r in judged
                            if r.provenance}))
  dates = f'; rows of {dates}' if dates else ''
  if worst.loss_change > tolerance:
    return False, (f'{model}\'s test loss after {GUARD_EPOCHS} epochs was '
                   f'{100 * worst.loss_change:+.2f}% in bfloat16 (seed '
                   f'{worst.seed}{dates}), outside '
                   f'{100 * tolerance:.2f}% (the larger of '
                   f'{100 * GUARD_FLOOR:.1f}% and float32\'s spread over '
                   f'seeds)')
  fastest_kept = slowest(current)
  return True, (f'{model}: bfloat16 trained {fastest_kept.speedup:.2f}x '
                f'float32 or faster, test loss at most '
                f'{100 * worst.loss_change:+.2f}% against a tolerance of '
                f'{100 * tolerance:.2f}% over {len(judged)} seeds{dates}')


def judge_bfloat16(rows: Iterable[measurements.PrecisionRow],
                   kept: Iterable[str],
                   models: Iterable[str] = GUARD_MODELS
                   ) -> tuple[bool, str]:
  """(pick mixed_bfloat16 for every one of `models`, why): bfloat16 only
  where each member passes `judge_member` (a comparison trains every
  member in one precision)."""
  rows = list(rows)
  whys = []
  for model in dict.fromkeys(models):
    ok, why = judge_member(rows, kept, model)
    if not ok:
      return False, why
    whys.append(why)
  return True, '; '.join(whys)

