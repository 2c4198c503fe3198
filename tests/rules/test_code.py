"""Rules of the code base that a review would otherwise have to re-check:
no function longer than a screen, no module longer than its one job needs
(MAX_MODULE_LINES), test files that share helpers through tests/helpers.py
instead of importing each other, no work at import, and tfp_vae's
subpackages importing only from their own layer and below."""

import ast
import importlib
import json
import os
import pkgutil
import re
import subprocess
import sys

import matplotlib

from tests.helpers import REPO
import tfp_vae
from tfp_vae.evaluation import plots

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


MAX_MODULE_LINES = 450
# The modules that do one job each, each in one file of at most
# MAX_MODULE_LINES lines.
ONE_JOB = ('tfp_vae', 'trainers', 'deploy')


def long_modules(root: str = REPO) -> list[str]:
  """'path (N lines)' for every module over MAX_MODULE_LINES."""
  found = []
  for folder in ONE_JOB:
    for dirpath, _, names in os.walk(os.path.join(root, folder)):
      for name in sorted(names):
        if name.endswith('.py'):
          path = os.path.join(dirpath, name)
          with open(path) as f:
            lines = sum(1 for _ in f)
          if lines > MAX_MODULE_LINES:
            found.append(f'{os.path.relpath(path, root)} ({lines} lines)')
  return sorted(found)


def test_no_module_is_longer_than_its_one_job_needs():
  assert long_modules() == []


def test_the_length_check_finds_a_long_module(tmp_path):
  (tmp_path / 'deploy' / 'sub').mkdir(parents=True)
  (tmp_path / 'tfp_vae').mkdir()
  (tmp_path / 'deploy' / 'sub' / 'long.py').write_text(
      'x = 0\n' * (MAX_MODULE_LINES + 1))
  (tmp_path / 'tfp_vae' / 'fits.py').write_text('x = 0\n' * MAX_MODULE_LINES)
  (tmp_path / 'tfp_vae' / 'notes.txt').write_text('x\n' * 1000)
  assert long_modules(str(tmp_path)) == [
      f'deploy/sub/long.py ({MAX_MODULE_LINES + 1} lines)']


# An import of a test module or a conftest: `from tests.x import test_y`,
# `from tests.x.test_y import z`, `import tests.x.test_y`, a relative
# `from .test_y import z`, or a bare `import test_y` off a sys.path entry.
_TEST_IMPORT = re.compile(
    r'\s*(?:from\s+(?:tests\.|\.+)?(?:\w+\.)*(?P<a>test_\w+|conftest)\b'
    r'|from\s+(?:tests|\.+)(?:\.\w+)*\s+import\s+(?P<b>test_\w+|conftest)\b'
    r'|import\s+(?:\w+\.)*(?P<c>test_\w+|conftest)\b)')


def crossing_imports(root: str = REPO) -> list[str]:
  """Each line under root/tests that imports a test module or a conftest
  other than the file's own (a file may run itself in a child process)."""
  crossing = []
  tests = os.path.join(root, 'tests')
  for dirpath, dirs, files in os.walk(tests):
    dirs[:] = sorted(d for d in dirs if d != '__pycache__')
    for name in sorted(files):
      if not name.endswith('.py'):
        continue
      path = os.path.join(dirpath, name)
      with open(path) as f:
        for line in f:
          found = _TEST_IMPORT.match(line)
          if found and found.group(found.lastgroup) != name[:-3]:
            crossing.append(
                f'{os.path.relpath(path, root)}: {line.strip()}')
  return crossing


def test_test_files_do_not_import_each_other(tmp_path):
  (tmp_path / 'tests' / 'a').mkdir(parents=True)
  (tmp_path / 'tests' / 'a' / 'test_x.py').write_text(
      'from tests.helpers import REPO\n'
      'from tests.a import test_x as me\n'
      'from tests.b.test_y import helper\n'
      'import tests.b.test_y\n'
      '  from tests import conftest\n'
      'from .test_z import other\n')
  assert crossing_imports(str(tmp_path)) == [
      'tests/a/test_x.py: from tests.b.test_y import helper',
      'tests/a/test_x.py: import tests.b.test_y',
      'tests/a/test_x.py: from tests import conftest',
      'tests/a/test_x.py: from .test_z import other']
  assert crossing_imports() == []


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


