"""trainers.serve as a real server process on free local ports: every
signature over REST and gRPC, TF Serving's status and metadata (against
`saved_model_cli show`), bad inputs as 400 with the signature's message,
bounds, a new version picked up while serving, SIGTERM during a request,
and deploy/serving/client.py end to end (JSON, PNG, one-line errors)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import grpc
import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tests.helpers import BAD, REPO, Server, free_port, http_call
from tfp_vae.config import settings as config_lib
from tfp_vae.data import inputs
from tfp_vae.internal import errors
from tfp_vae.model import export
from tfp_vae.model import models

# One worker runs this file: its module fixtures (trained runs, servers)
# are built once, not once per worker (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('serve')

SHAPE = (28, 28, 1)
LATENT = 3  # as in test_export, whose BAD inputs name it
MAX_BATCH = 64
MAX_REQUEST_BYTES = 2_000_000
SIGNATURES = ('encode', 'decode', 'reconstruct', 'sample', 'log_likelihood',
              'serving_default')
CLIENT = os.path.join(REPO, 'deploy', 'serving', 'client.py')


# -- a server process --------------------------------------------------------


def _export(export_dir, seed):
  cfg = config_lib.TrainConfig.create(latent_dim=LATENT).validate()
  model = models.build_model(cfg, SHAPE, seed=seed)
  return export.export_savedmodel(model, SHAPE, export_dir)


@pytest.fixture(scope='session')
def served(tmp_path_factory):
  """A server over version 1 of an export; (server, loaded SavedModel)."""
  root = tmp_path_factory.mktemp('served')
  path = _export(str(root / 'vae'), seed=0)
  server = Server(str(root / 'vae'), str(root / 'server.log'),
                  f'--max_batch={MAX_BATCH}',
                  f'--max_request_bytes={MAX_REQUEST_BYTES}')
  yield server, tf.saved_model.load(path), path
  server.stop()


@pytest.fixture(scope='session')
def images(mnist_5k):
  return inputs.eval_images(mnist_5k.test_images[::100][:5])


def _signatures_in_process(loaded, images_, codes):
  s = loaded.signatures
  x, z = tf.constant(images_), tf.constant(codes)
  return {
      'encode': s['encode'](images=x),
      'decode': s['decode'](codes=z),
      'reconstruct': s['reconstruct'](images=x),
      'sample': s['sample'](num_samples=tf.constant(4, tf.int64),
                            seed=tf.constant(7, tf.int64)),
      'log_likelihood': s['log_likelihood'](images=x),
  }


# -- REST --------------------------------------------------------------------


@pytest.mark.slow
def test_every_signature_over_rest_in_both_formats(served, images):
  server, loaded, _ = served
  codes = np.random.default_rng(0).normal(size=(4, LATENT)).astype(
      np.float32)
  want = _signatures_in_process(loaded, images, codes)
  close = lambda a, b: np.testing.assert_allclose(np.asarray(a), b,
                                                  rtol=1e-5, atol=1e-5)
  predict = f'{server.url}/v1/models/vae:predict'
  rows = {'encode': images, 'decode': codes, 'reconstruct': images,
          'log_likelihood': images}
  for sig, x in rows.items():
    status, reply = http_call(predict, {'signature_name': sig,
                                    'instances': x.tolist()})
    assert status == 200, reply
    if sig == 'encode':  # several outputs: a list of objects, one per row
      assert len(reply['predictions']) == len(images)
      close([r['code_mean'] for r in reply['predictions']],
            want['encode']['code_mean'])
      close([r['code_stddev'] for r in reply['predictions']],
            want['encode']['code_stddev'])
    else:  # one output: its rows, unnamed
      (only,) = want[sig].values()
      close(reply['predictions'], only)
    # Columnar: {"outputs": value} or {"outputs": {name: value}}.
    name = 'codes' if sig == 'decode' else 'images'
    status, reply = http_call(predict, {'signature_name': sig,
                                    'inputs': {name: x.tolist()}})
    assert status == 200, reply
    if sig == 'encode':
      assert sorted(reply['outputs']) == ['code_mean', 'code_sample',
                                          'code_stddev']
      close(reply['outputs']['code_mean'], want['encode']['code_mean'])
    else:
      close(reply['outputs'], next(iter(want[sig].values())))
  status, reply = http_call(predict, {'signature_name': 'sample', 'inputs': {
      'num_samples': 4, 'seed': 7}})
  assert status == 200, reply
  close(reply['outputs']['codes'], want['sample']['codes'])
  close(reply['outputs']['images'], want['sample']['images'])
  # No signature_name: serving_default (= encode); an unnamed columnar value.
  status, reply = http_call(predict, {'inputs': images.tolist()})
  assert status == 200, reply
  close(reply['outputs']['code_mean'], want['encode']['code_mean'])
  # The version in the path, and TF Serving's curl habit: no content type.
  request = urllib.request.Request(
      f'{server.url}/v1/models/vae/versions/1:predict', method='POST',
      data=json.dumps({'signature_name': 'decode',
                       'instances': codes.tolist()}).encode())
  with urllib.request.urlopen(request, timeout=60) as reply:
    close(json.load(reply)['predictions'], want['decode']['images'])


@pytest.mark.slow
def test_status_metadata_and_health(served):
  server, _, _ = served
  want = {'model_version_status': [{
      'version': '1', 'state': 'AVAILABLE',
      'status': {'error_code': 'OK', 'error_message': ''}}]}
  assert http_call(f'{server.url}/v1/models/vae') == (200, want)
  assert http_call(f'{server.url}/v1/models/vae/versions/1') == (200, want)
  status, reply = http_call(f'{server.url}/v1/models/vae/versions/7')
  assert status == 404
  assert reply == {'error': 'Could not find version 7 of model vae'}
  status, reply = http_call(f'{server.url}/v1/models/vae/versions/x')
  assert (status, reply) == (400, {'error': 'Failed to convert version: x '
                                            'to numeric.'})
  status, reply = http_call(f'{server.url}/v1/models/other')
  assert status == 404 and 'other' in reply['error']
  status, reply = http_call(f'{server.url}/v1/models/vae/metadata')
  assert status == 200
  assert reply['model_spec'] == {'name': 'vae', 'signature_name': '',
                                 'version': '1'}
  assert sorted(reply['metadata']['signature_def']['signature_def']) == (
      sorted(SIGNATURES + ('__saved_model_init_op',)))
  assert http_call(f'{server.url}/v1/models/vae/versions/1/metadata') == (
      200, reply)
  for probe in ('/v2/health/live', '/v2/health/ready',
                '/v2/models/vae/ready'):
    assert http_call(server.url + probe)[0] == 200, probe
  # TF Serving's REST handler takes every /v1/ path: one it cannot parse is
  # its 400 "Malformed request"; other paths are 404.
  assert http_call(f'{server.url}/v1/nothing/here') == (
      400, {'error': 'Malformed request: GET /v1/nothing/here'})
  status, reply = http_call(f'{server.url}/nothing/here')
  assert status == 404 and 'error' in reply


def _cli_signatures(text):
  """saved_model_cli show --all's SignatureDefs: {signature: {'inputs' |
  'outputs': {name: (dtype, shape, tensor name)}, 'method': ...}}."""
  out, sig, side, name = {}, None, None, None
  for line in text.splitlines():
    if line.startswith('Concrete Functions'):
      break
    m = re.match(r"signature_def\['(.+)'\]:$", line)
    if m:
      sig = out.setdefault(m.group(1), {'inputs': {}, 'outputs': {}})
      continue
    m = re.match(r"\s+(inputs|outputs)\['(.+)'\] tensor_info:$", line)
    if m:
      side, name = m.groups()
      sig[side][name] = {}
      continue
    m = re.match(r'\s+(dtype|shape|name): (.*)$', line)
    if m and sig is not None and name is not None:
      sig[side][name][m.group(1)] = m.group(2)
      continue
    m = re.match(r'\s+Method name is: ?(.*)$', line)
    if m:
      sig['method'] = m.group(1)
      name = None
  return out


def _json_signatures(signature_def):
  """The server's metadata in the same form."""

  def info(tensor):
    shape = tensor['tensor_shape']
    text = 'unknown_rank' if shape.get('unknown_rank') else (
        '(' + ', '.join(d['size'] for d in shape.get('dim', [])) + ')')
    return {'dtype': tensor['dtype'], 'shape': text, 'name': tensor['name']}

  return {name: {'inputs': {k: info(v) for k, v in s['inputs'].items()},
                 'outputs': {k: info(v) for k, v in s['outputs'].items()},
                 'method': s['method_name']}
          for name, s in signature_def.items()}


