"""How a setting is declared: its default, help text, allowed values, and
whether a resumed run may change it.  The command-line flags are generated
from these declarations (`trainers/common.py`)."""

import dataclasses
from typing import Any


def field(default: Any, help_text: str, choices: tuple = (),
          resumable: bool = False, factory=None):
  """A dataclass field declaring a setting (`factory` makes mutable
  defaults)."""
  metadata = {'help': help_text, 'choices': choices, 'resumable': resumable}
  if factory is not None:
    return dataclasses.field(default_factory=factory, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)
