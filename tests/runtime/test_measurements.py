"""The recorded measurements (tfp_vae/runtime/measurements.py): each row names
its date, machine and command; a row that kept only a ratio stores it."""

import re

import pytest

from tfp_vae.runtime import measurements
from tfp_vae.nn.precision import POLICY


def _recorded_rows():
  rows = [(f'BFLOAT16_ROWS[{cls}] {r.model} seed {r.seed} {r.epochs} '
           f'epochs', r.provenance)
          for cls, (_, rs) in measurements.BFLOAT16_ROWS.items() for r in rs]
  rows += [(f'STEPS_PER_CALL{key}', d.provenance)
           for key, d in measurements.STEPS_PER_CALL.items()]
  rows += [(f'XLA[{key}]', d.provenance) for key, d in measurements.XLA.items()]
  return rows


@pytest.mark.parametrize('name,provenance', _recorded_rows())
def test_every_recorded_row_names_its_date_machine_and_command(name,
                                                               provenance):
  assert isinstance(provenance, measurements.Provenance), name
  assert provenance.date == measurements.NOT_RECORDED or re.fullmatch(
      r'\d{4}-\d{2}-\d{2}', provenance.date), (name, provenance)
  assert provenance.machine, name
  assert provenance.command == measurements.NOT_RECORDED or (
      provenance.command.startswith('bench/')), (name, provenance)


def test_a_row_that_kept_only_a_ratio_stores_it_as_a_ratio():
  (row,) = measurements.BFLOAT16_ROWS['cpu-amx'][1]
  assert row.images_per_second is None and row.speedup == row.ratio == 1.48
  with pytest.raises(ValueError, match='exactly one'):
    measurements.PrecisionRow('vae', 0, 4, (1.0, 1.48), None, POLICY,
                              ratio=1.48)
  with pytest.raises(ValueError, match='exactly one'):
    measurements.PrecisionRow('vae', 0, 4, None, None, POLICY)
