"""KServe's V2 protocol (the Open Inference Protocol), REST and gRPC:

  GET  /v2                                         server metadata
  GET  /v2/health/live, /v2/health/ready           liveness, readiness
  GET  /v2/models/NAME[/versions/N]                model metadata
  GET  /v2/models/NAME[/versions/N]/ready          model readiness
  POST /v2/models/NAME[/versions/N]/infer          {"inputs": [{name, shape,
                                                    datatype, data}], ...}
  gRPC inference.GRPCInferenceService/ServerLive, ServerReady, ModelReady,
       ServerMetadata, ModelMetadata, ModelInfer

A model's V2 inputs and outputs are those of its `serving_default`
signature; a request may name another with the parameter
"signature_name".  Metadata lists each tensor's name, datatype (FP32,
INT64, BYTES, ...) and shape (-1 for an unknown dimension, [-1] for an
unknown rank).  Numeric data of another datatype is converted to the
signature's dtype, as TF Serving's JSON numbers are.  Infer goes through
the model's `kserve.Model` (preprocess, predict, postprocess).
"""

from importlib import metadata as importlib_metadata
import re
import time
from typing import Any, Optional

import grpc
from starlette import requests
from starlette import responses
from starlette import routing

from tfp_vae.serving import codec
from tfp_vae.serving import http
from tfp_vae.serving import kserve_adapter
from tfp_vae.serving import repository
from tfp_vae.serving import status
from tfp_vae.serving import tfserving

PLATFORM = 'tensorflow_savedmodel'
v2_pb2 = kserve_adapter.v2_pb2


def _server_version() -> str:
  try:
    return importlib_metadata.version('tfp-vae')
  except importlib_metadata.PackageNotFoundError:
    return 'unknown'


def server_metadata() -> dict[str, Any]:
  return {'name': 'tfp-vae', 'version': _server_version(), 'extensions': []}


def _version(text: Optional[str]) -> Optional[int]:
  if not text:
    return None
  if not re.fullmatch(r'\d+', text):
    raise status.invalid_argument(
        f'model version must be a number; got {text!r}')
  return int(text)


def model_metadata(versions: repository.ModelVersions,
                   version: Optional[int]) -> dict[str, Any]:
  """V2 model metadata: the loaded versions, and the inputs and outputs of
  serving_default in `version` (default the latest).

  Raises:
    Status: NOT_FOUND when that version is not loaded.
  """
  serv = versions.get(version)
  signature_def = serv.signature_defs.get(codec.DEFAULT_SIGNATURE)
  tensors = lambda infos: [codec.v2_tensor_metadata(k, infos[k])
                           for k in sorted(infos)]
  return {
      'name': versions.name,
      'versions': [str(v) for v in versions.loaded()],
      'platform': PLATFORM,
      'inputs': tensors(signature_def.inputs) if signature_def else [],
      'outputs': tensors(signature_def.outputs) if signature_def else [],
  }


def infer_v2(max_batch: int):
  """ExportDirModel's V2 work: (versions, InferRequest, route) ->
  InferResponse."""

  def work(versions: repository.ModelVersions, request: Any,
           route: tfserving.Route) -> Any:
    serv = versions.get(route.version)
    parameters = kserve_adapter.request_parameters(request)
    signature = parameters.get('signature_name') or codec.DEFAULT_SIGNATURE
    if not isinstance(signature, str):
      raise status.invalid_argument(
          f'parameter signature_name must be a string; got {signature!r}')
    outputs = tfserving.predict(
        serv, signature, kserve_adapter.request_arrays(request), max_batch,
        kserve_adapter.requested_outputs(request))
    infos = serv.signature_def(signature).outputs
    datatypes = {k: codec.v2_tensor_metadata(k, infos[k])['datatype']
                 for k in outputs}
    return kserve_adapter.infer_response(request, versions.name,
                                         serv.version, outputs, datatypes)

  return work


def _ready(state: http.ServerState) -> bool:
  return all(m.loaded() for m in state.repository.models.values())


# -- REST --------------------------------------------------------------------


def _handler(state: http.ServerState, work):
  """A Starlette endpoint running `work(request) -> (reply, headers)`,
  answering errors in TF Serving's shape and counting every request."""

  async def endpoint(request: requests.Request) -> responses.Response:
    start = time.perf_counter()
    name = request.path_params.get('name', '')
    try:
      reply, headers = await work(request)
    except Exception as e:  # pylint: disable=broad-except
      response, code = http.error_reply(request, e)
      state.metrics.record_request(name, 'V2', 'REST', code, 0)
      return response
    if isinstance(reply, responses.Response):
      return reply
    state.metrics.record_request(name, 'V2', 'REST', 'OK',
                                 (time.perf_counter() - start) * 1e6)
    return http.json_response(reply, headers=headers)

  return endpoint


