"""The serving protocols the client speaks, as plain functions usable (and
tested) without a server: TF Serving's (v1: REST :predict bodies, and
tensorflow-serving-api's PredictRequest over gRPC) and KServe's V2 (Open
Inference Protocol: /v2/models/MODEL/infer bodies, and ModelInferRequest over
gRPC), each with the reply's outputs as numpy arrays.

Every failure (an HTTP or gRPC error with the server's own message, no
server, no reply within the timeout, a reply that is not JSON) is a
`ClientError` of one line.  deploy/serving/client.py is the command line
over it.
"""

import json
import socket
import sys
import threading
import urllib.error
import urllib.request
from typing import Any, Mapping, Optional

import numpy as np

SIGNATURES = ('encode', 'decode', 'reconstruct', 'sample', 'log_likelihood',
              'serving_default')
# The output of the signatures with one output, which TF Serving's replies
# leave unnamed.
SINGLE_OUTPUT = {'decode': 'images', 'reconstruct': 'reconstructions',
                 'log_likelihood': 'log_likelihood'}
DEFAULT_TIMEOUT = 30.0


class ClientError(Exception):
  """Anything that ends the client with a one-line message and exit 1."""


def rest_body(signature: str, inputs: Mapping[str, Any],
              row_format: bool = True) -> dict:
  """The JSON body of a TF Serving REST :predict request.

  Row format ("instances") fits signatures with one batched input
  (encode, decode, reconstruct, log_likelihood): one list entry per example.
  Columnar format ("inputs") fits everything, including `sample`, whose
  inputs are scalars.

  Raises:
    ValueError: row format with several inputs.
  """
  values = {k: np.asarray(v).tolist() for k, v in inputs.items()}
  if row_format:
    if len(values) != 1:
      raise ValueError(f'row format needs exactly one input, got '
                       f'{sorted(values)}; use row_format=False')
    return {'signature_name': signature,
            'instances': next(iter(values.values()))}
  return {'signature_name': signature, 'inputs': values}


def predict_url(server: str, model: str,
                version: Optional[int] = None) -> str:
  """SERVER/v1/models/MODEL[/versions/N]:predict."""
  where = f'/versions/{version}' if version is not None else ''
  return f'{server.rstrip("/")}/v1/models/{model}{where}:predict'


def _call_with_deadline(fn, timeout: float, what: str):
  """fn() in a daemon thread, abandoned after `timeout` seconds overall
  (socket timeouts bound each read, not a reply that trickles in)."""
  result = {}

  def target():
    try:
      result['value'] = fn()
    except BaseException as e:  # pylint: disable=broad-except
      result['error'] = e

  thread = threading.Thread(target=target, daemon=True)
  thread.start()
  thread.join(timeout)
  if thread.is_alive():
    raise ClientError(f'no reply from {what} within {timeout:g}s (--timeout)')
  if 'error' in result:
    raise result['error']
  return result['value']


def _one_line(text: str) -> str:
  return ' '.join(text.split())


def rest_predict(server: str, model: str, body: dict,
                 timeout: float = DEFAULT_TIMEOUT,
                 version: Optional[int] = None) -> dict:
  """POSTs body to SERVER/v1/models/MODEL[/versions/N]:predict.

  Returns:
    The JSON reply.

  Raises:
    ClientError: see post_json.
  """
  return post_json(predict_url(server, model, version), body, timeout)


