"""The kubernetes client internal the deployment checks use, for want of a
public API: `ApiClient`'s deserialiser (name-mangled `__deserialize`),
which builds the client's model classes from a dict and so checks required
fields the way the client itself does.  The client's public
`ApiClient.deserialize` takes an HTTP response, not a dict.
tests/deploy/test_kubernetes_internals.py exercises it against the installed
client.
"""

from typing import Any


def deserialize(api_client: Any, data: dict, class_name: str) -> Any:
  """`data` as the model class `class_name` (e.g. 'V1Job'), as the client
  builds it; ValueError or TypeError where it refuses."""
  return api_client._ApiClient__deserialize(data, class_name)  # pylint: disable=protected-access
