"""Helpers for tests of the package and of plugins, not for training:
undoing what a test registered.

This module does not import TensorFlow.
"""

from tfp_vae.internal import registry as registry_lib


def unregister(registry: registry_lib.Registry, name: str) -> None:
  """Removes `name` from `registry` (a test that registered its own class
  leaves the registry as it found it)."""
  registry._entries.pop(name, None)  # pylint: disable=protected-access
