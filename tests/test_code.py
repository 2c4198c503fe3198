"""Rules of the code base that a review would otherwise have to re-check:
no function longer than a screen, and test files that share helpers
through tests/helpers.py instead of importing each other."""

import ast
import os
import re

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
