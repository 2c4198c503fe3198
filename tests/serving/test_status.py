"""TF Serving's status codes and their HTTP statuses
(tfp_vae/serving/status.py)."""

import pytest
import tensorflow as tf

from tfp_vae.serving import status


def test_status_codes_map_as_tf_serving_maps_them():
  assert status.invalid_argument('x').http_status == 400
  assert status.not_found('x').http_status == 404
  for error, code, http_status in (
      (tf.errors.ResourceExhaustedError, 'RESOURCE_EXHAUSTED', 429),
      (tf.errors.UnavailableError, 'UNAVAILABLE', 503),
      (tf.errors.DeadlineExceededError, 'DEADLINE_EXCEEDED', 504),
      (tf.errors.FailedPreconditionError, 'FAILED_PRECONDITION', 400),
      (tf.errors.UnimplementedError, 'UNIMPLEMENTED', 501),
      (tf.errors.InternalError, 'INTERNAL', 500)):
    found = status.from_tf_error(error(None, None, 'm').error_code, 'm')
    assert (found.code, found.http_status) == (code, http_status)
  with pytest.raises(ValueError, match='must be an error code'):
    status.Status('OK', 'no')