@pytest.mark.slow
def test_metadata_matches_saved_model_cli_show(served):
  server, _, path = served
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  shown = subprocess.run([cli, 'show', '--dir', path, '--all'],
                         capture_output=True, text=True, timeout=120)
  assert shown.returncode == 0, shown.stderr[-2000:]
  want = _cli_signatures(shown.stdout)
  assert set(want) >= set(SIGNATURES)
  _, reply = http_call(f'{server.url}/v1/models/vae/metadata')
  got = _json_signatures(reply['metadata']['signature_def']['signature_def'])
  assert got == want


@pytest.mark.parametrize('sig,inputs,message,got', BAD)
def test_bad_inputs_return_400_with_the_signatures_message(
    served, sig, inputs, message, got):
  server, _, _ = served
  body = {'signature_name': sig,
          'inputs': {k: np.asarray(v).tolist() for k, v in inputs.items()}}
  # json.dumps writes NaN as the token NaN, which TF Serving's parser (and
  # this server's) reads, so a NaN reaches the signature's own check.
  status, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
  assert status == 400, reply
  assert list(reply) == ['error']
  assert message in reply['error'] and got in reply['error']
  assert '\n' not in reply['error'] and 'node' not in reply['error']


@pytest.mark.parametrize('body,status,message', [
    ({'signature_name': 'nope', 'instances': [[0, 0, 0]]}, 400,
     'Serving signature name: "nope" not found in signature def'),
    ({'signature_name': 'decode', 'instances': [[0, 0, 0]],
      'inputs': [[0, 0, 0]]}, 400, "exactly one of 'instances'"),
    ({'signature_name': 'decode', 'instance': [[0, 0, 0]]}, 400,
     "exactly one of 'instances'"),
    ({'signature_name': 'decode', 'instances': [[0, 0, 0], [0, 0]]}, 400,
     "input 'codes' is not a rectangular array"),
    ({'signature_name': 'decode', 'instances': [['a', 'b', 'c']]}, 400,
     "input 'codes' must hold numbers"),
    ({'signature_name': 'sample', 'inputs': {'num_samples': 2.5, 'seed': 0}},
     400, "input 'num_samples' must hold integers"),
    ({'signature_name': 'sample', 'inputs': [4, 0]}, 400,
     "signature 'sample' takes 2 inputs"),
    ({'signature_name': 'sample', 'inputs': {'num_samples': 4}}, 400,
     "missing ['seed']"),
    ({'signature_name': 'sample', 'instances': [{'num_samples': 4,
                                                 'seed': 0}]}, 400,
     'num_samples must be a scalar in [0, 10000]'),
    ({'signature_name': 'decode', 'instances': [[0, 0, 0]] * (MAX_BATCH + 1)},
     400, f'above this server\'s limit of {MAX_BATCH} (--max_batch)'),
    ({'signature_name': 'decode',
      'inputs': {'codes': [[0, 0, 0]] * (MAX_BATCH + 1)}}, 400,
     f'above this server\'s limit of {MAX_BATCH} (--max_batch)'),
    ({'signature_name': 'sample', 'inputs': {'num_samples': MAX_BATCH + 1,
                                             'seed': 0}}, 400,
     f'num_samples {MAX_BATCH + 1} is above this server\'s limit'),
    ([1, 2], 400, 'must be a JSON object'),
    ({'signature_name': 'decode', 'instances': [[0.0] * 3] * 10,
      'pad': 'x' * MAX_REQUEST_BYTES}, 413, '(--max_request_bytes)'),
])
def test_protocol_errors_and_bounds(served, body, status, message):
  server, _, _ = served
  got_status, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
  assert got_status == status, reply
  assert message in reply['error']


