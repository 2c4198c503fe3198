"""What the REST front ends share: the server's state, JSON in and out,
the request body limit, and the error reply.

Errors reply {"error": message} with the HTTP status of the Status's code
(TF Serving's mapping, `status.HTTP_STATUS`); a body above
--max_request_bytes gets 413.
"""

import dataclasses
import json
import math
from typing import Any, Mapping, Optional

from absl import logging
import numpy as np
import orjson
from starlette import requests
from starlette import responses

from tfp_vae.serving import monitoring
from tfp_vae.serving import repository
from tfp_vae.serving import status

# A body over the limit is read and dropped up to this size before the 413
# (see BodyLimit).
_DRAIN_BYTES = 2**30


@dataclasses.dataclass
class ServerState:
  """What every front end reads.

  Attributes:
    repository: the models and their versions.
    models: {name: kserve_adapter.ExportDirModel}.
    max_batch: the largest batch a request may carry.
    metrics: TF Serving's counters.
    monitoring_path: where TF Serving's Prometheus page is served.
  """
  repository: repository.Repository
  models: dict[str, Any]
  max_batch: int
  metrics: monitoring.Metrics
  monitoring_path: str = '/monitoring/prometheus/metrics'

  def model(self, name: str) -> Any:
    """The ExportDirModel `name`.

    Raises:
      Status: NOT_FOUND, TF Serving's message.
    """
    self.repository.get(name)
    return self.models[name]


class RequestTooLarge(Exception):
  """A request body above --max_request_bytes: HTTP 413."""


class BodyLimit:
  """ASGI middleware: a request body above `max_bytes` raises
  RequestTooLarge where the handler reads it.

  Nothing past the limit is kept.  The rest of the body is read and
  dropped (up to _DRAIN_BYTES) before the reply, so that a client still
  sending gets the 413 rather than a reset connection.
  """

  def __init__(self, app, max_bytes: int):
    self.app = app
    self.max_bytes = max_bytes

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      await self.app(scope, receive, send)
      return
    received = 0

    async def limited_receive():
      nonlocal received
      message = await receive()
      if message['type'] != 'http.request':
        return message
      received += len(message.get('body', b''))
      if received <= self.max_bytes:
        return message
      while message.get('more_body') and received < _DRAIN_BYTES:
        message = await receive()
        received += len(message.get('body', b''))
      raise RequestTooLarge(f'the request body has {received} bytes or more, '
                            f'above this server\'s limit of {self.max_bytes}'
                            ' (--max_request_bytes)')

    await self.app(scope, limited_receive, send)


async def read_body(request: requests.Request) -> bytes:
  """The body (RequestTooLarge propagates to `error_reply`)."""
  return await request.body()


def loads(raw: bytes) -> Any:
  """JSON, with TF Serving's NaN, Infinity and -Infinity tokens.

  Raises:
    Status: INVALID_ARGUMENT, "JSON Parse error: ...".
  """
  if not raw:
    raise status.invalid_argument('JSON Parse error: The document is empty')
  try:
    return orjson.loads(raw)
  except orjson.JSONDecodeError as e:
    first = e
  try:  # the standard library reads the non-finite tokens orjson refuses
    return json.loads(raw)
  except (ValueError, UnicodeDecodeError):
    raise status.invalid_argument(f'JSON Parse error: {first}') from None


def _non_finite(value: Any) -> bool:
  if isinstance(value, np.ndarray):
    return value.dtype.kind == 'f' and not np.isfinite(value).all()
  if isinstance(value, float):
    return not math.isfinite(value)
  if isinstance(value, dict):
    return any(_non_finite(v) for v in value.values())
  if isinstance(value, (list, tuple)):
    return any(_non_finite(v) for v in value)
  return False


def dumps(content: Any) -> bytes:
  """JSON bytes; NumPy arrays written directly, non-finite floats as TF
  Serving writes them (NaN, Infinity), not as null."""
  if _non_finite(content):
    return json.dumps(content, default=lambda a: a.tolist()).encode()
  return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


def json_response(content: Any, status_code: int = 200,
                  headers: Optional[Mapping[str, str]] = None
                  ) -> responses.Response:
  if isinstance(content, bytes):
    return responses.Response(content, status_code=status_code,
                              headers=dict(headers or {}))
  return responses.Response(dumps(content), status_code=status_code,
                            headers=dict(headers or {}),
                            media_type='application/json')


def error_reply(request: requests.Request, error: Exception
                ) -> tuple[responses.Response, str]:
  """(The {"error": ...} response, its code name) for an exception a
  handler raised, logged in one line; an unexpected exception is a 500
  with its type and message (and its traceback in the log)."""
  # pylint: disable=g-import-not-at-top
  from tfp_vae.serving import kserve_adapter
  # pylint: enable=g-import-not-at-top
  if isinstance(error, RequestTooLarge):
    code, http_status, message = 'INVALID_ARGUMENT', 413, str(error)
  else:
    found = error if isinstance(error, status.Status) else (
        kserve_adapter.kserve_status(error))
    if found is None:
      logging.exception('%s %s failed', request.method, request.url.path)
      found = status.Status('INTERNAL', f'{type(error).__name__}: {error}')
    code, http_status, message = found.code, found.http_status, found.message
  logging.warning('%s %s -> %d: %s', request.method, request.url.path,
                  http_status, message)
  return json_response({'error': message}, http_status), code
