"""A small client for the exported VAE behind TF Serving, KServe or
`python -m trainers.serve`.

Builds the documented requests and sends them over REST (JSON) or gRPC,
in TF Serving's protocol (`--protocol=v1`, the default: :predict,
tensorflow-serving-api's PredictRequest) or KServe's V2 (`--protocol=v2`:
/v2/models/MODEL/infer, V2's ModelInferRequest):

  python deploy/serving/client.py --rest=http://localhost:8501 --model=vae \
      --signature=reconstruct --from_test_images=16 --output_dir=out
  python deploy/serving/client.py --grpc=localhost:8500 --model=vae \
      --signature=sample --num_samples=4 --seed=0 --output_dir=out
  python deploy/serving/client.py --protocol=v2 --rest=http://localhost:8501 \
      --signature=encode --from_test_images=4

Inputs: `--from_test_images=N` sends the first N test images of `--dataset`
(default mnist_5k, embedded in tfp-vae; needs tfp-vae installed),
`--images` a .npy file of float32 [batch, H, W, C] in [0, 1], otherwise one
blank image; `decode` sends `--codes` (.npy) or one zero code of
`--latent_dim`; `sample` sends `--num_samples` and `--seed`.

Output: the reply as JSON on stdout (REST: the server's reply; gRPC:
{"model_spec": ..., "outputs": {name: nested lists}}, V2 gRPC:
{"model_name", "model_version", "id", "outputs"}).  V2 names the signature
in the parameter signature_name (other V2 servers serve serving_default).  With `--output_dir`
the reply goes to DIR/reply.json, every image output (and image input) to
one PNG per image, DIR/<name>_<index>.png, and the paths written are
printed.

Errors (an HTTP or gRPC error, no server, no reply within `--timeout`, a bad
local input) print one line, `error: ...` with the server's own message,
and exit with code 1.  The request builders are plain functions so they can
be used (and tested) without a server.
"""

import argparse
import json
import os
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


def write_pngs(arrays: Mapping[str, np.ndarray], output_dir: str
               ) -> list[str]:
  """Every image-shaped array ([N, H, W, 1 or 3] in [0, 1]) as one PNG per
  image, OUTPUT_DIR/<name>_<index>.png; returns the paths."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  paths = []
  for name, array in sorted(arrays.items()):
    array = np.asarray(array)
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
      continue
    pixels = np.round(np.clip(array, 0.0, 1.0) * 255).astype(np.uint8)
    for i, image in enumerate(pixels):
      path = os.path.join(output_dir, f'{name}_{i:04d}.png')
      Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
          path)
      paths.append(path)
  return paths


def test_images(count: int, dataset: str = 'mnist_5k',
                data_dir: Optional[str] = None) -> np.ndarray:
  """The first `count` test images of `dataset`, float32 in [0, 1], as the
  trainers evaluate them (tfp_vae.data.loaders, tfp_vae.data.inputs)."""
  try:
    from tfp_vae.data import inputs  # pylint: disable=g-import-not-at-top
    from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
    from tfp_vae.internal import errors  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ClientError(f'--from_test_images needs tfp-vae installed ({e}); '
                      'or pass --images=FILE.npy') from None
  try:
    images = loaders.load(dataset, data_dir=data_dir,
                          download=False).test_images
  except errors.TfpVaeError as e:
    raise ClientError(str(e)) from None
  if count > len(images):
    raise ClientError(f'--from_test_images={count} is more than the '
                      f'{len(images)} test images of {dataset}')
  return inputs.eval_images(images[:count])


def _load_npy(path: str, flag: str) -> np.ndarray:
  try:
    return np.load(path)
  except (OSError, ValueError) as e:
    raise ClientError(f'cannot read --{flag}={path}: {e}') from None


def inputs_for(args: argparse.Namespace) -> dict:
  """The signature's inputs from the flags."""
  if args.signature == 'sample':
    return {'num_samples': np.int64(args.num_samples),
            'seed': np.int64(args.seed)}
  if args.signature == 'decode':
    codes = (_load_npy(args.codes, 'codes') if args.codes else
             np.zeros((1, args.latent_dim), np.float32))
    return {'codes': codes.astype(np.float32)}
  if args.from_test_images:
    images = test_images(args.from_test_images, args.dataset, args.data_dir)
  elif args.images:
    images = _load_npy(args.images, 'images')
  else:
    images = np.zeros((1, 28, 28, 1), np.float32)
  return {'images': images.astype(np.float32)}