def test_unknown_model_version_and_body(served):
  server, _, _ = served
  body = {'signature_name': 'decode', 'instances': [[0, 0, 0]]}
  status, reply = http_call(f'{server.url}/v1/models/other:predict', body)
  assert status == 404 and 'other' in reply['error']
  status, reply = http_call(f'{server.url}/v1/models/vae/versions/3:predict',
                        body)
  assert status == 404
  assert 'Specific(vae, 3)' in reply['error']
  status, reply = http_call(f'{server.url}/v1/models/vae:predict', b'{not json')
  assert status == 400 and 'error' in reply


# -- gRPC --------------------------------------------------------------------


def test_grpc_predict_metadata_and_status(served, images):
  server, loaded, path = served
  with grpc.insecure_channel(server.grpc) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = 'vae'
    request.model_spec.signature_name = 'encode'
    request.inputs['images'].CopyFrom(tf.make_tensor_proto(images))
    request.output_filter.append('code_mean')
    reply = stub.Predict(request, timeout=60)
    assert reply.model_spec.version.value == 1
    assert reply.model_spec.signature_name == 'encode'
    assert list(reply.outputs) == ['code_mean']
    np.testing.assert_allclose(
        tf.make_ndarray(reply.outputs['code_mean']),
        loaded.signatures['encode'](images=tf.constant(images))['code_mean'],
        rtol=1e-5, atol=1e-5)
    request.inputs['images'].CopyFrom(tf.make_tensor_proto(images * 255))
    with pytest.raises(grpc.RpcError) as e:
      stub.Predict(request, timeout=60)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert 'images must have values in [0, 1]' in e.value.details()
    request.model_spec.version.value = 5
    with pytest.raises(grpc.RpcError) as e:
      stub.Predict(request, timeout=60)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    metadata = get_model_metadata_pb2.GetModelMetadataRequest()
    metadata.model_spec.name = 'vae'
    metadata.metadata_field.append('signature_def')
    reply = stub.GetModelMetadata(metadata, timeout=60)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert reply.metadata['signature_def'].Unpack(signatures)
    assert set(signatures.signature_def) >= set(SIGNATURES)
    assert signatures.signature_def['encode'].inputs['images'].dtype == (
        tf.float32.as_datatype_enum)
    status = get_model_status_pb2.GetModelStatusRequest()
    status.model_spec.name = 'vae'
    reply = model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(
        status, timeout=60)
    (version,) = reply.model_version_status
    assert version.version == 1
    assert version.state == get_model_status_pb2.ModelVersionStatus.AVAILABLE
  assert os.path.isdir(path)


