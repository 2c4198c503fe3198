"""Serves SavedModels over TF Serving's REST and gRPC APIs and KServe's V2
protocol.

  python -m trainers.serve --export_dir=runs/export/vae
  python -m trainers.serve --model_config_file=models.config

--export_dir serves one model's latest version (--max_versions), new ones
written by trainers.export are picked up while running; --model_config_file
is TF Serving's, for several models with their own version policies and
labels.  SIGTERM finishes the requests in flight and exits.  See
docs/serving.md.
"""

from trainers import common

from tfp_vae.internal import errors  # pylint: disable=g-bad-import-order

common.define_serve_flags()


def serve_from_flags() -> None:
  """Validates the flags and serves until SIGTERM.

  Raises:
    ConfigError: a flag is invalid.
    ServingError: what the flags name cannot be served.
    TfpVaeError: the server's packages are not installed.
  """
  config = common.serve_config_from_flags().validate()
  common.import_tensorflow()
  try:
    from tfp_vae.serving import server  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.TfpVaeError(
        f'the model server needs KServe and tensorflow-serving-api ({e}): '
        "pip install 'tfp-vae[serving]'") from e
  server.serve(config)


def main(argv):  # pylint: disable=unused-argument
  common.exit_on_user_error(serve_from_flags)


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