def post_json(url: str, body: dict, timeout: float = DEFAULT_TIMEOUT
              ) -> dict:
  """POSTs body to url.

  Returns:
    The JSON reply.

  Raises:
    ClientError: an HTTP error (with the server's {"error": ...} message),
      no connection, no reply within `timeout` seconds, a reply that is not
      JSON.
  """
  request = urllib.request.Request(
      url, data=json.dumps(body).encode(), method='POST',
      headers={'Content-Type': 'application/json'})

  def send():
    with urllib.request.urlopen(request, timeout=timeout) as reply:
      return reply.read()

  try:
    raw = _call_with_deadline(send, timeout, url)
  except urllib.error.HTTPError as e:
    text = e.read().decode(errors='replace')
    try:
      message = json.loads(text)['error']
    except (ValueError, KeyError, TypeError):
      message = text or e.reason
    raise ClientError(f'HTTP {e.code} from {url}: {_one_line(str(message))}'
                      ) from None
  except urllib.error.URLError as e:
    reason = e.reason
    if isinstance(reason, (socket.timeout, TimeoutError)):
      raise ClientError(f'no reply from {url} within {timeout:g}s '
                        '(--timeout)') from None
    raise ClientError(f'cannot reach {url}: {reason}') from None
  except (socket.timeout, TimeoutError):
    raise ClientError(f'no reply from {url} within {timeout:g}s (--timeout)'
                      ) from None
  except OSError as e:  # connection reset mid-reply, ...
    raise ClientError(f'connection to {url} failed: {e}') from None
  try:
    return json.loads(raw)
  except ValueError:
    raise ClientError(f'{url} replied with something that is not JSON: '
                      f'{_one_line(raw[:200].decode(errors="replace"))}'
                      ) from None


def predict_request(model: str, signature: str, inputs: Mapping[str, Any],
                    version: Optional[int] = None):
  """A tensorflow_serving.apis.predict_pb2.PredictRequest."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  request.model_spec.signature_name = signature
  if version is not None:
    request.model_spec.version.value = version
  for name, value in inputs.items():
    array = np.asarray(value)
    dtype = np.int64 if array.dtype.kind in 'iu' else np.float32
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array.astype(dtype)))
  return request


def _grpc_failure(error, target: str, timeout: float) -> ClientError:
  """A gRPC error as the client's one line."""
  import grpc  # pylint: disable=g-import-not-at-top
  if error.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
    return ClientError(f'no reply from {target} within {timeout:g}s '
                       '(--timeout)')
  return ClientError(f'gRPC {error.code().name} from {target}: '
                     f'{_one_line(error.details() or "")}')


def grpc_predict(target: str, request, timeout: float = DEFAULT_TIMEOUT):
  """Sends a PredictRequest.

  Returns:
    (the reply's model_spec, {output name: numpy array}).

  Raises:
    ClientError: the server's status and message, or no reply within
      `timeout` seconds (gRPC's deadline).
  """
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  options = [('grpc.max_receive_message_length', -1),
             ('grpc.max_send_message_length', -1)]
  try:
    with grpc.insecure_channel(target, options=options) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      reply = stub.Predict(request, timeout=timeout)
  except grpc.RpcError as e:
    raise _grpc_failure(e, target, timeout) from None
  return reply.model_spec, {k: tf.make_ndarray(v)
                            for k, v in reply.outputs.items()}


# -- KServe's V2 protocol (Open Inference Protocol) ---------------------------

V2_DATATYPES = {'float32': 'FP32', 'float64': 'FP64', 'int32': 'INT32',
                'int64': 'INT64', 'bool': 'BOOL', 'uint8': 'UINT8'}


def v2_body(signature: str, inputs: Mapping[str, Any]) -> dict:
  """The JSON body of a V2 infer request: every input as {name, shape,
  datatype, data} (data flattened, row-major), the signature as the
  parameter signature_name (this package's server reads it; KServe's
  TensorFlow runtime and Triton serve serving_default only)."""
  tensors = []
  for name, value in sorted(inputs.items()):
    array = _v2_array(value)
    tensors.append({'name': name, 'shape': list(array.shape),
                    'datatype': V2_DATATYPES[array.dtype.name],
                    'data': array.reshape(-1).tolist()})
  body = {'inputs': tensors}
  if signature != 'serving_default':
    body['parameters'] = {'signature_name': signature}
  return body


def _v2_array(value) -> np.ndarray:
  array = np.asarray(value)
  return array.astype(np.int64 if array.dtype.kind in 'iu' else np.float32)


def v2_url(server: str, model: str, version: Optional[int] = None) -> str:
  """SERVER/v2/models/MODEL[/versions/N]/infer."""
  where = f'/versions/{version}' if version is not None else ''
  return f'{server.rstrip("/")}/v2/models/{model}{where}/infer'