# -- versions and shutdown ---------------------------------------------------


def _wait_for(condition, seconds=120, what='condition', every=0.2):
  deadline = time.time() + seconds
  while time.time() < deadline:
    value = condition()
    if value:
      return value
    time.sleep(every)
  pytest.fail(f'{what} not reached in {seconds}s')


@pytest.mark.slow
def test_a_new_version_is_picked_up_while_serving(tmp_path, monkeypatch):
  export_dir = str(tmp_path / 'vae')
  first = _export(export_dir, seed=0)
  server = Server(export_dir, str(tmp_path / 'server.log'),
                  '--poll_seconds=0.2')
  try:
    codes = np.random.default_rng(1).normal(size=(3, LATENT)).astype(
        np.float32)
    body = {'signature_name': 'decode', 'instances': codes.tolist()}
    decode = lambda path: tf.saved_model.load(path).signatures['decode'](
        codes=tf.constant(codes))['images'].numpy()
    want_1 = decode(first)
    _, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
    np.testing.assert_allclose(reply['predictions'], want_1, atol=1e-5)
    second = _export(export_dir, seed=1)  # what trainers.export writes
    want_2 = decode(second)
    assert not np.allclose(want_1, want_2, atol=1e-3)
    states = lambda: {s['version']: s['state'] for s in http_call(
        f'{server.url}/v1/models/vae')[1]['model_version_status']}
    # TF Serving's default policy serves the latest version: version 2
    # loads, then version 1 is unloaded (END).
    _wait_for(lambda: states() == {'2': 'AVAILABLE', '1': 'END'},
              what='version 2 available, version 1 unloaded')
    _, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
    np.testing.assert_allclose(reply['predictions'], want_2, atol=1e-5)
    status, reply = http_call(f'{server.url}/v1/models/vae/versions/1:predict',
                          body)
    assert (status, reply) == (404, {
        'error': 'Servable not found for request: Specific(vae, 1)'})
    assert http_call(f'{server.url}/v1/models/vae/metadata')[1]['model_spec'][
        'version'] == '2'
    # A removed version is unloaded; the latest left on disk is served.
    shutil.rmtree(second)
    _wait_for(lambda: states() == {'2': 'END', '1': 'AVAILABLE'},
              what='version 2 END, version 1 back')
    _, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
    np.testing.assert_allclose(reply['predictions'], want_1, atol=1e-5)
    # The disk fills while a version is written: it never appears.
    monkeypatch.setenv('TFP_VAE_FAULT', 'enospc:export')
    with pytest.raises(errors.StorageUnavailable, match='no space left on '
                       'the device holding .* while writing a new SavedModel'):
      _export(export_dir, seed=2)
    assert sorted(os.listdir(export_dir)) == ['1', 'models.config']
    time.sleep(0.6)  # three polls
    assert states() == {'2': 'END', '1': 'AVAILABLE'}
    assert 'version 3' not in server.log()
    # The base path goes away (a vanished mount): the loaded version is
    # served on, with one warning, until it is back.
    away = export_dir + '-away'
    os.rename(export_dir, away)
    _wait_for(lambda: 'cannot read its base path' in server.log(),
              what='the warning')
    time.sleep(0.6)  # three more polls
    assert states() == {'2': 'END', '1': 'AVAILABLE'}
    _, reply = http_call(f'{server.url}/v1/models/vae:predict', body)
    np.testing.assert_allclose(reply['predictions'], want_1, atol=1e-5)
    os.rename(away, export_dir)
    _wait_for(lambda: 'is readable again' in server.log(),
              what='the base path back')
    log = server.log()
    assert log.count('cannot read its base path') == 1, log[-2000:]
    assert states() == {'2': 'END', '1': 'AVAILABLE'}
  finally:
    server.stop()