_INTERNALS = ('tfp_vae/internal/keras_internals.py',
              'tfp_vae/internal/tensorflow_internals.py')
_PRIVATE = re.compile(r'keras\.src|tensorflow\.python|_as_tf_output|'
                      r'_call_tf_sessionrun|_ApiClient__|ctx\._')


def test_dependencies_internals_are_used_in_their_modules_only():
  """tfp_vae/internal/keras_internals.py and tensorflow_internals.py (and
  deploy/kubernetes_internals.py) hold every use of a dependency's
  internals; tests/internal/test_<module>.py exercises them."""
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


# tfp_vae's subpackages, bottom layer first; '' is the top: the package's
# own modules (api, pipeline, __init__), the public API.  A module imports
# only from its own subpackage and the ones before it (docs/architecture.md).
LAYERS = ('internal', 'nn', 'family', 'config', 'data', 'runtime', 'model',
          'evaluation', 'training', 'experiment', 'serving', '')
# (importing module, imported module) -> why an import goes upward.  Each
# must be function-local.  Keep this empty: move the module instead.
UPWARD_IMPORTS: dict[tuple[str, str], str] = {}


def _module_name(root: str, path: str) -> str:
  name = os.path.relpath(path, root)[:-len('.py')].replace(os.sep, '.')
  return name[:-len('.__init__')] if name.endswith('.__init__') else name


def _imported(node: ast.AST, module: str, is_package: bool,
              modules: set[str]) -> list[str]:
  """The tfp_vae modules (or packages) an import statement names."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names if a.name.split('.')[0] == 'tfp_vae']
  if not isinstance(node, ast.ImportFrom):
    return []
  base = node.module or ''
  if node.level:
    parts = module.split('.')[:len(module.split('.')) - node.level +
                              (1 if is_package else 0)]
    base = '.'.join(parts + ([base] if base else []))
  if base.split('.')[0] != 'tfp_vae':
    return []
  return [f'{base}.{a.name}' if f'{base}.{a.name}' in modules else base
          for a in node.names]


def _layer(module: str, packages: set[str]) -> str:
  """The subpackage a module is in, or '' for the package's own modules."""
  parts = module.split('.')
  return parts[1] if len(parts) > 1 and parts[1] in packages else ''


def _sources(root: str) -> dict[str, str]:
  """tfp_vae's modules and packages: name -> path."""
  found = {}
  for dirpath, _, names in os.walk(os.path.join(root, 'tfp_vae')):
    for name in names:
      if name.endswith('.py'):
        path = os.path.join(dirpath, name)
        found[_module_name(root, path)] = path
  return found


