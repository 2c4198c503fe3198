"""The export directory's layout, shared by the writer and the server.

A model base path (TF Serving's term) holds one folder per version, named by
an integer: `export_dir/1/`, `export_dir/2/`, ...  `tfp_vae.export` writes
them (each to a temporary folder first, renamed into place); TF Serving and
`tfp_vae.serving` read them and serve the highest.  This module imports
nothing heavier than `os` so that the server, which must not import
TensorFlow Probability, and the exporter share it.
"""

import os
import re

_VERSION = re.compile(r'^\d+$')


def versions(export_dir: str) -> list[int]:
  """Integer version folders present in export_dir, ascending.

  Args:
    export_dir: a model base path; a missing one has no versions.

  Returns:
    The versions, e.g. [1, 2, 5]; temporary folders and files are ignored.
  """
  if not os.path.isdir(export_dir):
    return []
  return sorted(int(d) for d in os.listdir(export_dir)
                if _VERSION.match(d) and
                os.path.isdir(os.path.join(export_dir, d)))