def _metric(url, name):
  with urllib.request.urlopen(f'{url}/metrics', timeout=30) as reply:
    text = reply.read().decode()
  match = re.search(rf'^{name}{{model_name="vae"}} (\S+)$', text, re.M)
  return float(match.group(1)) if match else 0.0


@pytest.mark.slow
def test_sigterm_during_a_request_lets_it_finish(tmp_path, mnist_5k):
  export_dir = str(tmp_path / 'vae')
  _export(export_dir, seed=0)
  server = Server(export_dir, str(tmp_path / 'server.log'),
                  '--max_batch=1000')
  try:
    # log_likelihood decodes 16 samples per image: seconds of work.
    x = inputs.eval_images(mnist_5k.test_images[:1000])
    body = json.dumps({'signature_name': 'log_likelihood',
                       'instances': x.tolist()}).encode()
    started = _metric(server.url, 'request_preprocess_seconds_count')
    result = {}

    def send():
      try:
        result['reply'] = http_call(f'{server.url}/v1/models/vae:predict', body,
                                timeout=300)
      except Exception as e:  # pylint: disable=broad-except
        result['reply'] = (None, repr(e))

    thread = threading.Thread(target=send)
    thread.start()
    # KServe counts preprocess before predict runs: the request is in flight.
    _wait_for(lambda: _metric(server.url, 'request_preprocess_seconds_count')
              > started, what='request in flight', every=0.02)
    server.proc.send_signal(signal.SIGTERM)
    thread.join(300)
    status, reply = result['reply']
    assert status == 200, reply
    assert len(reply['predictions']) == 1000
    assert np.all(np.isfinite(reply['predictions']))
    assert server.proc.wait(120) == 0
    log = server.log()
    # uvicorn waited for the open connection: it was in flight at SIGTERM.
    assert 'Waiting for connections to close' in log, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]
    with pytest.raises(urllib.error.URLError):
      urllib.request.urlopen(f'{server.url}/v2/health/live', timeout=10)
  finally:
    server.stop()


