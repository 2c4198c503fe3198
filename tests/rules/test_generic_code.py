"""The extension contract: one registration mechanism, and generic code
that never names a particular member, likelihood, prior, architecture or
encoder (nor a setting only some members have).

`named_parts` is the check; run as a module it prints what it finds in
another checkout
(`python -m tests.rules.test_generic_code /path/to/checkout`).
"""

import ast
import dataclasses
import os
import sys

from tests.helpers import REPO
from tfp_vae.family import components
from tfp_vae.config import groups as config_groups
from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family

# Where parts are declared and implemented: they name themselves.
# The modules that declare the built-in parts; the public API declares one
# Keras class per built-in member (api.py) and exports them (__init__.py).
DECLARING = ('family/members.py', 'family/objectives.py',
             'family/components.py', 'nn/encoders.py', 'nn/decoders.py',
             'nn/priors.py', 'nn/networks.py', 'api.py', '__init__.py')
REGISTRIES = (family.MEMBERS, components.LIKELIHOODS, components.PRIORS,
              components.ARCHITECTURES, components.ENCODERS)


def _builtin_names() -> dict[str, str]:
  """{name: what it is} of every built-in part, its class and the settings
  only some members declare."""
  out = {}
  for reg in REGISTRIES:
    for name, cls in reg.items():
      if cls.__module__.startswith('tfp_vae.'):
        out[name] = '/'.join(filter(None, (out.get(name), reg.kind)))
        out[cls.__name__] = f'{reg.kind} class'
  config_fields = {f.name for fields in config_groups.group_fields().values()
                   for f in fields} | {
                       f.name for f in dataclasses.fields(
                           config_lib.EvalConfig)}
  for setting, (field, users) in family.all_settings().items():
    if len(users) < len(family.names()) and setting not in config_fields:
      out[setting] = f'setting of {"/".join(users)}'
      out[family.public_name(field)] = f'setting of {"/".join(users)}'
  return out


def _docstrings(tree: ast.AST) -> set[int]:
  ids = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                         ast.AsyncFunctionDef)) and node.body:
      first = node.body[0]
      if isinstance(first, ast.Expr) and isinstance(first.value,
                                                    ast.Constant):
        ids.add(id(first.value))
  return ids


def named_parts(root: str = REPO,
                names: dict[str, str] | None = None) -> list[str]:
  """'file:line: kind name' for every place in root's tfp_vae/ and
  trainers/ (declaring modules aside) that names a built-in part: a string
  equal to its name (or --setting=name), or its class."""
  names = names or _builtin_names()
  found = []
  for package in ('tfp_vae', 'trainers'):
    folder = os.path.join(root, package)
    for dirpath, _, files in os.walk(folder):
      for filename in sorted(files):
        if not filename.endswith('.py') or (
            package == 'tfp_vae' and os.path.relpath(
                os.path.join(dirpath, filename), folder) in DECLARING):
          continue
        path = os.path.join(dirpath, filename)
        with open(path) as f:
          tree = ast.parse(f.read())
        skip = _docstrings(tree)
        rel = os.path.relpath(path, root)
        for node in ast.walk(tree):
          text = None
          if isinstance(node, ast.Constant) and isinstance(
              node.value, str) and id(node) not in skip:
            text = node.value.split('=', 1)[-1] if node.value.startswith(
                '--') else node.value
          elif isinstance(node, ast.Attribute):
            text = node.attr if node.attr[:1].isupper() else None
          elif isinstance(node, ast.Name) and node.id[:1].isupper():
            text = node.id
          if text in names:
            found.append(f'{rel}:{node.lineno}: {names[text]} {text}')
  return sorted(set(found))


def test_generic_code_names_no_particular_part():
  assert named_parts() == []


def test_the_check_finds_a_part_named_in_generic_code(tmp_path):
  (tmp_path / 'tfp_vae' / 'experiment').mkdir(parents=True)
  (tmp_path / 'tfp_vae' / 'experiment' / 'report.py').write_text(
      '"""A docstring may say vae."""\n'
      'def f(member, config):\n'
      "  if config.model.likelihood == 'gaussian':\n"
      '    return member.iwae_samples\n'
      "  return getattr(member, 'mmd_weight', None), MMDVAE\n")
  assert named_parts(str(tmp_path)) == [
      'tfp_vae/experiment/report.py:3: likelihood/encoder gaussian',
      'tfp_vae/experiment/report.py:5: model class MMDVAE',
      'tfp_vae/experiment/report.py:5: setting of mmd_vae mmd_weight']


if __name__ == '__main__':
  for line in named_parts(sys.argv[1] if len(sys.argv) > 1 else REPO):
    print(line)
