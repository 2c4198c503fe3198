"""What the checks share: a manifest's documents, the problems found in
them, field paths, and the containers a document runs with their flags."""

import os
from typing import Any, Iterable, NamedTuple, Optional

DEPLOY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REPO = os.path.dirname(DEPLOY)


class Problem(NamedTuple):
  file: str
  field: str
  message: str

  def __str__(self):
    return f'{self.file}: {self.field}: {self.message}'


class Document(NamedTuple):
  file: str  # relative to the repository
  body: dict

  @property
  def key(self):
    return (self.body.get('apiVersion'), self.body.get('kind'))


def field(path: Iterable[Any]) -> str:
  out = ''
  for part in path:
    out += f'[{part}]' if isinstance(part, int) else (
        f'.{part}' if out else str(part))
  return out or '(document)'


def mappings(node: Any, path: Optional[list] = None):
  """Yields (path, mapping) for every mapping in a document, depth first."""
  path = path or []
  if isinstance(node, dict):
    yield path, node
    for key, value in node.items():
      yield from mappings(value, path + [key])
  elif isinstance(node, list):
    for i, value in enumerate(node):
      yield from mappings(value, path + [i])


def containers(doc: Document) -> list[tuple[str, dict]]:
  """(field path, container) of every container a document runs."""
  return [(field(path + [key, i]), c)
          for path, node in mappings(doc.body)
          for key in ('containers', 'initContainers')
          if isinstance(node.get(key), list)
          for i, c in enumerate(node[key]) if isinstance(c, dict)]


def arg_flags(args: list) -> dict:
  return dict(a[2:].split('=', 1) for a in args or []
              if isinstance(a, str) and a.startswith('--') and '=' in a)
