"""Member specs: a family member and its own settings in one string, as
`trainers.compare --models` and the comparison pipeline take them.

  vae                          the member at its defaults
  vae:beta=4                   with a setting (its command-line name)
  info_vae:alpha=0.5:lambda=10 several settings, ':'-separated
  mmd_vae:kernel=imq:kernel_scales=0.5/1/2
                               a tuple setting, '/'-separated

A spec's label is the spec itself; its run directory is the label with ':'
written '_' and '/' written '-' (`run_name`): `vae` runs in `vae/`.

This module does not import TensorFlow.
"""

import dataclasses
import os
import types
import typing
from typing import Any

from tfp_vae.internal import errors
from tfp_vae.family import members as family


def _unwrapped(annotation):
  """X for Optional[X] and X | None."""
  if typing.get_origin(annotation) in (typing.Union, types.UnionType):
    return next(a for a in typing.get_args(annotation) if a is not type(None))
  return annotation


def base_type(annotation) -> type:
  """int for Optional[int], tuple for tuple[float, ...], and so on."""
  annotation = _unwrapped(annotation)
  return typing.get_origin(annotation) or annotation


def item_type(field: dataclasses.Field) -> type:
  """float for a tuple[float, ...] field (str where undeclared)."""
  return (typing.get_args(_unwrapped(field.type)) or (str,))[0]


def value_of(field: dataclasses.Field, text: str | list[str]) -> Any:
  """`text` as `field`'s type, the one text-to-type conversion of specs and
  flags: a tuple's items from a list or a '/'-separated string, a bool
  from true/false/1/0.

  Raises:
    ValueError: the text is not of that type.
  """
  kind = base_type(field.type)
  if kind is tuple:
    items = text.split('/') if isinstance(text, str) else text
    return tuple(item_type(field)(v) for v in items if v)
  if kind is bool:
    if text.lower() not in ('true', 'false', '1', '0'):
      raise ValueError(text)
    return text.lower() in ('true', '1')
  return kind(text)


def _convert(field: dataclasses.Field, text: str, spec: str) -> Any:
  """`text` as the type of `field`, or the spec's error."""
  try:
    return value_of(field, text)
  except ValueError:
    kind = base_type(field.type)
    raise errors.ConfigError(
        'models', spec, f'sets {family.public_name(field)}={text}, which is '
        f'not a {getattr(kind, "__name__", kind)}') from None


def parse(spec: str, shared: dict[str, Any] | None = None
          ) -> family.Member:
  """The member a spec names, with its settings; `shared` settings (field
  names, e.g. from flags given to every compared member) apply where the
  member declares them and the spec does not set them.

  Raises:
    ConfigError: an unknown member, a malformed entry, or a setting the
      member does not have.
  """
  if not isinstance(spec, str) or not spec.strip():
    raise errors.ConfigError('models', spec, 'entries must be member names')
  name, *pairs = spec.strip().split(':')
  cls = family.get(name)
  fields = {family.public_name(f): f for f in dataclasses.fields(cls)}
  settings = {k: v for k, v in (shared or {}).items()
              if k in {f.name for f in fields.values()}}
  for pair in pairs:
    key, sep, text = pair.partition('=')
    if not sep or not key:
      raise errors.ConfigError('models', spec,
                               f'has {pair!r}; settings are written key=value')
    if key not in fields:
      raise errors.ConfigError(
          'models', spec, f'sets {key}, which --model={name} does not have '
          f'(its settings: {", ".join(fields) or "none"})')
    settings[fields[key].name] = _convert(fields[key], text, spec)
  return family.create(name, **settings)


def parse_all(specs: list[str], shared: dict[str, Any]
              ) -> list[tuple[str, family.Member]]:
  """[(label, member)] for `specs`; every `shared` setting must be declared
  by at least one of them.

  Raises:
    ConfigError: a bad spec, a label given twice, or a shared setting no
      compared member has.
  """
  out, seen = [], set()
  for spec in specs:
    label = spec.strip()
    if label in seen:
      raise errors.ConfigError('models', spec, 'is listed twice')
    seen.add(label)
    out.append((label, parse(spec, shared)))
  declared = {f.name for _, m in out for f in dataclasses.fields(m)}
  for key, value in shared.items():
    if key not in declared:
      users = family.all_settings().get(key, (None, []))[1]
      raise errors.ConfigError(
          key, value, f'is a setting of {", ".join(users) or "no member"}, '
          f'none of which is compared (--models={",".join(specs)})')
  return out


def run_name(label: str) -> str:
  """The run directory's name for a spec's label."""
  return label.replace(':', '_').replace('/', '-')


def run_dir(output_dir: str, label: str, seed: int, first_seed: int) -> str:
  """Where a comparison trains (label, seed): OUTPUT_DIR/<run name>, with
  -seed<S> for every seed but the first (whose runs keep the names they
  had before comparisons had seeds)."""
  name = run_name(label)
  return os.path.join(output_dir, name if seed == first_seed
                      else f'{name}-seed{seed}')


def member_flags(spec: str) -> list[str]:
  """The `trainers.train` flags of a spec's own settings
  (`vae:beta=4` -> ['--beta=4']; tuples comma-separated)."""
  parse(spec)  # refuses a bad spec
  return [f'--{key}={value.replace("/", ",")}' for key, _, value in (
      pair.partition('=') for pair in spec.strip().split(':')[1:])]


def fan_out(specs: list[str], seeds: int, output_dir: str,
            first_seed: int = 0) -> list[dict[str, Any]]:
  """One item per (spec, seed), as the comparison pipeline's ParallelFor
  takes them: the member's name, its own flags (space-separated), the seed
  and the run folder `trainers.compare` will look in."""
  parse_all(specs, {})
  return [{'model': spec.strip().split(':')[0],
           'member_flags': ' '.join(member_flags(spec)), 'seed': str(seed),
           'model_dir': run_dir(output_dir, spec.strip(), seed, first_seed)}
          for spec in specs
          for seed in range(first_seed, first_seed + seeds)]
