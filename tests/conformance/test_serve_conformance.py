"""trainers.serve as TF Serving and KServe users call it, on TF Serving's own
test models.

The half_plus_two SavedModels of TF Serving's testdata
(servables/tensorflow/testdata/saved_model_half_plus_two.py) are built here
the same way, TF1 (SavedModelBuilder, serving_default / classify_x_to_y /
regress_x_to_y / regress_x_to_y2 / regress_x2_to_y3 over tf.Example input,
an asset and a main op) and TF2 (tf.saved_model.save of a tf.Module), in
zero-padded version folders (00000123/), and the replies are the ones TF
Serving documents (g3doc/api_rest.md) and its own server test expects
(model_servers/tensorflow_model_server_test.py): y = 0.5 x + 2.

- One server at the defaults (`--export_dir` alone: ports 8501 and 8500):
  REST predict (row, columnar), classify, regress, status, metadata, the
  404 of an unknown model, the Prometheus page; gRPC Predict, Classify,
  Regress, MultiInference, GetModelStatus, GetModelMetadata.
- One server over a --model_config_file of three models: the latest
  policy, the all policy with labels, the specific policy; b64 inputs and
  _bytes outputs, a TensorFlow error's code, NaN tokens; KServe's V2
  protocol with KServe's InferenceRESTClient and InferenceGRPCClient.
"""

import asyncio
import base64
import math
import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.framework import types_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from tests.half_plus_two import build_half_plus_two_tf1
from tests.half_plus_two import build_half_plus_two_tf2
from tests.helpers import REPO, Server, http_call

# One worker runs this file: its module fixtures (trained runs, servers)
# are built once, not once per worker (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('serve_conformance')

TIMEOUT = 60


class Echo(tf.Module):
  """Strings in and out: `text_bytes` is the input (a name ending in
  _bytes: written as {"b64": ...}), `length` its length; `read` reads a
  file (a missing one fails with TensorFlow's NOT_FOUND)."""

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='text')])
  def echo(self, text):
    return {'text_bytes': text, 'length': tf.strings.length(text)}

  @tf.function(input_signature=[tf.TensorSpec([], tf.string,
                                              name='path')])
  def read(self, path):
    return {'contents': tf.io.read_file(path)}


@pytest.fixture(scope='session')
def models(tmp_path_factory):
  """{name: base path} of the test models, in zero-padded folders."""
  root = tmp_path_factory.mktemp('models')
  tf1 = root / 'saved_model_half_plus_two'
  build_half_plus_two_tf1(str(tf1 / '00000123'), str(root / 'assets'))
  two = root / 'half_plus_two_2_versions'
  shutil.copytree(tf1 / '00000123', two / '00000123')
  shutil.copytree(tf1 / '00000123', two / '00000124')
  tf2 = root / 'half_plus_two_tf2'
  build_half_plus_two_tf2(str(tf2 / '00000123'), b=2.0)
  build_half_plus_two_tf2(str(tf2 / '00000124'), b=3.0)  # half plus three
  echo = root / 'echo'
  module = Echo()
  for version in ('00000001', '00000002'):
    tf.saved_model.save(module, str(echo / version), signatures={
        'serving_default': module.echo, 'read': module.read})
  return {'tf1': str(tf1), 'tf1_2_versions': str(two), 'tf2': str(tf2),
          'echo': str(echo), 'root': str(root)}


def _example(x: float) -> tf.train.Example:
  example = tf.train.Example()
  example.features.feature['x'].float_list.value.append(x)
  return example


def _grpc_error(call, request):
  with pytest.raises(grpc.RpcError) as e:
    call(request, timeout=TIMEOUT)
  return e.value.code(), e.value.details()


# -- TF1 half_plus_two at the defaults ---------------------------------------


# TF Serving's metadata of these signatures
# (testdata/saved_model_half_plus_two_2_versions_metadata.json).
def _tensor_info(name, dims):
  return {'dtype': 'DT_FLOAT', 'tensor_shape': {
      'dim': [{'size': str(d), 'name': ''} for d in dims],
      'unknown_rank': False}, 'name': name}


