"""TF Serving's gRPC API (tensorflow-serving-api's protos):

  tensorflow.serving.PredictionService/Predict, Classify, Regress,
      MultiInference, GetModelMetadata
  tensorflow.serving.ModelService/GetModelStatus (HandleReloadConfigRequest
      answers UNIMPLEMENTED)

A failure aborts the call with the Status's code (INVALID_ARGUMENT,
NOT_FOUND, RESOURCE_EXHAUSTED, ...) and its message.
"""

import asyncio
import functools
import time

import grpc
from absl import logging
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from tfp_vae.serving import codec
from tfp_vae.serving import http
from tfp_vae.serving import kserve_adapter
from tfp_vae.serving import status
from tfp_vae.serving import tensor_protos
from tfp_vae.serving import tfserving


async def abort(context, error: Exception) -> None:
  """Ends the call with the error's code and message."""
  found = error if isinstance(error, status.Status) else (
      kserve_adapter.kserve_status(error))
  if found is None:
    logging.exception('gRPC call failed')
    found = status.Status('INTERNAL', f'{type(error).__name__}: {error}')
  await context.abort(getattr(grpc.StatusCode, found.code), found.message)


def _rpc(api: str):
  """Runs the method's work, records TF Serving's request metrics, turns
  failures into the call's status."""

  def wrap(method):

    @functools.wraps(method)
    async def call(self, request, context):
      start = time.perf_counter()
      name = (request.tasks[0].model_spec.name
              if api == 'MultiInference' and request.tasks
              else getattr(getattr(request, 'model_spec', None), 'name', ''))
      try:
        reply = await method(self, request, context)
      except Exception as e:  # pylint: disable=broad-except
        code = e.code if isinstance(e, status.Status) else 'INTERNAL'
        self.state.metrics.record_request(name, api, 'GRPC', code, 0)
        await abort(context, e)
        return None
      self.state.metrics.record_request(name, api, 'GRPC', 'OK',
                                        (time.perf_counter() - start) * 1e6)
      return reply

    return call

  return wrap


def _run(fn, *args):
  return asyncio.get_running_loop().run_in_executor(None, fn, *args)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
  """tensorflow.serving.PredictionService."""

  def __init__(self, state: http.ServerState):
    self.state = state

  def _servable(self, spec):
    return tfserving.servable(self.state.repository,
                              tfserving.Route.from_model_spec(spec))

  @_rpc('Predict')
  async def Predict(self, request, context):  # pylint: disable=invalid-name
    del context
    serv = self._servable(request.model_spec)
    signature = request.model_spec.signature_name or codec.DEFAULT_SIGNATURE
    arrays = {k: tensor_protos.from_tensor_proto(k, v)
              for k, v in request.inputs.items()}
    outputs = await _run(tfserving.predict, serv, signature, arrays,
                         self.state.max_batch, list(request.output_filter))
    reply = predict_pb2.PredictResponse()
    tfserving.model_spec(reply.model_spec, request.model_spec.name,
                         serv.version, signature)
    for name, array in outputs.items():
      reply.outputs[name].CopyFrom(tensor_protos.tensor_proto(array))
    return reply

  async def _on_examples(self, request, method, response_class):
    """Classify or Regress: `method` (tfserving.classify or regress) on
    the request's examples."""
    serv = self._servable(request.model_spec)
    signature = request.model_spec.signature_name or codec.DEFAULT_SIGNATURE
    examples = tfserving.examples_tensor(request.input)
    result = await _run(method, serv, signature, examples,
                        self.state.max_batch)
    reply = response_class(result=result)
    tfserving.model_spec(reply.model_spec, request.model_spec.name,
                         serv.version, signature)
    return reply

  @_rpc('Classify')
  async def Classify(self, request, context):  # pylint: disable=invalid-name
    del context
    return await self._on_examples(request, tfserving.classify,
                                   classification_pb2.ClassificationResponse)

  @_rpc('Regress')
  async def Regress(self, request, context):  # pylint: disable=invalid-name
    del context
    return await self._on_examples(request, tfserving.regress,
                                   regression_pb2.RegressionResponse)

  @_rpc('MultiInference')
  async def MultiInference(self, request, context):  # pylint: disable=invalid-name
    del context
    return await _run(tfserving.multi_inference, self.state.repository,
                      request, self.state.max_batch)

  @_rpc('GetModelMetadata')
  async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    del context
    serv = self._servable(request.model_spec)
    fields = list(request.metadata_field)
    if fields != ['signature_def']:
      raise status.invalid_argument(
          f'metadata_field must be ["signature_def"], the only metadata '
          f'served; got {fields}')
    reply = get_model_metadata_pb2.GetModelMetadataResponse()
    tfserving.model_spec(reply.model_spec, request.model_spec.name,
                         serv.version)
    reply.metadata['signature_def'].Pack(tfserving.signature_def_map(serv))
    return reply


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
  """tensorflow.serving.ModelService: GetModelStatus."""

  def __init__(self, state: http.ServerState):
    self.state = state

  @_rpc('GetModelStatus')
  async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    del context
    if not request.HasField('model_spec'):
      raise status.invalid_argument('Missing ModelSpec')
    route = tfserving.Route.from_model_spec(request.model_spec)
    return tfserving.status_proto(self.state.repository.status(
        route.model, route.version, route.label))

  async def HandleReloadConfigRequest(self, request, context):  # pylint: disable=invalid-name
    del request
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED,
        'reloading the model config is not supported by this server: '
        'restart it with the new --model_config_file')


def add_to_server(server, state: http.ServerState) -> None:
  prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
      PredictionServicer(state), server)
  model_service_pb2_grpc.add_ModelServiceServicer_to_server(
      ModelServicer(state), server)
