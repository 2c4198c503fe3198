"""The lock (requirements/lock.txt) that `make install` and CI install from:
it pins every requirement setup.cfg declares, inside setup.cfg's ranges."""

import configparser
import os
import re

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import REPO

LOCK = os.path.join(REPO, 'requirements', 'lock.txt')


def _lock() -> dict[str, str]:
  pins = {}
  with open(LOCK) as f:
    for line in f:
      line = line.split('#', 1)[0].strip()
      if line:
        name, version = line.split('==')
        pins[canonicalize_name(name)] = version
  return pins


def _declared() -> list[Requirement]:
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(REPO, 'setup.cfg'))
  lines = cfg['options']['install_requires'].splitlines()
  for extra in cfg['options.extras_require'].values():
    lines += extra.splitlines()
  return [Requirement(l) for l in (l.split('#', 1)[0].strip() for l in lines)
          if l]


def test_lock_pins_every_declared_requirement_within_its_range():
  pins = _lock()
  assert 'pip' in pins  # make install upgrades pip to the locked release
  problems = []
  for req in _declared():
    version = pins.get(canonicalize_name(req.name))
    if version is None:
      problems.append(f'{req.name} is not pinned')
    elif not req.specifier.contains(version, prereleases=True):
      problems.append(f'{req.name}=={version} is outside {req.specifier}')
  assert not problems, ('requirements/lock.txt disagrees with setup.cfg ('
                        'run make lock): ' + '; '.join(problems))


def test_lock_pins_exact_versions_only():
  with open(LOCK) as f:
    entries = [l.strip() for l in f if l.strip() and not l.startswith('#')]
  pattern = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9.+!-]+$')
  assert entries
  assert not [e for e in entries if not pattern.match(e)]