SERVING_DEFAULT_METADATA = {
    'inputs': {'x': _tensor_info('x:0', [-1, 1])},
    'outputs': {'y': _tensor_info('y:0', [-1, 1])},
    'method_name': 'tensorflow/serving/predict', 'defaults': {}}
REGRESS_X2_TO_Y3_METADATA = {
    'inputs': {'inputs': _tensor_info('x2:0', [-1, 1])},
    'outputs': {'outputs': _tensor_info('y3:0', [-1, 1])},
    'method_name': 'tensorflow/serving/regress', 'defaults': {}}


@pytest.mark.slow
def test_half_plus_two_tf1_at_the_defaults(models, tmp_path):
  """`python -m trainers.serve --export_dir=...` and nothing else, against
  the replies TF Serving documents for this model."""
  server = Server(models['tf1'], str(tmp_path / 'server.log'),
                  defaults=True)
  try:
    url = f'{server.url}/v1/models/saved_model_half_plus_two'
    assert http_call(url) == (200, {'model_version_status': [{
        'version': '123', 'state': 'AVAILABLE',
        'status': {'error_code': 'OK', 'error_message': ''}}]})
    assert http_call(f'{url}:predict', {'instances': [2.0, 3.0, 4.0]}) == (
        200, {'predictions': [3.0, 3.5, 4.0]})
    assert http_call(f'{url}:predict', {'inputs': [2.0, 3.0, 4.0]}) == (
        200, {'outputs': [3.0, 3.5, 4.0]})
    assert http_call(f'{url}:classify', {'signature_name': 'classify_x_to_y',
                                     'examples': [{'x': 2.0}]}) == (
        200, {'results': [[['', 3.0]]]})
    assert http_call(f'{url}:regress', {'signature_name': 'regress_x_to_y',
                                    'examples': [{'x': 2.0}]}) == (
        200, {'results': [3.0]})
    # context is merged into every example, whose own features win.
    assert http_call(f'{url}:regress', {
        'signature_name': 'regress_x_to_y2', 'context': {'x': 4.0},
        'examples': [{}, {'x': 2.0}]}) == (200, {'results': [5.0, 4.0]})
    status, reply = http_call(f'{url}/metadata')
    assert status == 200
    assert reply['model_spec'] == {'name': 'saved_model_half_plus_two',
                                   'signature_name': '', 'version': '123'}
    signatures = reply['metadata']['signature_def']['signature_def']
    assert sorted(signatures) == ['classify_x_to_y', 'regress_x2_to_y3',
                                  'regress_x_to_y', 'regress_x_to_y2',
                                  'serving_default']
    assert signatures['serving_default'] == SERVING_DEFAULT_METADATA
    assert signatures['regress_x2_to_y3'] == REGRESS_X2_TO_Y3_METADATA
    assert http_call(f'{url}/versions/123/metadata') == (200, reply)
    # api_rest.md's example of an unknown model.
    assert http_call(f'{server.url}/v1/models/half:predict',
                 {'instances': [1.0, 5.0]}) == (
        404, {'error': 'Servable not found for request: Latest(half)'})
    # classify on a signature that takes no examples.
    status, reply = http_call(f'{url}:classify', {'examples': [{'x': 2.0}]})
    assert status == 400 and "signature 'serving_default'" in reply['error']
    assert 'cannot classify' in reply['error']

    with grpc.insecure_channel(server.grpc) as channel:
      stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
      spec = {'name': 'saved_model_half_plus_two'}
      # TF Serving's VerifyPredictRequest.
      request = predict_pb2.PredictRequest(model_spec=spec)
      request.model_spec.signature_name = 'serving_default'
      request.inputs['x'].dtype = types_pb2.DT_FLOAT
      request.inputs['x'].float_val.append(2.0)
      request.inputs['x'].tensor_shape.dim.add().size = 1
      request.output_filter.append('y')
      reply = stub.Predict(request, timeout=TIMEOUT)
      assert reply.outputs['y'].dtype == types_pb2.DT_FLOAT
      assert list(reply.outputs['y'].float_val) == [3.0]
      assert (reply.model_spec.name, reply.model_spec.version.value,
              reply.model_spec.signature_name) == (
                  'saved_model_half_plus_two', 123, 'serving_default')
      request.output_filter[:] = ['z']
      code, details = _grpc_error(stub.Predict, request)
      assert code == grpc.StatusCode.INVALID_ARGUMENT
      assert 'output tensor alias not found in signature: z' in details

      for method, signature, field in (
          ('Classify', 'classify_x_to_y', 'classifications'),
          ('Regress', 'regress_x_to_y', 'regressions')):
        make = (classification_pb2.ClassificationRequest if method ==
                'Classify' else regression_pb2.RegressionRequest)
        request = make(model_spec=dict(spec, signature_name=signature))
        request.input.example_list.examples.add().CopyFrom(_example(2.0))
        reply = getattr(stub, method)(request, timeout=TIMEOUT)
        results = getattr(reply.result, field)
        assert len(results) == 1
        value = (results[0].classes[0].score if method == 'Classify'
                 else results[0].value)
        assert value == 3.0
        assert (reply.model_spec.version.value,
                reply.model_spec.signature_name) == (123, signature)

      request = inference_pb2.MultiInferenceRequest()
      for signature, method in (('regress_x_to_y', 'regress'),
                                ('classify_x_to_y', 'classify')):
        task = request.tasks.add()
        task.model_spec.name = spec['name']
        task.model_spec.signature_name = signature
        task.method_name = f'tensorflow/serving/{method}'
      request.input.example_list.examples.add().CopyFrom(_example(2.0))
      reply = stub.MultiInference(request, timeout=TIMEOUT)
      assert len(reply.results) == 2
      assert reply.results[0].regression_result.regressions[0].value == 3.0
      assert reply.results[1].classification_result.classifications[
          0].classes[0].score == 3.0
      assert [r.model_spec.version.value for r in reply.results] == [123, 123]
      request.tasks[1].method_name = 'tensorflow/serving/predict'
      code, details = _grpc_error(stub.MultiInference, request)
      assert code == grpc.StatusCode.INVALID_ARGUMENT
      assert 'Unsupported signature method_name' in details

      request = get_model_metadata_pb2.GetModelMetadataRequest(
          model_spec=spec, metadata_field=['signature_def'])
      reply = stub.GetModelMetadata(request, timeout=TIMEOUT)
      assert (reply.model_spec.name, reply.model_spec.version.value) == (
          'saved_model_half_plus_two', 123)
      assert list(reply.metadata) == ['signature_def']

      status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
      reply = status_stub.GetModelStatus(
          get_model_status_pb2.GetModelStatusRequest(model_spec=spec),
          timeout=TIMEOUT)
      assert [(s.version, s.status.error_code)
              for s in reply.model_version_status] == [(123, 0)]
      request = predict_pb2.PredictRequest(model_spec={'name': 'half'})
      assert _grpc_error(stub.Predict, request) == (
          grpc.StatusCode.NOT_FOUND,
          'Servable not found for request: Latest(half)')

    page = _text(f'{server.url}/monitoring/prometheus/metrics')
    assert '# TYPE :tensorflow:serving:request_count counter' in page
    assert (':tensorflow:serving:request_count{model_name="saved_model_half_'
            'plus_two",status="OK"}') in page
  finally:
    server.stop()
  assert server.proc.returncode == 0, server.log()[-3000:]


