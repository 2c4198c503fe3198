"""What tfp_vae.serving.kserve_adapter takes from KServe, checked on the
installed KServe, so that an upgrade that breaks it fails here: the
import-time argv parsing it hides, Model.__call__'s pre-, post-processing
and return value, and the V2 codec (KServe's InferRequest / InferResponse
over REST with the binary extension, and over gRPC)."""

import asyncio
import subprocess
import sys

import numpy as np
import orjson
import pytest

from tests.helpers import REPO
from tfp_vae.serving import kserve_adapter
from tfp_vae.serving import status
from tfp_vae.serving import tfserving

kserve = pytest.importorskip('kserve')


def test_kserves_import_does_not_read_this_programs_flags():
  # kserve.model_server's argparse, given these, would exit (an int flag
  # that is not a number; an ambiguous prefix).
  code = ('import sys; sys.argv = ["serve", "--http_port=x", "--max=1", '
          '"--model_name=m"]; from tfp_vae.serving import kserve_adapter; '
          'from kserve import model_server; '
          'assert sys.argv[1:] == ["--http_port=x", "--max=1", '
          '"--model_name=m"], sys.argv; '
          'assert model_server.args.http_port != "x"; print("ok")')
  r = subprocess.run([sys.executable, '-c', code], cwd=REPO,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and r.stdout.strip() == 'ok', r.stderr[-2000:]


class _Versions:
  name = 'm'

  def loaded(self):
    return [1]


class _Hooked(kserve_adapter.ExportDirModel):
  """A user's subclass: pre- and post-processing around predict."""

  async def preprocess(self, payload, headers=None):
    return {**payload, 'pre': True}

  async def postprocess(self, result, headers=None, response_headers=None):
    return {**result, 'post': True}


def test_model_call_runs_the_hooks_and_returns_the_reply():
  seen = {}

  def predict_v1(versions, body, route):
    seen['args'] = (versions.name, body, route)
    return {'predictions': [1]}

  model = _Hooked('m', _Versions(), predict_v1, None)
  route = tfserving.Route('m', 3)
  reply = asyncio.run(kserve_adapter.call_model(
      model, {'instances': [0]}, {kserve_adapter.REQUEST_KEY: route}))
  assert reply == {'predictions': [1], 'post': True}
  assert seen['args'] == ('m', {'instances': [0], 'pre': True}, route)
  # A user's hook raising KServe's InvalidInput is a 400.
  error = kserve.errors.InvalidInput('bad field')
  assert kserve_adapter.kserve_status(error).http_status == 400
  assert kserve_adapter.kserve_status(error).message == 'bad field'


def _infer_request(binary: bool):
  tensor = kserve.InferInput('x', [2, 2], 'FP32')
  tensor.set_data_from_numpy(np.arange(4, dtype=np.float32).reshape(2, 2),
                             binary_data=binary)
  words = kserve.InferInput('w', [2], 'BYTES')
  words.set_data_from_numpy(np.array([b'a', b'bc'], object),
                            binary_data=binary)
  return kserve.InferRequest(model_name='m', infer_inputs=[tensor, words],
                             request_id='7',
                             parameters={'signature_name': 'decode'})


@pytest.mark.parametrize('binary', [True, False])
def test_v2_rest_codec_round_trip(binary):
  body, json_length = _infer_request(binary).to_rest()
  headers = {}
  if json_length is not None:
    headers[kserve_adapter.JSON_LENGTH_HEADER] = str(json_length)
  else:
    body = orjson.dumps(body)
  request = kserve_adapter.infer_request_from_rest(body, headers, 'm',
                                                   orjson.loads)
  arrays = kserve_adapter.request_arrays(request)
  np.testing.assert_array_equal(arrays['x'], [[0, 1], [2, 3]])
  assert [bytes(v) if not isinstance(v, str) else v.encode()
          for v in arrays['w'].tolist()] == [b'a', b'bc']
  assert kserve_adapter.request_parameters(request)['signature_name'] == (
      'decode')
  response = kserve_adapter.infer_response(
      request, 'm', 5, {'y': np.array([[1.5]], np.float32)}, {'y': 'FP32'})
  body, headers = kserve_adapter.response_to_rest(response)
  raw = body if isinstance(body, bytes) else orjson.dumps(body)
  parsed = kserve.InferResponse.from_bytes(
      raw, int(headers.get(kserve_adapter.JSON_LENGTH_HEADER, len(raw))))
  assert parsed.id == '7'
  np.testing.assert_array_equal(parsed.outputs[0].as_numpy(), [[1.5]])


def test_v2_grpc_codec_round_trip():
  request = kserve_adapter.infer_request_from_grpc(
      _infer_request(True).to_grpc())
  np.testing.assert_array_equal(kserve_adapter.request_arrays(request)['x'],
                                [[0, 1], [2, 3]])
  assert kserve_adapter.request_parameters(request) == {
      'signature_name': 'decode'}
  response = kserve_adapter.infer_response(
      request, 'm', 5, {'y': np.array([3, 4], np.int64)}, {'y': 'INT64'})
  reply = kserve_adapter.response_to_grpc(response)
  assert isinstance(reply, kserve_adapter.v2_pb2.ModelInferResponse)
  assert (reply.model_name, reply.model_version) == ('m', '5')
  np.testing.assert_array_equal(
      kserve.InferResponse.from_grpc(reply).outputs[0].as_numpy(), [3, 4])


def test_bad_v2_bodies_name_what_is_wrong():
  for body, message in (
      (b'[1]', 'must be a JSON object'),
      (b'{"inputs": []}', "needs 'inputs'"),
      (b'{"inputs": [{"name": "x", "shape": [1], "data": [1]}]}',
       "lacks ['datatype']"),
      (b'{"inputs": [{"name": "x", "shape": [-1], "datatype": "FP32",'
       b' "data": [1]}]}', 'non-negative integers'),
  ):
    with pytest.raises(status.Status) as e:
      kserve_adapter.infer_request_from_rest(body, {}, 'm', orjson.loads)
    assert message in e.value.message, body
  request = kserve_adapter.infer_request_from_rest(
      b'{"inputs": [{"name": "x", "shape": [3], "datatype": "FP32", '
      b'"data": [1, 2]}]}', {}, 'm', orjson.loads)
  with pytest.raises(status.Status) as e:
    kserve_adapter.request_arrays(request)
  assert "input 'x'" in e.value.message and '[3]' in e.value.message
