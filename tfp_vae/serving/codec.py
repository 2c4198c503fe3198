"""Tensors to and from TF Serving's JSON, and the dtypes of KServe's V2
protocol: pure functions, no server (classify and regress bodies are
`tf_examples`, TensorProtos `tensor_protos`).

TF Serving's REST API ("RESTful API", g3doc/api_rest.md, and its parser
util/json_tensor.cc):

- predict: "instances" (row format: one entry per example, the value of
  the only input or an object naming every input) or "inputs" (columnar:
  the only input's value or an object naming every input); the reply is
  {"predictions": ...} or {"outputs": ...}, a lone output unnamed.
- DT_STRING values are JSON strings or {"b64": "<base64>"} objects; outputs
  whose name ends in `_bytes` are written as {"b64": ...}.

Every refusal is a `status.Status` (INVALID_ARGUMENT) whose message names
the input and shows the bad value.
"""

import base64
import binascii
from typing import Any, Mapping

import numpy as np
import tensorflow as tf

from tfp_vae.serving import status

DEFAULT_SIGNATURE = 'serving_default'
BYTES_SUFFIX = '_bytes'

# KServe V2 (Open Inference Protocol) datatypes of TensorFlow's dtypes.
V2_DATATYPES = {
    tf.bool: 'BOOL', tf.uint8: 'UINT8', tf.uint16: 'UINT16',
    tf.uint32: 'UINT32', tf.uint64: 'UINT64', tf.int8: 'INT8',
    tf.int16: 'INT16', tf.int32: 'INT32', tf.int64: 'INT64',
    tf.float16: 'FP16', tf.float32: 'FP32', tf.float64: 'FP64',
    tf.string: 'BYTES', tf.bfloat16: 'BF16',
}


def preview(value: Any, limit: int = 60) -> str:
  """repr(value), cut to `limit` characters."""
  text = repr(value)
  return text if len(text) <= limit else text[:limit] + '...'


# -- JSON values -> arrays ---------------------------------------------------


def is_b64(value: Any) -> bool:
  """{"b64": "<string>"}, TF Serving's binary value."""
  return (isinstance(value, dict) and len(value) == 1 and
          isinstance(value.get('b64'), str))


def b64_decode(name: str, value: dict) -> bytes:
  try:
    return base64.b64decode(value['b64'], validate=True)
  except (binascii.Error, ValueError):
    raise status.invalid_argument(
        f'input {name!r}: {preview(value)} is not valid base64') from None


def _string_leaf(name: str, value: Any) -> bytes:
  if isinstance(value, str):
    return value.encode('utf-8')
  if is_b64(value):
    return b64_decode(name, value)
  if isinstance(value, dict):
    raise status.invalid_argument(
        f'input {name!r}: {preview(value)} is not formatted correctly for '
        'base64 data (an object with the one key "b64")')
  raise status.invalid_argument(
      f'input {name!r} must hold strings (DT_STRING: a JSON string or '
      f'{{"b64": ...}}); got {preview(value)}')


def _strings(name: str, value: Any) -> np.ndarray:
  """Nested lists of strings / b64 objects -> an object array of bytes."""

  def shape_of(v):
    return [len(v)] + (shape_of(v[0]) if v else []) if isinstance(
        v, list) else []

  shape = shape_of(value)
  flat = []

  def walk(v, depth):
    if depth == len(shape):
      if isinstance(v, list):
        raise status.invalid_argument(
            f'input {name!r} is not a rectangular array: a list nested '
            f'deeper than the first entries at {preview(v)}')
      flat.append(_string_leaf(name, v))
      return
    if not isinstance(v, list) or len(v) != shape[depth]:
      raise status.invalid_argument(
          f'input {name!r} is not a rectangular array: expected a list of '
          f'{shape[depth]} at depth {depth}, got {preview(v)}')
    for item in v:
      walk(item, depth + 1)

  walk(value, 0)
  array = np.empty(len(flat), dtype=object)
  array[:] = flat
  return array.reshape(shape)


