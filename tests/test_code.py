"""Rules of the code base that a review would otherwise have to re-check:
no function longer than a screen, test files that share helpers through
tests/helpers.py instead of importing each other, and no work at import."""

import ast
import json
import os
import re
import subprocess
import sys

from tests.helpers import REPO

MAX_FUNCTION_LINES = 70
CHECKED = ('tfp_vae', 'trainers', 'deploy', 'bench', 'docs')


def long_functions(root: str = REPO) -> list[str]:
  """'path:line name (N lines)' for every function over the limit."""
  found = []
  for folder in CHECKED:
    for dirpath, _, names in os.walk(os.path.join(root, folder)):
      for name in sorted(names):
        if not name.endswith('.py'):
          continue
        path = os.path.join(dirpath, name)
        with open(path) as f:
          tree = ast.parse(f.read())
        for node in ast.walk(tree):
          if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_FUNCTION_LINES:
              found.append(f'{os.path.relpath(path, root)}:{node.lineno} '
                           f'{node.name} ({lines} lines)')
  return found


def test_no_function_is_longer_than_a_screen():
  assert long_functions() == []


def test_the_length_check_finds_a_long_function(tmp_path):
  (tmp_path / 'bench').mkdir()
  body = ''.join(f'  x{i} = {i}\n' for i in range(MAX_FUNCTION_LINES))
  (tmp_path / 'bench' / 'long.py').write_text(f'def f():\n{body}')
  assert long_functions(str(tmp_path)) == [
      f'bench/long.py:1 f ({MAX_FUNCTION_LINES + 1} lines)']


def test_test_files_do_not_import_each_other():
  crossing = []
  for name in sorted(os.listdir(os.path.join(REPO, 'tests'))):
    if name.endswith('.py'):
      with open(os.path.join(REPO, 'tests', name)) as f:
        for line in f:
          found = re.match(r'\s*(?:from tests\.|from |import )'
                           r'(test_\w+|conftest)\b', line)
          # A file may run itself in a child process.
          if found and found.group(1) != name[:-3]:
            crossing.append(f'{name}: {line.strip()}')
  assert crossing == []


_IMPORT_EVERYTHING = '''
import importlib, json, logging, os, pkgutil, sys
import absl.logging, keras, tensorflow, tensorflow_probability
def state():
  return {'environ': dict(os.environ), 'fd2': list(os.fstat(2))[:2],
          'absl_filters': [type(f).__name__
                           for f in absl.logging.get_absl_logger().filters],
          'tf_level': logging.getLogger('tensorflow').level,
          'root_handlers': len(logging.getLogger().handlers)}
before = state()
import tfp_vae, trainers
names = []
# Each command defines its flags as absl programs do: one command per
# process, so trainers.train stands for them (all go through common).
for info in pkgutil.walk_packages(tfp_vae.__path__, 'tfp_vae.'):
  names.append(info.name)
for name in names + ['trainers.common', 'trainers.train']:
  importlib.import_module(name)
names += ['trainers.common', 'trainers.train']
after = state()
print(json.dumps({'names': names, 'changed': {
    k: [before[k], after[k]] for k in before if before[k] != after[k]}}))
'''


def test_importing_a_module_changes_nothing_in_the_process():
  """No work at import: the environment, logging and file descriptor 2 are
  changed when a command starts (`trainers.common.start`), not when any
  module of the package or the commands is imported."""
  env = {k: v for k, v in os.environ.items()
         if k not in ('TF_CPP_MIN_LOG_LEVEL', 'TF_ENABLE_ONEDNN_OPTS')}
  proc = subprocess.run([sys.executable, '-c', _IMPORT_EVERYTHING], cwd=REPO,
                        env=env, capture_output=True, text=True, timeout=300,
                        check=False)
  assert proc.returncode == 0, proc.stderr[-2000:]
  found = json.loads(proc.stdout.strip().splitlines()[-1])
  assert 'trainers.common' in found['names']
  assert 'tfp_vae.serving.v2' in found['names']
  assert found['changed'] == {}


_PRIVATE = re.compile(r'keras\.src|tensorflow\.python|_as_tf_output|'
                      r'_call_tf_sessionrun|_ApiClient__|ctx\._')


def test_dependencies_internals_are_used_in_their_modules_only():
  """tfp_vae/internal (and deploy/kubernetes_internals.py) hold every use
  of a dependency's internals; tests/test_internals.py exercises them."""
  found = []
  for folder in ('tfp_vae', 'trainers', 'deploy'):
    for dirpath, _, names in os.walk(os.path.join(REPO, folder)):
      for name in sorted(names):
        path = os.path.join(dirpath, name)
        rel = os.path.relpath(path, REPO)
        if (not name.endswith('.py') or rel.startswith('tfp_vae/internal')
            or name == 'kubernetes_internals.py'):
          continue
        with open(path) as f:
          found += [f'{rel}:{i}' for i, line in enumerate(f, 1)
                    if _PRIVATE.search(line)]
  assert found == []