def v2_outputs(reply: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """{output name: array} of a V2 infer reply (JSON)."""
  return {o['name']: np.asarray(o['data']).reshape(o['shape'])
          for o in reply.get('outputs', [])}


_V2_CONTENTS = {'FP32': 'fp32_contents', 'FP64': 'fp64_contents',
                'INT32': 'int_contents', 'INT64': 'int64_contents',
                'BOOL': 'bool_contents', 'UINT8': 'uint_contents',
                'BYTES': 'bytes_contents'}
_V2_NUMPY = {'FP32': np.float32, 'FP64': np.float64, 'INT32': np.int32,
             'INT64': np.int64, 'BOOL': np.bool_, 'UINT8': np.uint8,
             'BYTES': object}


def grpc_v2_infer(target: str, model: str, signature: str,
                  inputs: Mapping[str, Any], version: Optional[int] = None,
                  timeout: float = DEFAULT_TIMEOUT
                  ) -> tuple[dict, dict[str, np.ndarray]]:
  """Sends a V2 ModelInferRequest (inference.GRPCInferenceService, the
  protos KServe ships).

  Returns:
    ({"model_name", "model_version", "id"}, {output name: array}).

  Raises:
    ClientError: the server's status and message, no reply within
      `timeout`, KServe not installed.
  """
  # Importing kserve parses sys.argv with KServe's own flags (and exits on
  # this client's --grpc, an ambiguous prefix of them): hide it meanwhile.
  argv, sys.argv = sys.argv, sys.argv[:1]
  try:
    import grpc  # pylint: disable=g-import-not-at-top
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb  # pylint: disable=g-import-not-at-top
    from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ClientError(f'--protocol=v2 --grpc needs kserve ({e}): pip install '
                      "-e '.[serving]'") from None
  finally:
    sys.argv = argv
  request = pb.ModelInferRequest(model_name=model,
                                 model_version=str(version or ''))
  if signature != 'serving_default':
    request.parameters['signature_name'].string_param = signature
  for name, value in sorted(inputs.items()):
    array = _v2_array(value)
    datatype = V2_DATATYPES[array.dtype.name]
    tensor = request.inputs.add(name=name, datatype=datatype,
                                shape=list(array.shape))
    getattr(tensor.contents, _V2_CONTENTS[datatype]).extend(
        array.reshape(-1).tolist())
  options = [('grpc.max_receive_message_length', -1),
             ('grpc.max_send_message_length', -1)]
  try:
    with grpc.insecure_channel(target, options=options) as channel:
      reply = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
          request, timeout=timeout)
  except grpc.RpcError as e:
    raise _grpc_failure(e, target, timeout) from None
  outputs = {}
  for i, tensor in enumerate(reply.outputs):
    dtype = _V2_NUMPY[tensor.datatype]
    if reply.raw_output_contents:
      values = np.frombuffer(reply.raw_output_contents[i], dtype=dtype)
    else:
      values = np.asarray(list(getattr(
          tensor.contents, _V2_CONTENTS[tensor.datatype])), dtype=dtype)
    outputs[tensor.name] = values.reshape(list(tensor.shape))
  return ({'model_name': reply.model_name,
           'model_version': reply.model_version, 'id': reply.id}, outputs)


def outputs_of(reply: Mapping[str, Any], signature: str
               ) -> dict[str, np.ndarray]:
  """{output name: array} from a REST reply in either format."""
  if 'outputs' in reply:
    out = reply['outputs']
    if isinstance(out, dict):
      return {k: np.asarray(v) for k, v in out.items()}
    return {SINGLE_OUTPUT.get(signature, 'output'): np.asarray(out)}
  rows = reply.get('predictions', [])
  if rows and isinstance(rows[0], dict):
    return {k: np.asarray([row[k] for row in rows]) for k in rows[0]}
  return {SINGLE_OUTPUT.get(signature, 'output'): np.asarray(rows)}

