"""A model server for SavedModels: TF Serving's REST and gRPC APIs and
KServe's V2 protocol, in one Python process.

  python -m trainers.serve --export_dir=runs/export/vae
  python -m trainers.serve --model_config_file=models.config

Modules, one concept each:

  model_config    what to serve: models, version policies and labels,
                  from --export_dir or --model_config_file; ServingError
  servable        one loaded version: its signatures, run
  repository      the versions of each model: loaded, polled, looked up by
                  number or label
  codec           tensors <-> TF Serving's JSON; V2 datatypes (no server
                  needed)
  tf_examples     classify and regress bodies -> serialized tf.Examples
  tensor_protos   arrays <-> TensorProtos, as TF Serving's gRPC API
                  carries them
  status          TensorFlow's error codes -> HTTP statuses, gRPC codes
  tfserving       TF Serving's methods (predict, classify, regress,
                  multi-inference, metadata, status) on the repository
  tfserving_rest  TF Serving's REST routes and its monitoring page
  tfserving_grpc  TF Serving's PredictionService and ModelService
  v2              KServe's V2 protocol, REST and gRPC
  kserve_adapter  the one module that imports KServe
  monitoring      TF Serving's Prometheus metrics
  http            what the REST front ends share
  server          uvicorn + grpc.aio, signals, `serve`

This package never imports TensorFlow Probability; the SavedModels it
serves do not need it.  docs/serving.md is the reference.

May import: tfp_vae.internal, nn, family, config, data, runtime, model,
evaluation, training, experiment (today: internal and config only).
"""

# `serve`, `ExportDirModel` and `ServingError` load the server's modules
# (KServe, gRPC, uvicorn) on first use, so that `codec`, `model_config`,
# `servable` and `repository` can be imported without them.
_LAZY = {'serve': 'server', 'ExportDirModel': 'kserve_adapter',
         'ServingError': 'model_config'}


def __getattr__(name):
  if name in _LAZY:
    import importlib  # pylint: disable=g-import-not-at-top
    return getattr(importlib.import_module(f'{__name__}.{_LAZY[name]}'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