def to_array(name: str, value: Any, dtype: tf.DType) -> np.ndarray:
  """A request's value for input `name` as a NumPy array of `dtype`.

  Args:
    name: the input's name, for messages.
    value: nested lists of numbers, booleans or strings (JSON), or an array
      (gRPC).
    dtype: the signature's dtype for the input.

  Returns:
    The array, converted to `dtype` (an object array of bytes for
    DT_STRING).

  Raises:
    Status: INVALID_ARGUMENT: ragged, of the wrong kind (strings for
      numbers, numbers for strings), fractional or out of range for an
      integer dtype, not base64.
  """
  if dtype == tf.string:
    if isinstance(value, np.ndarray):
      if value.dtype.kind in 'OSU':
        return np.vectorize(
            lambda v: v if isinstance(v, bytes) else str(v).encode('utf-8'),
            otypes=[object])(value) if value.size else value.astype(object)
      raise status.invalid_argument(
          f'input {name!r} must hold strings (DT_STRING); got an array of '
          f'{value.dtype}')
    return _strings(name, value)
  try:
    array = np.asarray(value)
  except (ValueError, TypeError) as e:
    raise status.invalid_argument(
        f'input {name!r} is not a rectangular array of numbers ({e})'
    ) from None
  if dtype == tf.bool:
    if array.dtype.kind != 'b':
      raise status.invalid_argument(
          f'input {name!r} must hold booleans (true, false); got '
          f'{preview(value)}')
    return array
  if array.dtype.kind not in 'biuf':
    raise status.invalid_argument(
        f'input {name!r} must hold numbers ({dtype.name}); got '
        f'{preview(value)}')
  if dtype.is_integer and array.size:
    if array.dtype.kind == 'f' and not np.all(np.isfinite(array) & (
        array == np.round(array))):
      raise status.invalid_argument(
          f'input {name!r} must hold integers ({dtype.name}); got '
          f'{preview(value)}')
    limits = np.iinfo(dtype.as_numpy_dtype)
    if array.min() < limits.min or array.max() > limits.max:
      raise status.invalid_argument(
          f'input {name!r} is out of range for {dtype.name}; got '
          f'{preview(value)}')
  return array.astype(dtype.as_numpy_dtype, copy=False)


def check_batch(arrays: Mapping[str, np.ndarray], max_batch: int) -> None:
  """Refuses a batch above `max_batch`: any input's leading dimension, or
  a scalar `num_samples` (this package's `sample` signature).

  Raises:
    Status: INVALID_ARGUMENT naming the input, its batch and the limit.
  """
  for name, array in arrays.items():
    if array.ndim and array.shape[0] > max_batch:
      raise status.invalid_argument(
          f'input {name!r} has a batch of {array.shape[0]}, above this '
          f'server\'s limit of {max_batch} (--max_batch)')
  samples = arrays.get('num_samples')
  if (samples is not None and samples.ndim == 0 and
      samples.dtype.kind in 'iu' and samples > max_batch):
    raise status.invalid_argument(
        f'num_samples {int(samples)} is above this server\'s limit of '
        f'{max_batch} (--max_batch)')


# -- TF Serving's predict JSON -----------------------------------------------


def signature_name_of(body: Any) -> str:
  """The body's "signature_name" (default serving_default).

  Raises:
    Status: the body is not an object, or the name is not a string.
  """
  if not isinstance(body, dict):
    raise status.invalid_argument(
        f'the request body must be a JSON object; got {preview(body)}')
  signature = body.get('signature_name')
  if signature is None or signature == '':
    return DEFAULT_SIGNATURE
  if not isinstance(signature, str):
    raise status.invalid_argument(
        f'signature_name must be a string; got {preview(signature)}')
  return signature


def _is_named(value: Any) -> bool:
  return isinstance(value, dict) and not is_b64(value)