def _text(url):
  import urllib.request  # pylint: disable=g-import-not-at-top
  with urllib.request.urlopen(url, timeout=TIMEOUT) as reply:
    return reply.read().decode()


# -- several models from one --model_config_file ------------------------------

CONFIG = """
model_config_list {{
  config {{
    name: "half_plus_two"
    base_path: "{tf1_2_versions}"
    model_platform: "tensorflow"
  }}
  config {{
    name: "half_plus_two_tf2"
    base_path: "{tf2}"
    model_platform: "tensorflow"
    model_version_policy {{ all {{}} }}
    version_labels {{ key: "stable" value: 123 }}
    version_labels {{ key: "canary" value: 124 }}
  }}
  config {{
    name: "echo"
    base_path: "{echo}"
    model_platform: "tensorflow"
    model_version_policy {{ specific {{ versions: 1 }} }}
  }}
}}
"""


@pytest.fixture(scope='session')
def configured(models, tmp_path_factory):
  root = tmp_path_factory.mktemp('configured')
  config = root / 'models.config'
  config.write_text(CONFIG.format(**models))
  server = Server(None, str(root / 'server.log'),
                  f'--model_config_file={config}', '--poll_seconds=0',
                  ready=['half_plus_two', 'half_plus_two_tf2', 'echo'])
  yield server
  server.stop()


