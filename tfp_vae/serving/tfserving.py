"""TF Serving's methods on the repository, shared by its REST and gRPC
front ends: Predict, Classify, Regress, MultiInference, GetModelMetadata
and GetModelStatus, with TF Serving's checks and messages.

Classify and Regress run a signature that takes serialized tf.Examples, as
TF Serving's classifier.cc and regressor.cc do with
--enable_signature_method_name_check off (its default): the signature must
have one input named "inputs" (a string tensor) and, for classify, a
"classes" (string) and/or "scores" (float) output of shape [batch,
classes], for regress one "outputs" of shape [batch] or [batch, 1].  So a
TF1 signature with method_name tensorflow/serving/classify or regress
works, and so does a TF2 signature of that shape (TF2's
tf.saved_model.save writes method_name predict for every signature).
"""

import dataclasses
from typing import Any, Optional

import numpy as np
from google.protobuf import json_format
from tensorflow.core.protobuf import error_codes_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import regression_pb2

from tfp_vae.serving import codec
from tfp_vae.serving import repository
from tfp_vae.serving import servable as servable_lib
from tfp_vae.serving import status
from tfp_vae.serving import tf_examples

CLASSIFY = 'classify'
REGRESS = 'regress'
_METHOD_NAMES = {servable_lib.CLASSIFY_METHOD: CLASSIFY,
                 servable_lib.REGRESS_METHOD: REGRESS}


@dataclasses.dataclass(frozen=True)
class Route:
  """The model, and the version or label, a request names (TF Serving's
  ModelSpec)."""
  model: str
  version: Optional[int] = None
  label: Optional[str] = None

  @classmethod
  def from_model_spec(cls, spec) -> 'Route':
    return cls(spec.name, spec.version.value if spec.HasField('version')
               else None, spec.version_label or None)


def servable(repo: repository.Repository, route: Route
             ) -> servable_lib.Servable:
  """The servable a route names.

  Raises:
    Status: NOT_FOUND for an unknown model or version; INVALID_ARGUMENT for
      an unknown label.
  """
  return repo.get(route.model).get(route.version, route.label)


# -- Predict -----------------------------------------------------------------


def predict(serv: servable_lib.Servable, signature: str,
            arrays: dict[str, Any], max_batch: int,
            output_filter: Optional[list[str]] = None
            ) -> dict[str, np.ndarray]:
  """Runs `signature` on request arrays, converted to its dtypes.

  Raises:
    Status: see codec.to_arrays, codec.check_batch, Servable.run.
  """
  dtypes = serv.input_dtypes(signature)
  arrays = codec.to_arrays(signature, arrays, dtypes)
  codec.check_batch(arrays, max_batch)
  return serv.run(signature, arrays, output_filter)


def predict_json(versions: repository.ModelVersions, body: Any,
                 route: Route, max_batch: int) -> dict[str, Any]:
  """A REST :predict body -> TF Serving's reply.

  Raises:
    Status: see codec.parse_predict_body, predict, codec.predict_reply.
  """
  serv = versions.get(route.version, route.label)
  signature = codec.signature_name_of(body)
  arrays, row_format = codec.parse_predict_body(
      body, serv.input_dtypes(signature), max_batch)
  codec.check_batch(arrays, max_batch)
  return codec.predict_reply(serv.run(signature, arrays), row_format)


# -- Classify and Regress ----------------------------------------------------


def _examples_signature(serv: servable_lib.Servable, signature: str,
                        method: str):
  """The SignatureDef, checked to take serialized examples for `method`.

  Raises:
    Status: INVALID_ARGUMENT naming what the signature lacks.
  """
  signature_def = serv.signature_def(signature)
  inputs, outputs = signature_def.inputs, signature_def.outputs
  need = ('"classes" (string) and/or "scores" (float) of shape [batch, '
          'classes]' if method == CLASSIFY else
          '"outputs" (float) of shape [batch] or [batch, 1]')
  problem = None
  # Like TF Serving, the input's recorded dtype is not checked: some
  # early-TF1 exports record the string placeholder as DT_FLOAT.
  if len(inputs) != 1 or 'inputs' not in inputs:
    problem = f'it takes inputs {sorted(inputs)}'
  elif method == CLASSIFY and not ({'classes', 'scores'} & set(outputs)):
    problem = f'it has outputs {sorted(outputs)}'
  elif method == REGRESS and set(outputs) != {'outputs'}:
    problem = f'it has outputs {sorted(outputs)}'
  if problem:
    raise status.invalid_argument(
        f'signature {signature!r} (method_name {signature_def.method_name}) '
        f'cannot {method}: {problem}; {method} needs one input "inputs" '
        f'(serialized tf.Example strings) and outputs {need}')
  return signature_def


