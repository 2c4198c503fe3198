"""The one registration mechanism of the package's extension points, and
the plugins that extend them.

Every interchangeable part of a model is a class with a `name` (the value
users pass on the command line) and a one-line `summary` (its help text),
registered in the registry of its kind:

  family.MEMBERS            --model         objective and its settings
  components.LIKELIHOODS    --likelihood    p(x|z)
  components.PRIORS         --prior         p(z)
  components.ARCHITECTURES  --architecture  encoder and decoder networks
  components.ENCODERS       (a member's `encoder`)  q(z|x)

  @components.LIKELIHOODS.register
  class Laplace(components.Likelihood):
    name = 'laplace'
    summary = 'a Laplace of fixed scale per pixel'
    ...

Generic code asks a registered class for what it needs (its declared
properties and methods) and never tests a name.

Plugins: an installed distribution that declares entry points in the group
`tfp_vae.plugins` extends every registry without changes here:

  [options.entry_points]              # its setup.cfg
  tfp_vae.plugins =
      capacity_vae = my_package.members:CapacityVAE
      my_parts = my_package.parts

An entry point names a registrable class (registered in the registry of its
base class) or a module (imported: its `@register` decorators register what
it defines).  Plugins load the first time any registry is asked for its
names, before the command line defines its flags, so a plugin's member is a
`--model` value with its own flags and help.  A plugin that fails to load is
logged and named in the error of a name that is not found.

This module does not import TensorFlow.
"""

import importlib.metadata
import inspect
import types
from typing import Any, Iterator, Optional

from absl import logging

from tfp_vae.internal import errors

ENTRY_POINT_GROUP = 'tfp_vae.plugins'

_REGISTRIES: list['Registry'] = []
_discovery = {'done': False, 'failures': []}


class Registry:
  """Classes of one kind by name.

  Args:
    kind: what the classes are, in messages ('likelihood').
    setting: the setting that names one (`--likelihood`), in errors.
    base: the class every entry derives from (plugins are sorted by it).
    default: the name a config takes when none is given.
  """

  def __init__(self, kind: str, setting: str, base: type,
               default: str = ''):
    self.kind = kind
    self.setting = setting
    self.base = base
    self.default = default
    self._entries: dict[str, type] = {}
    _REGISTRIES.append(self)

  def register(self, cls: type) -> type:
    """Class decorator: makes `cls` a value of `setting`.

    Raises:
      ValueError: no name or summary, not a subclass of `base`, or the name
        is taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, self.base)):
      raise ValueError(f'a {self.kind} must subclass {self.base.__name__}, '
                       f'got {cls!r}')
    name = getattr(cls, 'name', '')
    if not name or not isinstance(name, str) or not getattr(
        cls, 'summary', ''):
      raise ValueError(f'{cls.__name__} needs a name and a summary to be '
                       f'registered as a {self.kind}')
    taken = self._entries.get(name)
    if taken is not None and taken is not cls and not _same_class(taken,
                                                                  cls):
      raise ValueError(f'{self.kind} name {name!r} is already taken by '
                       f'{taken.__module__}.{taken.__qualname__}')
    cls.validate_declaration()
    self._entries[name] = cls
    return cls

  def registered(self) -> dict[str, type]:
    """The classes registered so far, without loading plugins (for checks
    made while classes register)."""
    return dict(self._entries)

  def names(self) -> tuple[str, ...]:
    discover()
    return tuple(self._entries)

  def items(self) -> Iterator[tuple[str, type]]:
    discover()
    return iter(list(self._entries.items()))

  def __contains__(self, name: str) -> bool:
    return name in self.names()

  def get(self, name: str) -> type:
    """The class called `name`.

    Raises:
      ConfigError: no class of this kind has that name.
    """
    names = self.names()
    if name not in self._entries:
      failed = ''.join(f'; plugin {what} failed to load ({why})'
                       for what, why in _discovery['failures'])
      raise errors.ConfigError(self.setting, name,
                               f'must be one of {list(names)}{failed}')
    return self._entries[name]

  def where(self, test, exclude: str = '') -> list[str]:
    """Names of the classes for which `test(cls)` holds."""
    return [n for n, cls in self.items() if n != exclude and test(cls)]

  def describe(self) -> str:
    """'name: summary; ...' of every class, for help texts."""
    return '; '.join(f'{name}: {cls.summary}' for name, cls in self.items())


class Registrable:
  """Base of every registered class: a name and a summary, and a hook that
  checks a class's declaration when it is registered."""
  name: str = ''
  summary: str = ''

  @classmethod
  def validate_declaration(cls) -> None:
    """Raises ValueError when the class declares something inconsistent."""


def _same_class(a: type, b: type) -> bool:
  """A class imported twice (a test module loaded both by pytest and by an
  entry point) is the same declaration."""
  return (a.__qualname__ == b.__qualname__ and
          a.__module__.rsplit('.', 1)[-1] == b.__module__.rsplit('.', 1)[-1])


def discover() -> None:
  """Loads the `tfp_vae.plugins` entry points once (see the module doc)."""
  if _discovery['done']:
    return
  _discovery['done'] = True
  for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
    what = f'{entry.name} = {entry.value}'
    try:
      _register_loaded(entry.load())
    except Exception as e:  # pylint: disable=broad-except
      # One broken plugin must not stop every command; it is named where it
      # would have mattered.
      reason = f'{type(e).__name__}: {e}'
      _discovery['failures'].append((what, reason))
      logging.warning('plugin %s failed to load: %s', what, reason)


def _register_loaded(obj: Any) -> None:
  if isinstance(obj, types.ModuleType):
    return  # importing it registered what it defines
  if inspect.isclass(obj):
    for reg in _REGISTRIES:
      if issubclass(obj, reg.base):
        reg.register(obj)
        return
  raise TypeError(f'{obj!r} is neither a module nor a class of a registered '
                  f'kind ({", ".join(r.kind for r in _REGISTRIES)})')


def reset_discovery() -> None:
  """Forgets that plugins were loaded (tests that install an entry point)."""
  _discovery['done'] = False
  _discovery['failures'] = []


def registry_of(setting: str) -> Optional[Registry]:
  """The registry whose values `setting` names (`likelihood`), if any."""
  for reg in _REGISTRIES:
    if reg.setting == setting:
      return reg
  return None