@pytest.mark.slow
def test_version_policies_from_the_config_file(configured):
  url = f'{configured.url}/v1/models'
  # latest (the default): only the newest of 123 and 124 is loaded.
  assert http_call(f'{url}/half_plus_two')[1]['model_version_status'] == [{
      'version': '124', 'state': 'AVAILABLE',
      'status': {'error_code': 'OK', 'error_message': ''}}]
  assert http_call(f'{url}/half_plus_two/versions/123') == (
      404, {'error': 'Could not find version 123 of model half_plus_two'})
  # all: both; specific [1]: version 1 of echo, not 2.
  assert [s['version'] for s in http_call(f'{url}/half_plus_two_tf2')[1][
      'model_version_status']] == ['124', '123']
  assert [s['version'] for s in http_call(f'{url}/echo')[1][
      'model_version_status']] == ['1']


def test_tf2_predict_classify_regress_and_labels(configured):
  url = f'{configured.url}/v1/models/half_plus_two_tf2'
  # The latest (124) is half plus three.
  assert http_call(f'{url}:predict', {'instances': [2.0, 3.0, 4.0]}) == (
      200, {'predictions': [4.0, 4.5, 5.0]})
  for where in ('/versions/123', '/labels/stable'):
    assert http_call(f'{url}{where}:predict', {'inputs': [2.0, 3.0, 4.0]}) == (
        200, {'outputs': [3.0, 3.5, 4.0]}), where
    assert http_call(f'{url}{where}:classify', {
        'signature_name': 'classify_x_to_y', 'examples': [{'x': 2.0}]}) == (
            200, {'results': [[['', 3.0]]]}), where
    assert http_call(f'{url}{where}:regress', {
        'signature_name': 'regress_x_to_y', 'examples': [{'x': 2.0}]}) == (
            200, {'results': [3.0]}), where
  assert http_call(f'{url}/labels/canary:regress', {
      'signature_name': 'regress_x_to_y', 'examples': [{'x': 2.0}]}) == (
          200, {'results': [4.0]})
  assert http_call(f'{url}/labels/stable')[1]['model_version_status'][0][
      'version'] == '123'
  assert http_call(f'{url}/labels/canary/metadata')[1]['model_spec'][
      'version'] == '124'
  assert http_call(f'{url}/labels/beta:predict', {'instances': [1.0]}) == (
      400, {'error': 'Unrecognized servable version label: beta'})
  with grpc.insecure_channel(configured.grpc) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = 'half_plus_two_tf2'
    request.model_spec.signature_name = 'classify_x_to_y'
    request.model_spec.version_label = 'stable'
    request.input.example_list.examples.add().CopyFrom(_example(2.0))
    reply = stub.Classify(request, timeout=TIMEOUT)
    assert reply.result.classifications[0].classes[0].score == 3.0
    assert reply.model_spec.version.value == 123
    request = inference_pb2.MultiInferenceRequest()
    task = request.tasks.add(method_name='tensorflow/serving/regress')
    task.model_spec.name = 'half_plus_two_tf2'
    task.model_spec.signature_name = 'regress_x_to_y'
    request.input.example_list.examples.add().CopyFrom(_example(2.0))
    reply = stub.MultiInference(request, timeout=TIMEOUT)
    assert reply.results[0].regression_result.regressions[0].value == 4.0
    assert reply.results[0].model_spec.version.value == 124
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'half_plus_two_tf2'
    request.model_spec.version_label = 'beta'
    request.inputs['x'].CopyFrom(tf.make_tensor_proto([2.0]))
    assert _grpc_error(stub.Predict, request) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        'Unrecognized servable version label: beta')


