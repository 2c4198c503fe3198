"""A small client for the exported VAE behind TF Serving or KServe.

Builds the documented requests and sends them over REST (JSON) or gRPC
(tensorflow-serving-api's PredictRequest):

  python deploy/serving/client.py --rest=http://localhost:8501 --model=vae \
      --signature=encode --images=batch.npy
  python deploy/serving/client.py --grpc=localhost:8500 --model=vae \
      --signature=sample --num_samples=4 --seed=0

`--images` is a .npy file of float32 [batch, 28, 28, 1] in [0, 1]; without it
the client sends one blank image.  The request builders are plain functions
so they can be used (and tested) without a server.
"""

import argparse
import json
import sys
import urllib.request
from typing import Any, Mapping

import numpy as np

SIGNATURES = ('encode', 'decode', 'reconstruct', 'sample', 'log_likelihood',
              'serving_default')


def rest_body(signature: str, inputs: Mapping[str, Any],
              row_format: bool = True) -> dict:
  """The JSON body of a TF Serving REST :predict request.

  Row format ("instances") fits signatures with one batched input
  (encode, decode, reconstruct, log_likelihood): one list entry per example.
  Columnar format ("inputs") fits everything, including `sample`, whose
  inputs are scalars.
  """
  values = {k: np.asarray(v).tolist() for k, v in inputs.items()}
  if row_format:
    if len(values) != 1:
      raise ValueError(f'row format needs exactly one input, got '
                       f'{sorted(values)}; use row_format=False')
    return {'signature_name': signature,
            'instances': next(iter(values.values()))}
  return {'signature_name': signature, 'inputs': values}


def rest_predict(server: str, model: str, body: dict,
                 timeout: float = 30.0) -> dict:
  """POSTs body to SERVER/v1/models/MODEL:predict; returns the JSON reply."""
  request = urllib.request.Request(
      f'{server.rstrip("/")}/v1/models/{model}:predict',
      data=json.dumps(body).encode(), method='POST',
      headers={'Content-Type': 'application/json'})
  with urllib.request.urlopen(request, timeout=timeout) as reply:
    return json.load(reply)


def predict_request(model: str, signature: str, inputs: Mapping[str, Any]):
  """A tensorflow_serving.apis.predict_pb2.PredictRequest."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model
  request.model_spec.signature_name = signature
  for name, value in inputs.items():
    array = np.asarray(value)
    dtype = np.int64 if array.dtype.kind in 'iu' else np.float32
    request.inputs[name].CopyFrom(tf.make_tensor_proto(array.astype(dtype)))
  return request


def grpc_predict(target: str, request, timeout: float = 30.0):
  """Sends a PredictRequest; returns {output name: numpy array}."""
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  with grpc.insecure_channel(target) as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    reply = stub.Predict(request, timeout=timeout)
  return {k: tf.make_ndarray(v) for k, v in reply.outputs.items()}


def inputs_for(args: argparse.Namespace) -> dict:
  if args.signature == 'sample':
    return {'num_samples': np.int64(args.num_samples),
            'seed': np.int64(args.seed)}
  if args.signature == 'decode':
    return {'codes': np.zeros((1, args.latent_dim), np.float32)}
  images = (np.load(args.images) if args.images else
            np.zeros((1, 28, 28, 1), np.float32))
  return {'images': images.astype(np.float32)}


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  where = parser.add_mutually_exclusive_group(required=True)
  where.add_argument('--rest', help='e.g. http://localhost:8501')
  where.add_argument('--grpc', help='e.g. localhost:8500')
  parser.add_argument('--model', default='vae')
  parser.add_argument('--signature', default='encode', choices=SIGNATURES)
  parser.add_argument('--images', help='.npy file [batch, H, W, C]')
  parser.add_argument('--num_samples', type=int, default=4)
  parser.add_argument('--seed', type=int, default=0)
  parser.add_argument('--latent_dim', type=int, default=2)
  args = parser.parse_args(argv)
  inputs = inputs_for(args)
  if args.rest:
    body = rest_body(args.signature, inputs,
                     row_format=args.signature != 'sample')
    reply = rest_predict(args.rest, args.model, body)
    print(json.dumps(reply)[:2000])
  else:
    outputs = grpc_predict(args.grpc, predict_request(
        args.model, args.signature, inputs))
    for name, value in outputs.items():
      print(name, value.shape, value.ravel()[:8])
  return 0


if __name__ == '__main__':
  sys.exit(main())
