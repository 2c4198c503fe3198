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
and exit with code 1.  The requests are built and sent by
deploy/serving/protocols.py, plain functions that can be used (and tested)
without a server; this file is the command line over them.
"""

import argparse
import json
import os
import sys
from typing import Mapping, Optional

import numpy as np

import protocols


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
    raise protocols.ClientError(
        f'--from_test_images needs tfp-vae installed ({e}); or pass '
        '--images=FILE.npy') from None
  try:
    images = loaders.load(dataset, data_dir=data_dir,
                          download=False).test_images
  except errors.TfpVaeError as e:
    raise protocols.ClientError(str(e)) from None
  if count > len(images):
    raise protocols.ClientError(
        f'--from_test_images={count} is more than the {len(images)} test '
        f'images of {dataset}')
  return inputs.eval_images(images[:count])


def _load_npy(path: str, flag: str) -> np.ndarray:
  try:
    return np.load(path)
  except (OSError, ValueError) as e:
    raise protocols.ClientError(f'cannot read --{flag}={path}: {e}'
                                ) from None


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
    protocols.ClientError: see protocols.rest_predict and grpc_predict,
      inputs_for.
  """
  inputs = inputs_for(args)
  if args.protocol == 'v2' and args.rest:
    reply = protocols.post_json(
        protocols.v2_url(args.rest, args.model, args.version),
        protocols.v2_body(args.signature, inputs), args.timeout)
    outputs = protocols.v2_outputs(reply)
  elif args.protocol == 'v2':
    spec, outputs = protocols.grpc_v2_infer(
        args.grpc, args.model, args.signature, inputs, args.version,
        args.timeout)
    reply = {**spec, 'outputs': {k: v.tolist() for k, v in outputs.items()}}
  elif args.rest:
    row_format = (args.format == 'instances' if args.format else
                  args.signature != 'sample')
    try:
      body = protocols.rest_body(args.signature, inputs,
                                 row_format=row_format)
    except ValueError:
      raise protocols.ClientError(
          f'--format=instances sends one input per row, but '
          f'{args.signature} takes {sorted(inputs)}: use --format=inputs'
          ) from None
    reply = protocols.rest_predict(args.rest, args.model, body,
                                   args.timeout, args.version)
    outputs = protocols.outputs_of(reply, args.signature)
  else:
    try:
      request = protocols.predict_request(args.model, args.signature,
                                          inputs, args.version)
    except ImportError as e:
      raise protocols.ClientError(
          f'--grpc needs tensorflow and tensorflow-serving-api ({e}): pip '
          'install tensorflow-serving-api') from None
    spec, outputs = protocols.grpc_predict(args.grpc, request, args.timeout)
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
  parser.add_argument('--signature', default='encode',
                      choices=protocols.SIGNATURES)
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
  parser.add_argument('--timeout', type=float,
                      default=protocols.DEFAULT_TIMEOUT,
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
  except protocols.ClientError as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  for line in lines:
    print(line)
  return 0


if __name__ == '__main__':
  sys.exit(main())
