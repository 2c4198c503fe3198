"""The export directory's layout, shared by the writer and the server.

A model base path (TF Serving's term) holds one folder per version, named by
an integer: `export_dir/1/`, `export_dir/2/`, ...  `tfp_vae.model.export` writes
them (each to a temporary folder first, renamed into place); TF Serving and
`tfp_vae.serving` read them.  A folder name may have leading zeros, as TF
Serving's own test models do (`00000123/` is version 123).  This module
imports nothing heavier than `os` so that the server, which must not import
TensorFlow Probability, and the exporter share it.
"""

import os
import re

_VERSION = re.compile(r'^\d+$')


def version_dirs(export_dir: str) -> dict[int, str]:
  """{version: folder name} of the integer version folders in export_dir.

  Args:
    export_dir: a model base path; a missing one has no versions.

  Returns:
    e.g. {1: '1', 123: '00000123'}; temporary folders and files are
    ignored.  Two folders naming the same number ('5' and '005'): the name
    that sorts first.
  """
  if not os.path.isdir(export_dir):
    return {}
  found = {}
  for name in sorted(os.listdir(export_dir), reverse=True):
    if _VERSION.match(name) and os.path.isdir(os.path.join(export_dir, name)):
      found[int(name)] = name
  return dict(sorted(found.items()))


def versions(export_dir: str) -> list[int]:
  """Integer version folders present in export_dir, ascending.

  Args:
    export_dir: a model base path; a missing one has no versions.

  Returns:
    The versions, e.g. [1, 2, 5] (`00000005/` is 5); temporary folders and
    files are ignored.
  """
  return list(version_dirs(export_dir))
