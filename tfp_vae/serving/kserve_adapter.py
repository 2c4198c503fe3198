"""Everything this server takes from KServe, through KServe's public API.

- `ExportDirModel`, a `kserve.Model`: each served model is one, called
  through `kserve.Model.__call__` (preprocess -> predict -> postprocess,
  with KServe's Prometheus histograms) for TF Serving's :predict and for
  V2's infer.  Subclass it and override `preprocess` / `postprocess` for
  Python pre- or post-processing, then `serve(config, model_class=...)`.
- The V2 (Open Inference Protocol) codec: `kserve.InferRequest` from a
  REST body (JSON, or JSON plus binary tensors: KServe's binary extension,
  which `kserve.InferenceRESTClient` sends by default) or from a gRPC
  ModelInferRequest, and `kserve.InferResponse` back to either.
- The V2 gRPC service definition (`GRPCInferenceService`), from the
  generated modules KServe ships and its `InferenceGRPCClient` uses.

KServe's own model server (`kserve.ModelServer`) is not used: it has no
public way to listen on one address (it binds 0.0.0.0), to host other gRPC
services beside its V2 one (TF Serving's PredictionService and
ModelService on the same port), or to add routes before its own.  The
server is uvicorn and grpc.aio as KServe's is (tfp_vae.serving.server).

What is not KServe's public API and is done here, each checked by
tests/serving/test_kserve_adapter.py so that a KServe upgrade that breaks it
fails a test: `kserve.model_server` parses sys.argv with its own argparse
flags when it is imported (and fails on an ambiguous prefix of one), so
this program's flags are hidden while kserve is imported; `Model.__call__`
returns (response, response headers) in KServe 0.21 and the response alone
in earlier releases.
"""

import asyncio
import inspect
import sys
from typing import Any, Callable, Mapping, Optional

import numpy as np

from tfp_vae.serving import status

_argv, sys.argv = sys.argv, sys.argv[:1]
try:
  # pylint: disable=g-import-not-at-top
  import kserve
  from kserve import errors as kserve_errors
  from kserve.protocol.grpc import grpc_predict_v2_pb2 as v2_pb2
  from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as v2_pb2_grpc
  # pylint: enable=g-import-not-at-top
finally:
  sys.argv = _argv

V2ServicerBase = v2_pb2_grpc.GRPCInferenceServiceServicer
add_v2_servicer = v2_pb2_grpc.add_GRPCInferenceServiceServicer_to_server
InferRequest = kserve.InferRequest
InferResponse = kserve.InferResponse
# The header KServe's binary extension puts the JSON part's length in.
JSON_LENGTH_HEADER = 'inference-header-content-length'
# The headers entry holding the front end's routing of a request (the
# version or label it asked for), read by ExportDirModel.predict.
REQUEST_KEY = 'x-tfp-vae-request'


def kserve_version() -> str:
  """The installed KServe release."""
  from importlib import metadata  # pylint: disable=g-import-not-at-top
  return metadata.version('kserve')


class ExportDirModel(kserve.Model):
  """One served model behind TF Serving's :predict and V2's infer.

  `predict` receives TF Serving's JSON body (a dict) or a V2
  `kserve.InferRequest`, as `preprocess` returns them, and returns TF
  Serving's JSON reply (a dict) or a `kserve.InferResponse` for
  `postprocess`.  The work itself is the front ends' (`predict_v1`,
  `infer_v2`), which the server passes in.

  Attributes:
    versions: the model's `repository.ModelVersions`.
  """

  def __init__(self, name: str, versions: Any,
               predict_v1: Callable[[Any, Any, Any], Any],
               infer_v2: Callable[[Any, Any, Any], Any]):
    """
    Args:
      name: the model's name.
      versions: its repository.ModelVersions.
      predict_v1: (versions, body, request context) -> reply dict.
      infer_v2: (versions, InferRequest, request context) -> InferResponse.
    """
    super().__init__(name)
    self.versions = versions
    self._predict_v1 = predict_v1
    self._infer_v2 = infer_v2
    self.ready = True

  def load(self) -> bool:
    self.ready = bool(self.versions.loaded())
    return self.ready

  async def healthy(self) -> bool:
    return bool(self.versions.loaded())

  async def predict(self, payload: Any, headers: Optional[dict] = None,
                    response_headers: Optional[dict] = None) -> Any:
    """TF Serving's :predict (a dict body) or V2 infer (an InferRequest).

    `headers` carries the request's routing (version, label) under the key
    REQUEST_KEY, set by the front end.
    """
    del response_headers
    context = (headers or {}).get(REQUEST_KEY)
    work = (self._infer_v2 if isinstance(payload, kserve.InferRequest)
            else self._predict_v1)
    # JSON -> arrays, the signature and the reply run off the event loop,
    # so other requests, probes and metrics are answered meanwhile.
    return await asyncio.get_running_loop().run_in_executor(
        None, work, self.versions, payload, context)