def routes(state: http.ServerState) -> list[routing.BaseRoute]:
  """The Starlette routes of V2 over `state`."""
  handler = lambda work: _handler(state, work)

  async def metadata(request):
    return server_metadata(), {}

  async def live(request):
    return {'live': True}, {}

  async def ready(request):
    if not _ready(state):
      return http.json_response({'ready': False}, 503), {}
    return {'ready': True}, {}

  async def model(request):
    versions = state.repository.get(request.path_params['name'])
    return model_metadata(
        versions, _version(request.path_params.get('version'))), {}

  async def model_ready(request):
    name = request.path_params['name']
    versions = state.repository.get(name)
    version = _version(request.path_params.get('version'))
    is_ready = bool(versions.loaded()) if version is None else (
        version in versions.loaded())
    if not is_ready:
      return http.json_response({'name': name, 'ready': False}, 503), {}
    return {'name': name, 'ready': True}, {}

  async def infer(request):
    name = request.path_params['name']
    route = tfserving.Route(name, _version(request.path_params.get('version')))
    model_ = state.model(name)
    raw = await http.read_body(request)
    infer_request = kserve_adapter.infer_request_from_rest(
        raw, request.headers, name, http.loads)
    reply = await kserve_adapter.call_model(
        model_, infer_request,
        {**request.headers, kserve_adapter.REQUEST_KEY: route})
    body, headers = kserve_adapter.response_to_rest(reply)
    return body, headers

  get = lambda path, fn: routing.Route(path, handler(fn), methods=['GET'])
  return [
      get('/v2', metadata),
      get('/v2/health/live', live),
      get('/v2/health/ready', ready),
      get('/v2/models/{name}', model),
      get('/v2/models/{name}/versions/{version}', model),
      get('/v2/models/{name}/ready', model_ready),
      get('/v2/models/{name}/versions/{version}/ready', model_ready),
      routing.Route('/v2/models/{name}/infer', handler(infer),
                    methods=['POST']),
      routing.Route('/v2/models/{name}/versions/{version}/infer',
                    handler(infer), methods=['POST']),
  ]


# -- gRPC --------------------------------------------------------------------


def _tensor_metadata(entries: list[dict]) -> list:
  return [v2_pb2.ModelMetadataResponse.TensorMetadata(
      name=e['name'], datatype=e['datatype'], shape=e['shape'])
          for e in entries]


class InferenceServicer(kserve_adapter.V2ServicerBase):
  """inference.GRPCInferenceService."""

  def __init__(self, state: http.ServerState):
    self.state = state

  async def _call(self, context, work, name: str = '', api: str = ''):
    start = time.perf_counter()
    try:
      reply = await work()
    except Exception as e:  # pylint: disable=broad-except
      # pylint: disable=g-import-not-at-top
      from tfp_vae.serving import tfserving_grpc
      # pylint: enable=g-import-not-at-top
      if api:
        code = e.code if isinstance(e, status.Status) else 'INTERNAL'
        self.state.metrics.record_request(name, api, 'GRPC', code, 0)
      await tfserving_grpc.abort(context, e)
      return None
    if api:
      self.state.metrics.record_request(name, api, 'GRPC', 'OK',
                                        (time.perf_counter() - start) * 1e6)
    return reply

  async def ServerLive(self, request, context):  # pylint: disable=invalid-name
    return v2_pb2.ServerLiveResponse(live=True)

  async def ServerReady(self, request, context):  # pylint: disable=invalid-name
    return v2_pb2.ServerReadyResponse(ready=_ready(self.state))

  async def ModelReady(self, request, context):  # pylint: disable=invalid-name

    async def work():
      versions = self.state.repository.get(request.name)
      version = _version(request.version)
      return v2_pb2.ModelReadyResponse(
          ready=bool(versions.loaded()) if version is None else
          version in versions.loaded())

    return await self._call(context, work)

  async def ServerMetadata(self, request, context):  # pylint: disable=invalid-name
    return v2_pb2.ServerMetadataResponse(**server_metadata())

  async def ModelMetadata(self, request, context):  # pylint: disable=invalid-name

    async def work():
      found = model_metadata(self.state.repository.get(request.name),
                             _version(request.version))
      return v2_pb2.ModelMetadataResponse(
          name=found['name'], versions=found['versions'],
          platform=found['platform'],
          inputs=_tensor_metadata(found['inputs']),
          outputs=_tensor_metadata(found['outputs']))

    return await self._call(context, work)

  async def ModelInfer(self, request, context):  # pylint: disable=invalid-name

    async def work():
      route = tfserving.Route(request.model_name, _version(
          request.model_version))
      model_ = self.state.model(request.model_name)
      infer_request = kserve_adapter.infer_request_from_grpc(request)
      headers = {k: v for k, v in (context.invocation_metadata() or ())}
      reply = await kserve_adapter.call_model(
          model_, infer_request, {**headers,
                                  kserve_adapter.REQUEST_KEY: route})
      return kserve_adapter.response_to_grpc(reply)

    return await self._call(context, work, request.model_name, 'V2')


def add_to_server(server: grpc.aio.Server, state: http.ServerState) -> None:
  kserve_adapter.add_v2_servicer(InferenceServicer(state), server)