def _run_examples(serv: servable_lib.Servable, signature: str,
                  examples: np.ndarray, max_batch: int,
                  fetch: list[str]) -> dict[str, np.ndarray]:
  if len(examples) > max_batch:
    raise status.invalid_argument(
        f'{len(examples)} examples are above this server\'s limit of '
        f'{max_batch} (--max_batch)')
  return serv.run(signature, {'inputs': examples}, fetch)


def classification_result(outputs: dict[str, np.ndarray], count: int
                          ) -> classification_pb2.ClassificationResult:
  """"classes" / "scores" arrays -> ClassificationResult (classifier.cc's
  checks: rank 2, one row per example, the same number of classes).

  Raises:
    Status: INVALID_ARGUMENT when the outputs are not of that shape.
  """
  classes, scores = outputs.get('classes'), outputs.get('scores')
  for name, array in (('classes', classes), ('scores', scores)):
    if array is None:
      continue
    if array.ndim != 2 or array.shape[0] != count:
      raise status.invalid_argument(
          f'Expected Tensor shape: [batch_size num_classes] with batch_size '
          f'{count} for output "{name}" but got {list(array.shape)}')
  if classes is not None and scores is not None and (
      classes.shape[1] != scores.shape[1]):
    raise status.invalid_argument(
        f'Tensors class and score should match in dim_size(1). Got '
        f'{classes.shape[1]} vs. {scores.shape[1]}')
  if classes is not None and classes.dtype.kind not in 'OS':
    raise status.invalid_argument(
        f'Expected classes Tensor of DT_STRING. Got: {classes.dtype}')
  width = (classes if classes is not None else scores).shape[1]
  result = classification_pb2.ClassificationResult()
  for i in range(count):
    row = result.classifications.add()
    for c in range(width):
      entry = row.classes.add()
      if classes is not None:
        label = classes[i, c]
        entry.label = label.decode('utf-8', 'replace') if isinstance(
            label, bytes) else str(label)
      if scores is not None:
        entry.score = float(scores[i, c])
  return result


def regression_result(outputs: dict[str, np.ndarray], count: int
                      ) -> regression_pb2.RegressionResult:
  """"outputs" -> RegressionResult (regressor.cc's checks).

  Raises:
    Status: INVALID_ARGUMENT when it is not [batch] or [batch, 1].
  """
  values = outputs['outputs']
  if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)
          ) or values.shape[0] != count:
    raise status.invalid_argument(
        'Expected output Tensor shape to be either [batch_size] or '
        f'[batch_size, 1] with batch_size {count} but got '
        f'{list(values.shape)}')
  result = regression_pb2.RegressionResult()
  for value in values.reshape(-1):
    result.regressions.add().value = float(value)
  return result


def _examples_of(input_proto) -> tuple[list, Any]:
  kind = input_proto.WhichOneof('kind')
  if kind == 'example_list':
    return list(input_proto.example_list.examples), None
  if kind == 'example_list_with_context':
    listed = input_proto.example_list_with_context
    return list(listed.examples), listed.context
  raise status.invalid_argument(
      'Input is empty: give example_list or example_list_with_context')


def examples_tensor(input_proto) -> np.ndarray:
  """A tensorflow.serving.Input as the serialized-examples tensor.

  Raises:
    Status: INVALID_ARGUMENT for an empty input.
  """
  examples, context = _examples_of(input_proto)
  if not examples:
    raise status.invalid_argument('Input is empty.')
  return tf_examples.serialized_examples(examples, context)


def classify(serv: servable_lib.Servable, signature: str,
             examples: np.ndarray, max_batch: int
             ) -> classification_pb2.ClassificationResult:
  """Classify: `signature` on serialized examples.

  Raises:
    Status: INVALID_ARGUMENT for a signature of another shape, too many
      examples, outputs of the wrong shape; the signature's own errors.
  """
  signature_def = _examples_signature(serv, signature, CLASSIFY)
  fetch = [k for k in ('classes', 'scores') if k in signature_def.outputs]
  return classification_result(
      _run_examples(serv, signature, examples, max_batch, fetch),
      len(examples))


def regress(serv: servable_lib.Servable, signature: str, examples: np.ndarray,
            max_batch: int) -> regression_pb2.RegressionResult:
  """Regress: `signature` on serialized examples (see `classify`)."""
  _examples_signature(serv, signature, REGRESS)
  return regression_result(
      _run_examples(serv, signature, examples, max_batch, ['outputs']),
      len(examples))