def test_b64_values_bytes_outputs_error_codes_and_nan(configured):
  example = base64.b64encode(_example(2.0).SerializeToString()).decode()
  # A string input given as {"b64": ...}: predict on the classify signature.
  assert http_call(f'{configured.url}/v1/models/half_plus_two_tf2/versions/'
               '123:predict', {'signature_name': 'classify_x_to_y',
                               'instances': [{'b64': example}]}) == (
      200, {'predictions': [[3.0]]})
  # Outputs named *_bytes come back as {"b64": ...}, other strings as text.
  url = f'{configured.url}/v1/models/echo:predict'
  assert http_call(url, {'instances': [{'b64': 'AP8='}, 'hi']}) == (200, {
      'predictions': [{'length': 2, 'text_bytes': {'b64': 'AP8='}},
                      {'length': 2, 'text_bytes': {'b64': 'aGk='}}]})
  status, reply = http_call(url, {'instances': [{'b64': 'not base64!'}]})
  assert status == 400 and 'is not valid base64' in reply['error']
  status, reply = http_call(url, {'instances': [3]})
  assert status == 400 and "input 'text' must hold strings" in reply['error']
  # TensorFlow's NOT_FOUND from inside the graph is HTTP 404, gRPC
  # NOT_FOUND (TF Serving maps every code: 429, 503, 504, ...).
  status, reply = http_call(url, {'signature_name': 'read',
                              'inputs': '/nonexistent/file'})
  assert status == 404 and '/nonexistent/file' in reply['error']
  with grpc.insecure_channel(configured.grpc) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'echo'
    request.model_spec.signature_name = 'read'
    request.inputs['path'].CopyFrom(tf.make_tensor_proto('/nonexistent/file'))
    code, _ = _grpc_error(stub.Predict, request)
    assert code == grpc.StatusCode.NOT_FOUND
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'echo'
    request.inputs['text'].CopyFrom(tf.make_tensor_proto([b'\x00\xff', b'hi']))
    reply = stub.Predict(request, timeout=TIMEOUT)
    assert list(reply.outputs['text_bytes'].string_val) == [b'\x00\xff',
                                                            b'hi']
    assert list(reply.outputs['length'].int_val) == [2, 2]
  # JSON's NaN and Infinity tokens, read and written as TF Serving does.
  status, reply = http_call(f'{configured.url}/v1/models/half_plus_two:predict',
                        b'{"instances": [NaN, Infinity]}')
  assert status == 200
  assert math.isnan(reply['predictions'][0])
  assert reply['predictions'][1] == math.inf


# -- KServe V2 -----------------------------------------------------------------


def test_v2_metadata_and_readiness(configured):
  url = f'{configured.url}/v2'
  status, reply = http_call(url)
  assert status == 200 and reply['name'] == 'tfp-vae'
  assert http_call(f'{url}/health/live') == (200, {'live': True})
  assert http_call(f'{url}/health/ready') == (200, {'ready': True})
  assert http_call(f'{url}/models/half_plus_two_tf2') == (200, {
      'name': 'half_plus_two_tf2', 'versions': ['123', '124'],
      'platform': 'tensorflow_savedmodel',
      'inputs': [{'name': 'x', 'datatype': 'FP32', 'shape': [1]}],
      'outputs': [{'name': 'y', 'datatype': 'FP32', 'shape': [1]}]})
  assert http_call(f'{url}/models/half_plus_two')[1]['inputs'] == [
      {'name': 'x', 'datatype': 'FP32', 'shape': [-1, 1]}]
  assert http_call(f'{url}/models/echo')[1]['outputs'] == [
      {'name': 'length', 'datatype': 'INT32', 'shape': [-1]},
      {'name': 'text_bytes', 'datatype': 'BYTES', 'shape': [-1]}]
  assert http_call(f'{url}/models/echo/versions/2/ready')[0] == 503
  assert http_call(f'{url}/models/nope')[0] == 404
  status, reply = http_call(f'{url}/models/half_plus_two_tf2/infer', {
      'inputs': [{'name': 'x', 'shape': [1], 'data': [1.0]}]})
  assert status == 400 and "lacks ['datatype']" in reply['error']
  status, reply = http_call(f'{url}/models/half_plus_two_tf2/infer', {
      'inputs': [{'name': 'z', 'shape': [1], 'datatype': 'FP32',
                  'data': [1.0]}]})
  assert status == 400 and "missing ['x']; unknown ['z']" in reply['error']
  from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb  # pylint: disable=g-import-not-at-top
  from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc  # pylint: disable=g-import-not-at-top
  with grpc.insecure_channel(configured.grpc) as channel:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    reply = stub.ModelMetadata(pb.ModelMetadataRequest(
        name='half_plus_two_tf2'), timeout=TIMEOUT)
    assert [(t.name, t.datatype, list(t.shape)) for t in reply.inputs] == [
        ('x', 'FP32', [1])]
    assert list(reply.versions) == ['123', '124']
    assert stub.ServerMetadata(pb.ServerMetadataRequest(),
                               timeout=TIMEOUT).name == 'tfp-vae'


