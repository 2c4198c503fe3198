"""Serves an export directory over TF Serving's REST and gRPC APIs.

  python -m trainers.serve --export_dir=runs/export/vae

Every version folder is served (the newest by default), new ones written by
trainers.export are picked up while running, SIGTERM finishes the requests
in flight and exits.  See tfp_vae/serving.py and docs/serving.md.
"""

from absl import app
from absl import flags

from trainers import common

from tfp_vae import config as config_lib  # pylint: disable=g-bad-import-order
from tfp_vae import errors

_D = config_lib.ServeConfig()
common.define('string', 'export_dir', None,
              'The model base path: the folder holding the version '
              'folders 1/, 2/, ... (trainers.export --export_dir).')
common.define('string', 'model_name', None,
              'NAME in /v1/models/NAME (default: export_dir\'s name, '
              'as in its models.config).')
common.define('string', 'host', _D.host,
              'Address to listen on (127.0.0.1: this machine only).')
common.define('integer', 'rest_api_port', _D.rest_api_port,
              'Port of the REST API (TF Serving\'s default).')
common.define('integer', 'grpc_port', _D.grpc_port,
              'Port of TF Serving\'s gRPC API (0: no gRPC).')
common.define('integer', 'max_batch', _D.max_batch,
              'Largest batch a request may carry: instances, an '
              'input\'s leading dimension, num_samples.')
common.define('integer', 'max_request_bytes', _D.max_request_bytes,
              'Largest REST request body (HTTP 413 above it) or gRPC '
              'message.')
common.define('float', 'poll_seconds', _D.poll_seconds,
              'Look for new and removed versions this often (TF '
              'Serving\'s --file_system_poll_wait_seconds; 0: never).')
common.define('integer', 'max_versions', _D.max_versions,
              'Serve only the newest N versions (0: all).')
common.define('float', 'grace_seconds', _D.grace_seconds,
              'After SIGTERM, how long requests in flight may take.')
flags.mark_flag_as_required('export_dir')
FLAGS = flags.FLAGS


def serve_from_flags() -> None:
  """Validates the flags and serves until SIGTERM.

  Raises:
    ConfigError: a flag is invalid.
    ServingError: the export directory cannot be served.
    TfpVaeError: the server's packages are not installed.
  """
  config = config_lib.ServeConfig(
      **{name: FLAGS[name].value for name in (
          'export_dir', 'model_name', 'host', 'rest_api_port', 'grpc_port',
          'max_batch', 'max_request_bytes', 'poll_seconds', 'max_versions',
          'grace_seconds')}).validate()
  common.import_tensorflow()
  try:
    from tfp_vae import serving  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.TfpVaeError(
        f'the model server needs KServe and tensorflow-serving-api ({e}): '
        "pip install 'tfp-vae[serving]'") from e
  serving.serve(config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  common.exit_on_user_error(serve_from_flags)


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