# -- the program -------------------------------------------------------------


@pytest.mark.slow
def test_serve_cli_user_errors_are_one_line(tmp_path):
  port = f'--rest_api_port={free_port()}'
  for flags, message in (
      ([f'--export_dir={tmp_path}/missing', port], 'is not a directory'),
      ([f'--export_dir={tmp_path}', port], 'holds no version folder'),
      ([f'--export_dir={tmp_path}', port, '--max_batch=0'],
       'invalid flag --max_batch must be a positive integer, got 0'),
      ([f'--export_dir={tmp_path}', '--rest_api_port=8501',
        '--grpc_port=8501'], 'must differ from --rest_api_port'),
  ):
    r = subprocess.run([sys.executable, '-m', 'trainers.serve', *flags,
                        '--host=127.0.0.1'], cwd=REPO, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 1, (flags, r.stderr[-2000:])
    assert message in r.stderr, (flags, r.stderr[-2000:])
    assert 'Traceback' not in r.stderr


@pytest.mark.slow
def test_the_server_does_not_import_tfp():
  r = subprocess.run(
      [sys.executable, '-c',
       'import sys, trainers.serve, tfp_vae.serving.server; '
       'assert "tensorflow_probability" not in sys.modules, "tfp imported"'],
      cwd=REPO, capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]


# -- the client --------------------------------------------------------------


def _client(*args, timeout=300):
  return subprocess.run([sys.executable, CLIENT, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_client_end_to_end_json_and_png(served, tmp_path, mnist_5k):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  server, loaded, _ = served
  x = inputs.eval_images(mnist_5k.test_images[:4])
  # JSON on stdout: the server's reply.
  r = _client(f'--rest={server.url}', '--signature=encode',
              '--from_test_images=4')
  assert r.returncode == 0, r.stderr[-2000:]
  reply = json.loads(r.stdout)
  np.testing.assert_allclose(
      [row['code_mean'] for row in reply['predictions']],
      loaded.signatures['encode'](images=tf.constant(x))['code_mean'],
      rtol=1e-5, atol=1e-5)
  # PNGs: the test images and their reconstructions.
  out = tmp_path / 'png'
  r = _client(f'--rest={server.url}', '--signature=reconstruct',
              '--from_test_images=4', f'--output_dir={out}')
  assert r.returncode == 0, r.stderr[-2000:]
  want = loaded.signatures['reconstruct'](images=tf.constant(x))[
      'reconstructions'].numpy()
  for i in range(4):
    png = np.asarray(Image.open(out / f'reconstructions_{i:04d}.png'))
    assert png.shape == (28, 28) and png.dtype == np.uint8
    np.testing.assert_allclose(png, want[i, ..., 0] * 255, atol=1)
    np.testing.assert_array_equal(
        np.asarray(Image.open(out / f'input_images_{i:04d}.png')),
        mnist_5k.test_images[i, ..., 0])
  assert json.loads((out / 'reply.json').read_text())['predictions']
  assert str(out / 'reconstructions_0003.png') in r.stdout.splitlines()
  # gRPC, a version, PNGs of samples.
  out = tmp_path / 'grpc'
  r = _client(f'--grpc={server.grpc}', '--signature=sample',
              '--num_samples=3', '--seed=7', '--version=1',
              f'--output_dir={out}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert sorted(p.name for p in out.iterdir()) == [
      'images_0000.png', 'images_0001.png', 'images_0002.png', 'reply.json']
  assert json.loads((out / 'reply.json').read_text())['model_spec'][
      'version'] == 1


@pytest.mark.parametrize('transport', ['rest', 'grpc'])
@pytest.mark.slow
def test_client_prints_the_servers_error_in_one_line(served, transport):
  server, _, _ = served
  where = (f'--rest={server.url}' if transport == 'rest' else
           f'--grpc={server.grpc}')
  r = _client(where, '--signature=decode', '--latent_dim=5')
  assert r.returncode == 1
  lines = [l for l in r.stderr.splitlines() if l.startswith('error: ')]
  assert len(lines) == 1, r.stderr[-2000:]
  assert f'codes must have shape [batch, {LATENT}]' in lines[0]
  assert ('HTTP 400' if transport == 'rest' else 'INVALID_ARGUMENT') in (
      lines[0])
  assert 'Traceback' not in r.stderr


@pytest.mark.slow
def test_client_connection_and_timeout_errors(served):
  server, _, _ = served
  closed = free_port()
  r = _client(f'--rest=http://127.0.0.1:{closed}', '--signature=decode',
              f'--latent_dim={LATENT}')
  assert r.returncode == 1
  assert r.stderr.strip().startswith('error: cannot reach')
  assert 'Traceback' not in r.stderr
  # A deadline no reply can meet: 64 images' log-likelihoods in 10 ms.
  r = _client(f'--rest={server.url}', '--signature=log_likelihood',
              f'--from_test_images={MAX_BATCH}', '--timeout=0.01')
  assert r.returncode == 1
  assert 'within 0.01s (--timeout)' in r.stderr
  assert 'Traceback' not in r.stderr


@pytest.mark.slow
def test_client_speaks_kserve_v2_over_rest_and_grpc(served, tmp_path,
                                                     mnist_5k):
  server, loaded, _ = served
  x = inputs.eval_images(mnist_5k.test_images[:4])
  r = _client('--protocol=v2', f'--rest={server.url}', '--signature=encode',
              '--from_test_images=4')
  assert r.returncode == 0, r.stderr[-2000:]
  reply = json.loads(r.stdout)
  assert reply['model_name'] == 'vae' and reply['model_version'] == '1'
  (mean,) = [o for o in reply['outputs'] if o['name'] == 'code_mean']
  assert mean['shape'] == [4, LATENT] and mean['datatype'] == 'FP32'
  np.testing.assert_allclose(
      np.reshape(mean['data'], mean['shape']),
      loaded.signatures['encode'](images=tf.constant(x))['code_mean'],
      rtol=1e-5, atol=1e-5)
  out = tmp_path / 'v2'
  r = _client('--protocol=v2', f'--grpc={server.grpc}', '--signature=sample',
              '--num_samples=2', '--seed=7', f'--output_dir={out}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert sorted(p.name for p in out.iterdir()) == [
      'images_0000.png', 'images_0001.png', 'reply.json']
  want = loaded.signatures['sample'](num_samples=tf.constant(2, tf.int64),
                                     seed=tf.constant(7, tf.int64))
  got = json.loads((out / 'reply.json').read_text())
  np.testing.assert_allclose(got['outputs']['codes'], want['codes'],
                             atol=1e-5)
  for where, code in ((f'--rest={server.url}', 'HTTP 400'),
                      (f'--grpc={server.grpc}', 'INVALID_ARGUMENT')):
    r = _client('--protocol=v2', where, '--signature=decode',
                '--latent_dim=5')
    assert r.returncode == 1
    assert r.stderr.startswith('error: ') and code in r.stderr, r.stderr
    assert f'codes must have shape [batch, {LATENT}]' in r.stderr