async def call_model(model: kserve.Model, body: Any,
                     headers: Mapping[str, Any]) -> Any:
  """`await model(body, headers)`: preprocess -> predict -> postprocess.

  KServe 0.21's Model.__call__ returns (response, response headers); the
  headers are dropped here (this server sets its own).
  """
  result = model(body, headers=dict(headers))
  if inspect.isawaitable(result):
    result = await result
  if isinstance(result, tuple) and len(result) == 2 and isinstance(
      result[1], dict):
    return result[0]
  return result


def kserve_status(error: Exception) -> Optional[status.Status]:
  """A KServe error raised by a user's preprocess / postprocess (or by
  KServe's codec) as a Status; None for any other exception."""
  if isinstance(error, kserve_errors.InvalidInput):
    return status.invalid_argument(str(error.reason if hasattr(
        error, 'reason') else error))
  if isinstance(error, kserve_errors.ModelNotFound):
    return status.not_found(str(error.reason if hasattr(error, 'reason')
                                else error))
  if isinstance(error, kserve_errors.InferenceError):
    return status.Status('INTERNAL', str(error))
  return None


# -- V2 codec ----------------------------------------------------------------


def _check_v2_json(body: Any, model_name: str) -> None:
  """The JSON part of a V2 infer request, before KServe's parser (which
  answers KeyError on a missing field)."""
  if not isinstance(body, dict):
    raise status.invalid_argument(
        f'a V2 infer request must be a JSON object; got {type(body).__name__}')
  inputs = body.get('inputs')
  if not isinstance(inputs, list) or not inputs:
    raise status.invalid_argument(
        "a V2 infer request needs 'inputs': a non-empty list of {name, "
        f'shape, datatype, data}} (model {model_name!r})')
  for i, tensor in enumerate(inputs):
    if not isinstance(tensor, dict):
      raise status.invalid_argument(f'inputs[{i}] must be an object')
    missing = [k for k in ('name', 'shape', 'datatype') if k not in tensor]
    if 'data' not in tensor and 'binary_data_size' not in (
        tensor.get('parameters') or {}):
      missing.append('data')
    if missing:
      raise status.invalid_argument(
          f'inputs[{i}] ({tensor.get("name", "unnamed")}) lacks '
          f'{missing}; a V2 input is {{name, shape, datatype, data}}')
    shape = tensor['shape']
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0
        for d in shape):
      raise status.invalid_argument(
          f'inputs[{i}] ({tensor["name"]}): shape must be a list of '
          f'non-negative integers; got {shape!r}')


def infer_request_from_rest(raw: bytes, headers: Mapping[str, str],
                            model_name: str, loads: Callable[[bytes], Any]
                            ) -> kserve.InferRequest:
  """A V2 REST infer body (JSON, or JSON then binary tensors) as an
  InferRequest.

  Raises:
    Status: INVALID_ARGUMENT naming what is wrong.
  """
  length = headers.get(JSON_LENGTH_HEADER)
  try:
    json_length = int(length) if length is not None else len(raw)
  except ValueError:
    raise status.invalid_argument(
        f'{JSON_LENGTH_HEADER} must be an integer; got {length!r}') from None
  if not 0 <= json_length <= len(raw):
    raise status.invalid_argument(
        f'{JSON_LENGTH_HEADER} {json_length} is outside the body of '
        f'{len(raw)} bytes')
  try:
    body = loads(raw[:json_length])
  except ValueError as e:
    raise status.invalid_argument(f'the request body is not JSON: {e}'
                                  ) from None
  _check_v2_json(body, model_name)
  try:
    return kserve.InferRequest.from_bytes(raw, json_length, model_name)
  except kserve_errors.InvalidInput as e:
    raise status.invalid_argument(str(e.reason)) from None
  except (KeyError, TypeError, ValueError) as e:
    raise status.invalid_argument(f'the V2 request cannot be read: {e!r}'
                                  ) from None


