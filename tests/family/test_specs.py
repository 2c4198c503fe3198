"""tfp_vae.family.specs: member specs, and the one text-to-type conversion that
specs and command-line flags share."""

import dataclasses

import pytest

from tests.helpers import run_cli
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.family import specs


def _field(member: str, name: str) -> dataclasses.Field:
  return {f.name: f for f in dataclasses.fields(family.get(member))}[name]


@pytest.mark.parametrize('member, name, text, value', [
    ('vae', 'beta', '4', 4.0),
    ('mmd_vae', 'kernel_scales', '0.5/1/2', (0.5, 1.0, 2.0)),
    ('mmd_vae', 'kernel_scales', ['0.5', '1'], (0.5, 1.0)),
    ('mmd_vae', 'kernel', 'imq', 'imq'),
])
def test_value_of_converts_to_the_fields_type(member, name, text, value):
  assert specs.value_of(_field(member, name), text) == value


def test_value_of_refuses_what_is_not_of_the_type():
  with pytest.raises(ValueError):
    specs.value_of(_field('vae', 'beta'), 'four')
  with pytest.raises(ValueError):
    specs.value_of(_field('mmd_vae', 'kernel_scales'), '1/x')


def test_types_under_optional_and_tuples():
  assert specs.base_type(int | None) is int
  assert specs.base_type(tuple[float, ...]) is tuple
  assert specs.item_type(_field('mmd_vae', 'kernel_scales')) is float


def test_parse_builds_the_member_with_its_settings():
  member = specs.parse('mmd_vae:kernel=imq:kernel_scales=0.5/1/2')
  assert member.kernel == 'imq' and member.kernel_scales == (0.5, 1.0, 2.0)
  assert specs.parse('vae', {'beta': 2.0}).beta == 2.0


@pytest.mark.parametrize('spec, words', [
    ('vae:beta=four', 'sets beta=four, which is not a float'),
    ('vae:beta', "has 'beta'; settings are written key=value"),
    ('vae:kernel=imq', 'sets kernel, which --model=vae does not have'),
    ('', 'entries must be member names'),
])
def test_parse_names_what_is_wrong(spec, words):
  with pytest.raises(errors.ConfigError, match=words):
    specs.parse(spec)


def test_a_tuple_flag_that_is_not_numbers_is_one_line():
  """Refused before TensorFlow loads, so the real command is cheap."""
  proc = run_cli('trainers.train', '--model=mmd_vae', '--kernel_scales=1,x')
  assert proc.returncode == 1
  assert proc.stderr.strip().splitlines() == [
      'error: invalid flag --kernel_scales=1,x: must be comma-separated '
      'numbers']
