"""The docs are current: the generated pages equal what the code prints,
the package docstring lists every module, every link in README.md and
docs/ resolves (files, and headings within them), and the Python API's
examples (docs/python.md, README.md, the API's docstrings) run as
doctests."""

import doctest
import importlib
import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

sys.path.insert(0, os.path.join(REPO, 'docs'))
import generate  # pylint: disable=g-import-not-at-top,wrong-import-position

PAGES = [os.path.join(REPO, 'README.md')] + sorted(
    os.path.join(REPO, 'docs', f) for f in os.listdir(
        os.path.join(REPO, 'docs')) if f.endswith('.md'))
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')


def _anchors(path: str) -> set[str]:
  """GitHub's heading anchors of a Markdown file."""
  out = set()
  with open(path) as f:
    text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
  for line in text.splitlines():
    if line.startswith('#'):
      title = line.lstrip('#').strip().lower()
      title = re.sub(r'[^\w\- ]', '', title)
      out.add(title.replace(' ', '-'))
  return out


def broken_links(pages=PAGES) -> list[str]:
  broken = []
  for page in pages:
    with open(page) as f:
      text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
    for target in LINK.findall(text):
      if re.match(r'[a-z]+://', target) or target.startswith('mailto:'):
        continue  # no network here; external links are not checked
      file_part, _, anchor = target.partition('#')
      path = (os.path.normpath(os.path.join(os.path.dirname(page),
                                            file_part)) if file_part
              else page)
      where = f'{os.path.relpath(page, REPO)}: {target}'
      if not os.path.exists(path):
        broken.append(f'{where} (no such file)')
      elif anchor and path.endswith('.md') and anchor not in _anchors(path):
        broken.append(f'{where} (no such heading)')
  return broken


def test_the_generated_pages_equal_what_the_code_prints():
  r = subprocess.run([sys.executable, os.path.join(REPO, 'docs',
                                                   'generate.py'), '--check'],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr


def test_the_package_docstring_lists_every_module():
  """Each subpackage (`name/` at the start of a line) with its modules
  (two spaces in) under it, a package inside a subpackage (data/sources/)
  as one of its modules, the package's own modules under `The top`;
  serving/'s own docstring lists its modules."""
  import tfp_vae  # pylint: disable=g-import-not-at-top
  root = os.path.dirname(tfp_vae.__file__)
  listed, package = set(), ''
  for line in tfp_vae.__doc__.splitlines():
    header = re.match(r'(\w+)/(\s|$)', line)
    if header:
      package = f'{header.group(1)}/'
      listed.add(package)
    elif line.startswith('The top'):
      package = ''
    else:
      listed.update(package + name
                    for name in re.findall(r'^  (\w+)(?: |$)', line))
  modules = set()
  for dirpath, dirs, names in os.walk(root):
    folder = os.path.relpath(dirpath, root)
    if folder == '.':
      folder = ''
    elif '__init__.py' in names and os.sep not in folder:
      folder += '/'
      modules.add(folder)
    else:
      continue
    if folder != 'serving/':
      modules |= {folder + n[:-3] for n in names
                  if n.endswith('.py') and n != '__init__.py'}
      # A package inside a subpackage (data/sources/) is one of its modules.
      modules |= {folder + d for d in dirs if folder and os.path.exists(
          os.path.join(dirpath, d, '__init__.py'))}
  assert modules - listed == set()
  assert listed - modules == set()


def test_every_link_resolves():
  assert broken_links() == []


def test_the_link_check_finds_a_broken_link(tmp_path):
  page = tmp_path / 'page.md'
  page.write_text('# Title\n\n[a](page.md#title) [b](gone.md) '
                  '[c](#no-such) [d](https://example.com)\n'
                  '```\n[in code](ignored.md)\n```\n')
  assert broken_links([str(page)]) == [
      f'{os.path.relpath(page, REPO)}: gone.md (no such file)',
      f'{os.path.relpath(page, REPO)}: #no-such (no such heading)']


def test_the_readme_is_one_screen_per_job():
  with open(os.path.join(REPO, 'README.md')) as f:
    readme = f.read()
  assert len(readme.splitlines()) < 150
  for job in ('## Quickstart', '## Train', '## Compare', '## Evaluate',
              '## Serve', '## Deploy'):
    assert job in readme
  quickstart = readme.split('## Quickstart', 1)[1].split('\n## ', 1)[0]
  block = quickstart.split('```bash', 1)[1].split('```', 1)[0]
  assert [l.split()[:2] for l in block.strip().splitlines()] == [
      ['make', 'quickstart'], ['make', 'test']]


@pytest.mark.parametrize('command', generate.COMMANDS)
def test_flags_page_holds_each_commands_help(command):
  with open(os.path.join(REPO, 'docs', 'flags.md')) as f:
    assert f'## trainers.{command}\n' in f.read()


DOCTEST_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


@pytest.mark.parametrize('page', ['docs/python.md', 'README.md'])
def test_the_python_examples_run(page):
  result = doctest.testfile(os.path.join(REPO, page), module_relative=False,
                            optionflags=DOCTEST_FLAGS, verbose=False)
  assert result.attempted > 0 and result.failed == 0, result


@pytest.mark.parametrize('module', ['tfp_vae.api', 'tfp_vae.data.datasets'])
def test_the_api_docstrings_run(module):
  result = doctest.testmod(importlib.import_module(module),
                           optionflags=DOCTEST_FLAGS, verbose=False)
  assert result.attempted > 0 and result.failed == 0, result