def infer_request_from_grpc(request: Any) -> kserve.InferRequest:
  """A gRPC ModelInferRequest as an InferRequest.

  Raises:
    Status: INVALID_ARGUMENT.
  """
  if not request.inputs:
    raise status.invalid_argument(
        'a V2 infer request needs inputs: {name, shape, datatype, contents}')
  try:
    return kserve.InferRequest.from_grpc(request)
  except kserve_errors.InvalidInput as e:
    raise status.invalid_argument(str(e.reason)) from None
  except (KeyError, TypeError, ValueError) as e:
    raise status.invalid_argument(f'the V2 request cannot be read: {e!r}'
                                  ) from None


def request_arrays(request: kserve.InferRequest) -> dict[str, np.ndarray]:
  """{input name: array} of an InferRequest.

  Raises:
    Status: INVALID_ARGUMENT: an unknown datatype, data that does not fill
      the shape, an input named twice.
  """
  arrays = {}
  for tensor in request.inputs:
    if tensor.name in arrays:
      raise status.invalid_argument(f'input {tensor.name!r} is given twice')
    try:
      arrays[tensor.name] = tensor.as_numpy()
    except kserve_errors.InvalidInput as e:
      raise status.invalid_argument(
          f'input {tensor.name!r}: {e.reason}') from None
    except (ValueError, TypeError) as e:
      raise status.invalid_argument(
          f'input {tensor.name!r}: its data does not fit datatype '
          f'{tensor.datatype} and shape {list(tensor.shape)} ({e})') from None
  return arrays


def request_parameters(request: kserve.InferRequest) -> dict[str, Any]:
  """The request's parameters as plain values (gRPC's InferParameter
  messages unwrapped)."""
  out = {}
  for key, value in dict(request.parameters or {}).items():
    if hasattr(value, 'WhichOneof'):
      value = getattr(value, value.WhichOneof('parameter_choice'))
    out[key] = value
  return out


def requested_outputs(request: kserve.InferRequest) -> list[str]:
  """The output names the request asks for ([]: all)."""
  return [o.name for o in request.request_outputs or []]


def infer_response(request: kserve.InferRequest, model_name: str,
                   version: int, outputs: Mapping[str, np.ndarray],
                   datatypes: Mapping[str, str]) -> kserve.InferResponse:
  """The InferResponse for `outputs` ({name: array}), binary on the wire
  when the request's inputs were (gRPC) or it asked for binary outputs
  (REST)."""
  infer_outputs = []
  for name in sorted(outputs):
    array = outputs[name]
    datatype = datatypes[name]
    if datatype == 'BYTES':
      array = np.asarray(array, dtype=object)
    out = kserve.InferOutput(name=name, shape=list(array.shape),
                             datatype=datatype)
    out.set_data_from_numpy(array, binary_data=False)
    infer_outputs.append(out)
  return kserve.InferResponse(
      response_id=request.id or '', model_name=model_name,
      model_version=str(version), infer_outputs=infer_outputs,
      use_binary_outputs=request.use_binary_outputs,
      requested_outputs=request.request_outputs)


def response_to_rest(response: Any) -> tuple[Any, dict[str, str]]:
  """An InferResponse (or a dict a postprocess returned) as (a dict to
  write as JSON or bytes, extra headers)."""
  if not isinstance(response, kserve.InferResponse):
    return response, {}
  body, json_length = response.to_rest()
  if json_length is None:
    return body, {}
  return body, {JSON_LENGTH_HEADER: str(json_length),
                'content-type': 'application/octet-stream'}


def response_to_grpc(response: Any) -> Any:
  """An InferResponse as a gRPC ModelInferResponse."""
  if isinstance(response, v2_pb2.ModelInferResponse):
    return response
  if not isinstance(response, kserve.InferResponse):
    raise status.Status('INTERNAL', 'postprocess returned '
                        f'{type(response).__name__}, not an InferResponse')
  return response.to_grpc()