def _as_json(value):
  return value.tolist() if isinstance(value, np.ndarray) else value


def run(args: argparse.Namespace) -> list[str]:
  """Sends the request the flags describe; returns the lines to print.

  Raises:
    ClientError: see rest_predict, grpc_predict, inputs_for.
  """
  inputs = inputs_for(args)
  if args.protocol == 'v2' and args.rest:
    reply = post_json(v2_url(args.rest, args.model, args.version),
                      v2_body(args.signature, inputs), args.timeout)
    outputs = v2_outputs(reply)
  elif args.protocol == 'v2':
    spec, outputs = grpc_v2_infer(args.grpc, args.model, args.signature,
                                  inputs, args.version, args.timeout)
    reply = {**spec, 'outputs': {k: v.tolist() for k, v in outputs.items()}}
  elif args.rest:
    row_format = (args.format == 'instances' if args.format else
                  args.signature != 'sample')
    try:
      body = rest_body(args.signature, inputs, row_format=row_format)
    except ValueError:
      raise ClientError(f'--format=instances sends one input per row, but '
                        f'{args.signature} takes {sorted(inputs)}: use '
                        '--format=inputs') from None
    reply = rest_predict(args.rest, args.model, body, args.timeout,
                         args.version)
    outputs = outputs_of(reply, args.signature)
  else:
    try:
      request = predict_request(args.model, args.signature, inputs,
                                args.version)
    except ImportError as e:
      raise ClientError(f'--grpc needs tensorflow and tensorflow-serving-api '
                        f'({e}): pip install tensorflow-serving-api') from None
    spec, outputs = grpc_predict(args.grpc, request, args.timeout)
    reply = {'model_spec': {'name': spec.name,
                            'version': spec.version.value,
                            'signature_name': spec.signature_name},
             'outputs': {k: v.tolist() for k, v in outputs.items()}}
  text = json.dumps(reply, default=_as_json)
  if not args.output_dir:
    return [text]
  os.makedirs(args.output_dir, exist_ok=True)
  path = os.path.join(args.output_dir, 'reply.json')
  with open(path, 'w') as f:
    f.write(text + '\n')
  shown_inputs = {f'input_{k}': v for k, v in inputs.items()}
  return [path] + write_pngs({**outputs, **shown_inputs}, args.output_dir)


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument('--rest', help='e.g. http://localhost:8501')
  where.add_argument('--grpc', help='e.g. localhost:8500')
  parser.add_argument('--protocol', choices=('v1', 'v2'), default='v1',
                      help="v1: TF Serving's API (default); v2: KServe's V2 "
                      '(Open Inference Protocol) infer')
  parser.add_argument('--model', default='vae')
  parser.add_argument('--version', type=int,
                      help='a version number (default: the newest)')
  parser.add_argument('--signature', default='encode', choices=SIGNATURES)
  images = parser.add_mutually_exclusive_group()
  images.add_argument('--images', help='.npy file [batch, H, W, C] in [0, 1]')
  images.add_argument('--from_test_images', type=int, metavar='N',
                      help='send the first N test images of --dataset')
  parser.add_argument('--dataset', default='mnist_5k',
                      help='dataset of --from_test_images (as trained on)')
  parser.add_argument('--data_dir', help='TFDS data directory')
  parser.add_argument('--codes', help='decode: .npy file [batch, latent]')
  parser.add_argument('--latent_dim', type=int, default=2,
                      help='decode without --codes: one zero code this long')
  parser.add_argument('--num_samples', type=int, default=4)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--format', choices=('instances', 'inputs'),
                      help='REST body format (default: instances, inputs '
                      'for sample)')
  parser.add_argument('--output_dir',
                      help='write reply.json and PNGs here instead of '
                      'printing the reply')
  parser.add_argument('--timeout', type=float, default=DEFAULT_TIMEOUT,
                      help='seconds for the whole call (default 30)')
  args = parser.parse_args(argv)
  if args.from_test_images is not None and args.from_test_images < 1:
    parser.error(f'--from_test_images must be at least 1, got '
                 f'{args.from_test_images}')
  if not args.timeout > 0:
    parser.error(f'--timeout must be positive, got {args.timeout}')
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  try:
    lines = run(args)
  except ClientError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for line in lines:
    print(line)
  return 0


if __name__ == '__main__':
  sys.exit(main())
