"""Files written whole or not at all, and what interrupted writes leave.

Every file a run or an export writes goes to a temporary name beside its
final one, `NAME.tmp-PID` (directories: `.tmp-PID-XXXX`), and is renamed
into place when complete, so a reader never sees half of it.  The PID in
the name tells the leftovers of a process that is gone from the writes of
one still running (`remove_leftovers`).

This module does not import TensorFlow (the model server uses it too).
"""

import json
import os
import re
import shutil
from typing import Any, Callable, Iterable, Optional

_TEMP = re.compile(r'\.tmp-(\d+)')


def temp_path(path: str) -> str:
  """Where `path` is written before it is renamed into place."""
  return f'{path}.tmp-{os.getpid()}'


def write_text(path: str, text: str) -> None:
  """Writes `text` to `path` atomically (a temporary file renamed)."""
  tmp = temp_path(path)
  try:
    with open(tmp, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    try:
      os.remove(tmp)
    except OSError:
      pass  # gone already, or the storage refuses: the first error tells
    raise


def write_json(path: str, obj: Any) -> None:
  """Writes `obj` as indented, key-sorted JSON to `path` atomically."""
  write_text(path, json.dumps(obj, indent=2, sort_keys=True) + '\n')


def writer_pid(name: str) -> Optional[int]:
  """The PID in a temporary name (`x.tmp-123`, `.tmp-123-abcd`), if any."""
  found = _TEMP.search(name)
  return int(found.group(1)) if found else None


def pid_alive(pid: int) -> bool:
  """Whether process `pid` exists on this host."""
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True
  return True


def remove_leftovers(directories: Iterable[str],
                     also: Callable[[str, str], bool] = lambda d, n: False
                     ) -> list[str]:
  """Removes, in each of `directories`, the temporary files and folders of
  writers that are gone, and the entries `also(directory, name)` marks
  stale.  Returns what was removed."""
  removed = []
  for directory in directories:
    if not os.path.isdir(directory):
      continue
    for name in os.listdir(directory):
      pid = writer_pid(name)
      if not (pid is not None and not pid_alive(pid)) and not also(
          directory, name):
        continue
      full = os.path.join(directory, name)
      if os.path.isdir(full):
        shutil.rmtree(full, ignore_errors=True)
      elif os.path.exists(full):
        os.remove(full)
      removed.append(full)
  return removed
