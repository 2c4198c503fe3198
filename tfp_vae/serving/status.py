"""What a request that fails answers: TensorFlow's error codes, as TF
Serving maps them to HTTP statuses and gRPC codes.

Every refusal in the server is a `Status` naming one canonical code
(TensorFlow's `error_codes.proto`, the same names as gRPC's), so the REST
and gRPC front ends answer alike: REST with `{"error": message}` and the
HTTP status of TF Serving's `ToHTTPStatusCode` (http_server.cc), gRPC with
the code itself.  This module imports nothing but the standard library.
"""

from typing import Optional

# TF Serving's ToHTTPStatusCode (model_servers/http_server.cc).
HTTP_STATUS = {
    'OK': 200,
    'CANCELLED': 499,
    'UNKNOWN': 500,
    'INVALID_ARGUMENT': 400,
    'DEADLINE_EXCEEDED': 504,
    'NOT_FOUND': 404,
    'ALREADY_EXISTS': 409,
    'PERMISSION_DENIED': 403,
    'RESOURCE_EXHAUSTED': 429,
    'FAILED_PRECONDITION': 400,
    'ABORTED': 409,
    'OUT_OF_RANGE': 400,
    'UNIMPLEMENTED': 501,
    'INTERNAL': 500,
    'UNAVAILABLE': 503,
    'DATA_LOSS': 500,
    'UNAUTHENTICATED': 401,
}

# tf.errors.OpError.error_code (an int) -> its name.
_TF_CODE_NAMES = {
    1: 'CANCELLED', 2: 'UNKNOWN', 3: 'INVALID_ARGUMENT',
    4: 'DEADLINE_EXCEEDED', 5: 'NOT_FOUND', 6: 'ALREADY_EXISTS',
    7: 'PERMISSION_DENIED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION',
    10: 'ABORTED', 11: 'OUT_OF_RANGE', 12: 'UNIMPLEMENTED', 13: 'INTERNAL',
    14: 'UNAVAILABLE', 15: 'DATA_LOSS', 16: 'UNAUTHENTICATED',
}


class Status(Exception):
  """A refused or failed request: a canonical code and a message.

  Attributes:
    code: e.g. 'INVALID_ARGUMENT', 'NOT_FOUND' (a key of HTTP_STATUS).
    message: one line, shown to the client as it is.
  """

  def __init__(self, code: str, message: str):
    if code not in HTTP_STATUS or code == 'OK':
      raise ValueError(f'code must be an error code of {sorted(HTTP_STATUS)}'
                       f', got {code!r}')
    super().__init__(message)
    self.code = code
    self.message = message

  @property
  def http_status(self) -> int:
    """The HTTP status TF Serving's REST API answers with."""
    return HTTP_STATUS[self.code]

  def __str__(self) -> str:
    return self.message


def invalid_argument(message: str) -> Status:
  return Status('INVALID_ARGUMENT', message)


def not_found(message: str) -> Status:
  return Status('NOT_FOUND', message)


def unimplemented(message: str) -> Status:
  return Status('UNIMPLEMENTED', message)


def code_name(tf_error_code: int) -> str:
  """The name of a `tf.errors.OpError.error_code` ('UNKNOWN' if unknown)."""
  return _TF_CODE_NAMES.get(tf_error_code, 'UNKNOWN')


def from_tf_error(error_code: int, message: str,
                  fallback: Optional[str] = None) -> Status:
  """A Status for a TensorFlow error: its own code (RESOURCE_EXHAUSTED ->
  429, UNAVAILABLE -> 503, DEADLINE_EXCEEDED -> 504, ...), `fallback` for
  an unknown one."""
  name = _TF_CODE_NAMES.get(error_code)
  return Status(name or fallback or 'UNKNOWN', message)
