"""Value checks shared by the configuration and the model family.

Each raises `errors.ConfigError` naming the setting and showing the value,
e.g. `latent_dim must be a positive integer, got -3`.  Plain Python: no
TensorFlow, so command lines refuse a bad value before TensorFlow loads.
"""

import math
from typing import Any, Iterable

from tfp_vae.internal import errors


def is_number(value: Any) -> bool:
  return isinstance(value, (int, float)) and not isinstance(value, bool)


def one_of(name: str, value: Any, allowed: Iterable[Any]) -> None:
  allowed = list(allowed)
  if value not in allowed:
    raise errors.ConfigError(name, value, f'must be one of {allowed}')


def positive_int(name: str, value: Any) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
    raise errors.ConfigError(name, value, 'must be a positive integer')


def non_negative_int(name: str, value: Any) -> None:
  if not isinstance(value, int) or isinstance(value, bool) or value < 0:
    raise errors.ConfigError(name, value, 'must be a non-negative integer')


def positive_float(name: str, value: Any) -> None:
  if not is_number(value) or not math.isfinite(value) or value <= 0:
    raise errors.ConfigError(name, value, 'must be a positive finite number')


def finite(name: str, value: Any) -> None:
  if not is_number(value) or not math.isfinite(value):
    raise errors.ConfigError(name, value, 'must be a finite number')


def finite_non_negative(name: str, value: Any) -> None:
  if not is_number(value) or not math.isfinite(value) or value < 0:
    raise errors.ConfigError(name, value, 'must be a finite number >= 0')


def boolean(name: str, value: Any) -> None:
  if not isinstance(value, bool):
    raise errors.ConfigError(name, value, 'must be true or false')


def text(name: str, value: Any, what: str) -> None:
  if not isinstance(value, str) or not value:
    raise errors.ConfigError(name, value, f'must be {what}')


def port(name: str, value: Any, allow_zero: bool) -> None:
  low = 0 if allow_zero else 1
  if not isinstance(value, int) or isinstance(value, bool) or not (
      low <= value <= 65535):
    raise errors.ConfigError(name, value, f'must be a port in [{low}, 65535]'
                             + (' (0: off)' if allow_zero else ''))