def parse_predict_body(body: Any, input_dtypes: Mapping[str, tf.DType],
                       max_batch: int
                       ) -> tuple[dict[str, np.ndarray], bool]:
  """A REST :predict body -> ({input: array}, row format).

  Args:
    body: the parsed JSON body.
    input_dtypes: {input name: dtype} of the body's signature.
    max_batch: the largest number of instances.

  Raises:
    Status: INVALID_ARGUMENT: neither or both of instances and inputs,
      instances that are not a non-empty list, too many instances, unnamed
      values for a signature with several inputs, missing or unknown
      inputs, values that do not fit the inputs' dtypes.
  """
  signature = signature_name_of(body)
  if ('instances' in body) == ('inputs' in body):
    raise status.invalid_argument(
        "the request body must have exactly one of 'instances' (row format) "
        f"or 'inputs' (columnar format); got keys {sorted(body)}")
  names = sorted(input_dtypes)
  row_format = 'instances' in body
  values = body['instances'] if row_format else body['inputs']
  if row_format:
    if not isinstance(values, list):
      raise status.invalid_argument(
          "'instances' must be a list (one entry per example); got "
          f'{preview(values)}')
    if not values:
      raise status.invalid_argument(
          "'instances' is an empty list: send at least one example")
    if len(values) > max_batch:
      raise status.invalid_argument(
          f'{len(values)} instances are above this server\'s limit of '
          f'{max_batch} (--max_batch)')
    if _is_named(values[0]):
      for i, instance in enumerate(values):
        if not _is_named(instance) or sorted(instance) != names:
          got = sorted(instance) if _is_named(instance) else preview(instance)
          raise status.invalid_argument(
              f'instance {i} has inputs {got}; signature {signature!r} '
              f'takes {names}')
      inputs = {n: [v[n] for v in values] for n in names}
    elif len(names) != 1:
      raise status.invalid_argument(
          f'signature {signature!r} takes {len(names)} inputs {names}: make '
          'each instance an object with those keys')
    else:
      if any(_is_named(v) for v in values):
        raise status.invalid_argument(
            "'instances' mixes objects and values; use one or the other")
      inputs = {names[0]: values}
  elif _is_named(values):
    inputs = values
  elif len(names) != 1:
    raise status.invalid_argument(
        f'signature {signature!r} takes {len(names)} inputs {names}: make '
        "'inputs' an object with those keys")
  else:
    inputs = {names[0]: values}
  return to_arrays(signature, inputs, input_dtypes), row_format


def to_arrays(signature: str, inputs: Mapping[str, Any],
              input_dtypes: Mapping[str, tf.DType]) -> dict[str, np.ndarray]:
  """{input: value} -> {input: array}, every input of the signature and no
  other.

  Raises:
    Status: INVALID_ARGUMENT: missing or unknown inputs, see `to_array`.
  """
  missing = sorted(set(input_dtypes) - set(inputs))
  unknown = sorted(set(inputs) - set(input_dtypes))
  if missing or unknown:
    raise status.invalid_argument(
        f'signature {signature!r} takes inputs {sorted(input_dtypes)}; '
        + (f'missing {missing}' if missing else '')
        + ('; ' if missing and unknown else '')
        + (f'unknown {unknown}' if unknown else ''))
  return {name: to_array(name, value, input_dtypes[name])
          for name, value in inputs.items()}


def json_value(name: str, array: np.ndarray) -> Any:
  """An output array as JSON: arrays of numbers as they are (orjson writes
  NumPy), strings as JSON strings, or {"b64": ...} for names ending in
  `_bytes` and bytes that are not UTF-8."""
  if array.dtype.kind != 'O' and array.dtype.kind != 'S':
    return array
  as_bytes = name.endswith(BYTES_SUFFIX)

  def one(v):
    v = v if isinstance(v, bytes) else str(v).encode('utf-8')
    if not as_bytes:
      try:
        return v.decode('utf-8')
      except UnicodeDecodeError:
        pass
    return {'b64': base64.b64encode(v).decode('ascii')}

  return np.vectorize(one, otypes=[object])(array).tolist() if array.size \
      else array.tolist()


def predict_reply(outputs: Mapping[str, np.ndarray], row_format: bool
                  ) -> dict[str, Any]:
  """Outputs -> TF Serving's reply: {"predictions": ...} for the row format,
  {"outputs": ...} for the columnar one; a lone output is not named.

  Raises:
    Status: INVALID_ARGUMENT: row format with outputs that do not share a
      batch size (use the columnar format).
  """
  names = sorted(outputs)
  values = {n: json_value(n, outputs[n]) for n in names}
  if not row_format:
    return {'outputs': values[names[0]] if len(names) == 1 else values}
  sizes = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
  if len(sizes) != 1 or None in sizes:
    raise status.invalid_argument(
        'the outputs do not share a batch size, so they cannot be returned '
        "as rows; use the columnar 'inputs' format")
  if len(names) == 1:
    return {'predictions': values[names[0]]}
  return {'predictions': [{n: values[n][i] for n in names}
                          for i in range(sizes.pop())]}



# -- KServe V2 metadata ------------------------------------------------------


def v2_tensor_metadata(name: str, tensor_info) -> dict[str, Any]:
  """A SignatureDef TensorInfo as a V2 metadata tensor: {"name",
  "datatype", "shape"}; unknown dimensions are -1 and an unknown rank is
  [-1] (V2 has no way to say "any rank")."""
  dtype = tf.as_dtype(tensor_info.dtype)
  shape = tensor_info.tensor_shape
  dims = [-1] if shape.unknown_rank else [int(d.size) for d in shape.dim]
  return {'name': name, 'datatype': V2_DATATYPES.get(dtype, dtype.name),
          'shape': dims}