def examples_json(serv: servable_lib.Servable, body: Any, method: str,
                  max_batch: int) -> dict[str, Any]:
  """A REST :classify or :regress body -> TF Serving's reply,
  {"results": [[[label, score], ...], ...]} or {"results": [value, ...]}.

  Raises:
    Status: see tf_examples.parse_examples_body, classify, regress.
  """
  signature, examples, context = tf_examples.parse_examples_body(body, method)
  tensor = tf_examples.serialized_examples(examples, context)
  if method == CLASSIFY:
    result = classify(serv, signature, tensor, max_batch)
    return {'results': [[[c.label, c.score] for c in row.classes]
                        for row in result.classifications]}
  result = regress(serv, signature, tensor, max_batch)
  return {'results': [r.value for r in result.regressions]}


def multi_inference(repo: repository.Repository,
                    request: inference_pb2.MultiInferenceRequest,
                    max_batch: int) -> inference_pb2.MultiInferenceResponse:
  """MultiInference: several classify / regress signatures of one model
  version on one input (TF Serving's multi_inference.cc checks).

  Raises:
    Status: INVALID_ARGUMENT: no task, tasks on different models or
      versions, a signature twice, a method other than classify or
      regress; see `classify`, `regress`.
  """
  if not request.tasks:
    raise status.invalid_argument('Tasks is empty')
  routes = [Route.from_model_spec(t.model_spec) for t in request.tasks]
  if len({(r.model, r.version, r.label) for r in routes}) != 1:
    raise status.invalid_argument(
        'All ModelSpecs in a MultiInferenceRequest must access the same '
        f'model name and version; got {[(r.model, r.version, r.label) for r in routes]}')
  signatures = [t.model_spec.signature_name or codec.DEFAULT_SIGNATURE
                for t in request.tasks]
  if len(set(signatures)) != len(signatures):
    raise status.invalid_argument(
        f'Duplicate evaluation of signature: {signatures}')
  serv = servable(repo, routes[0])
  examples = examples_tensor(request.input)
  reply = inference_pb2.MultiInferenceResponse()
  for task, signature in zip(request.tasks, signatures):
    method = _METHOD_NAMES.get(task.method_name)
    if method is None:
      raise status.invalid_argument(
          f'Unsupported signature method_name: {task.method_name!r} (give '
          f'{servable_lib.CLASSIFY_METHOD} or {servable_lib.REGRESS_METHOD})')
    result = reply.results.add()
    model_spec(result.model_spec, routes[0].model, serv.version, signature)
    if method == CLASSIFY:
      result.classification_result.CopyFrom(
          classify(serv, signature, examples, max_batch))
    else:
      result.regression_result.CopyFrom(
          regress(serv, signature, examples, max_batch))
  return reply


def model_spec(spec, name: str, version: int, signature: str = '') -> None:
  """Fills a reply's ModelSpec as TF Serving does."""
  spec.name = name
  spec.version.value = version
  if signature:
    spec.signature_name = signature


# -- metadata and status -----------------------------------------------------


def signature_def_map(serv: servable_lib.Servable
                      ) -> get_model_metadata_pb2.SignatureDefMap:
  out = get_model_metadata_pb2.SignatureDefMap()
  for name, signature_def in serv.signature_defs.items():
    out.signature_def[name].CopyFrom(signature_def)
  return out


def metadata_json(name: str, serv: servable_lib.Servable) -> dict[str, Any]:
  """GetModelMetadataResponse in JSON, as TF Serving's REST API prints it
  (proto field names, default values printed, int64 as strings)."""
  return {
      'model_spec': {'name': name, 'signature_name': '',
                     'version': str(serv.version)},
      'metadata': {'signature_def': json_format.MessageToDict(
          signature_def_map(serv),
          always_print_fields_with_no_presence=True,
          preserving_proto_field_name=True)},
  }


def status_proto(statuses: list[repository.VersionStatus]
                 ) -> get_model_status_pb2.GetModelStatusResponse:
  reply = get_model_status_pb2.GetModelStatusResponse()
  states = get_model_status_pb2.ModelVersionStatus.State
  for s in statuses:
    entry = reply.model_version_status.add()
    entry.version = s.version
    entry.state = states.Value(s.state)
    entry.status.error_code = error_codes_pb2.Code.Value(
        s.error_code if s.error else 'OK')
    entry.status.error_message = s.error
  return reply


def status_json(statuses: list[repository.VersionStatus]) -> dict[str, Any]:
  """GetModelStatusResponse in JSON, as TF Serving's REST API prints it."""
  return {'model_version_status': [
      {'version': str(s.version), 'state': s.state,
       'status': {'error_code': s.error_code if s.error else 'OK',
                  'error_message': s.error}} for s in statuses]}