def test_v2_infer_with_kserves_clients(configured):
  import kserve  # pylint: disable=g-import-not-at-top

  def request(binary: bool, version: str = ''):
    tensor = kserve.InferInput('x', [3], 'FP32')
    tensor.set_data_from_numpy(np.array([2.0, 3.0, 4.0], np.float32),
                               binary_data=binary)
    return kserve.InferRequest(model_name='half_plus_two_tf2',
                               infer_inputs=[tensor], request_id='r1',
                               model_version=version or None)

  async def rest():
    client = kserve.InferenceRESTClient(kserve.RESTConfig(protocol='v2'))
    try:
      assert await client.is_server_live(configured.url)
      assert await client.is_server_ready(configured.url)
      assert await client.is_model_ready(configured.url, 'half_plus_two_tf2')
      out = []
      for binary in (True, False):
        reply = await client.infer(configured.url, request(binary),
                                   model_name='half_plus_two_tf2')
        # (KServe's REST client does not read the reply's model_version.)
        out.append((reply.id, reply.outputs[0].name,
                    reply.outputs[0].as_numpy().tolist()))
      return out
    finally:
      await client.close()

  assert asyncio.run(rest()) == [('r1', 'y', [4.0, 4.5, 5.0])] * 2
  assert http_call(f'{configured.url}/v2/models/half_plus_two_tf2/versions/123/'
               'infer', {'id': 'a', 'inputs': [{
                   'name': 'x', 'shape': [2], 'datatype': 'FP64',
                   'data': [2.0, 4.0]}]}) == (200, {
                       'id': 'a', 'model_name': 'half_plus_two_tf2',
                       'model_version': '123', 'outputs': [{
                           'name': 'y', 'shape': [2], 'datatype': 'FP32',
                           'data': [3.0, 4.0]}]})

  async def grpc_v2():
    client = kserve.InferenceGRPCClient(configured.grpc, retries=0)
    try:
      assert await client.is_server_ready()
      assert await client.is_model_ready('half_plus_two_tf2')
      latest = await client.infer(request(True))
      pinned = await client.infer(request(False, version='123'))
      return [(r.model_version, r.outputs[0].as_numpy().tolist())
              for r in (latest, pinned)]
    finally:
      await client.close()

  assert asyncio.run(grpc_v2()) == [('124', [4.0, 4.5, 5.0]),
                                    ('123', [3.0, 3.5, 4.0])]


@pytest.mark.slow
def test_a_bad_model_config_file_is_one_line(models, tmp_path):
  config = tmp_path / 'models.config'
  for text, message in (
      ('model_config_list { config { name: "a" base_path: "x" } } oops',
       'is not a text ModelServerConfig'),
      (CONFIG.format(**dict(models, echo=str(tmp_path / 'missing'))),
       "model 'echo': " + repr(str(tmp_path / 'missing'))
       + ' is not a directory')):
    config.write_text(text)
    r = subprocess.run(
        [sys.executable, '-m', 'trainers.serve', f'--model_config_file={config}',
         '--host=127.0.0.1', '--rest_api_port=1', '--grpc_port=0'],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stderr[-2000:]
    assert message in r.stderr, r.stderr[-2000:]
    assert 'Traceback' not in r.stderr