def layering_violations(root: str = REPO,
                        allowed: dict | None = None) -> list[str]:
  """Every import of tfp_vae that breaks the layers (module-level and
  function-local alike), a subpackage LAYERS does not place, and every
  cycle between subpackages."""
  allowed = UPWARD_IMPORTS if allowed is None else allowed
  sources = _sources(root)
  # Every folder of tfp_vae/ that holds Python, with an __init__.py or not.
  packages = {name.split('.')[1] for name, path in sources.items()
              if name.count('.') > 1 or (name.count('.') == 1 and
                                         path.endswith('__init__.py'))}
  found, edges = [], {}
  for module, path in sorted(sources.items()):
    source = _layer(module, packages)
    if source not in LAYERS:
      found.append(f'{module}: subpackage {source} is not in LAYERS')
      continue
    with open(path) as f:
      tree = ast.parse(f.read())
    for node in ast.walk(tree):
      for target in _imported(node, module, path.endswith('__init__.py'),
                              set(sources)):
        layer = _layer(target, packages)
        if layer == source:
          continue
        edges.setdefault(source, set()).add(layer)
        if layer not in LAYERS:
          found.append(f'{module}:{node.lineno} imports {target}: not a '
                       'module in a layer')
        elif (LAYERS.index(layer) > LAYERS.index(source) and
              (module, target) not in allowed):
          found.append(f'{module}:{node.lineno} imports {target}, a higher '
                       f'layer ({layer or "the top"} above {source})')
  return found + [f'cycle between subpackages: {" -> ".join(c)}'
                  for c in _cycles(edges)]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """One path per cycle of the subpackage graph, by depth-first search."""
  cycles, done = [], set()

  def visit(node: str, path: list[str]) -> None:
    for nxt in sorted(edges.get(node, ())):
      if nxt in path:
        cycles.append(path[path.index(nxt):] + [nxt])
      elif nxt not in done:
        visit(nxt, path + [nxt])
    done.add(node)

  for start in sorted(edges):
    if start not in done:
      visit(start, [start])
  return cycles


def test_subpackages_import_only_from_their_layer_and_below():
  assert layering_violations() == []


def test_upward_imports_are_function_local_and_few():
  assert len(UPWARD_IMPORTS) <= 2, 'move the module to its layer instead'
  for (module, target), reason in UPWARD_IMPORTS.items():
    assert reason
    with open(_sources(REPO)[module]) as f:
      tree = ast.parse(f.read())
    top = [t for node in tree.body
           for t in _imported(node, module, False, set(_sources(REPO)))]
    assert target not in top, f'{module} imports {target} at module level'


def test_the_layering_check_finds_an_upward_import_and_a_cycle(tmp_path):
  for name, body in (
      ('__init__', ''), ('api', ''), ('internal/__init__', ''),
      ('internal/errors', 'def f():\n  from tfp_vae.model import models\n'),
      ('model/__init__', ''),
      ('model/models', 'from tfp_vae.internal import errors\n'),
      ('nn/__init__', ''), ('nn/losses', 'import tfp_vae.api\n'),
      ('extra/anything', '')):
    path = tmp_path / 'tfp_vae' / f'{name}.py'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
  assert layering_violations(str(tmp_path)) == [
      'tfp_vae.extra.anything: subpackage extra is not in LAYERS',
      'tfp_vae.internal.errors:2 imports tfp_vae.model.models, a higher '
      'layer (model above internal)',
      'tfp_vae.nn.losses:1 imports tfp_vae.api, a higher layer (the top '
      'above nn)',
      'cycle between subpackages: internal -> model -> internal']
  allowed = {('tfp_vae.internal.errors', 'tfp_vae.model.models'): 'a test',
             ('tfp_vae.nn.losses', 'tfp_vae.api'): 'a test'}
  assert layering_violations(str(tmp_path), allowed) == [
      'tfp_vae.extra.anything: subpackage extra is not in LAYERS',
      'cycle between subpackages: internal -> model -> internal']


def test_each_subpackage_says_what_it_owns_and_imports_nothing():
  """Each subpackage's __init__.py is its docstring: what it owns, what it
  may import; nothing happens when it is imported (serving's lazy names
  aside, which import on first use)."""
  for layer in LAYERS[:-1]:
    path = os.path.join(REPO, 'tfp_vae', layer, '__init__.py')
    with open(path) as f:
      tree = ast.parse(f.read())
    assert ast.get_docstring(tree), path
    if layer != 'serving':
      assert len(tree.body) == 1, f'{path}: a docstring only'


def test_importing_every_module_keeps_the_matplotlib_backend():
  before = matplotlib.get_backend()
  matplotlib.use('svg')
  try:
    for info in pkgutil.walk_packages(tfp_vae.__path__, 'tfp_vae.'):
      importlib.import_module(info.name)
    importlib.reload(plots)  # imported long before this test, maybe
    assert matplotlib.get_backend() == 'svg'
  finally:
    matplotlib.use(before)
