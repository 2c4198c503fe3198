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

from absl import app
from absl import flags

from trainers import common

from tfp_vae import config as config_lib  # pylint: disable=g-bad-import-order
from tfp_vae import errors

_D = config_lib.ServeConfig()
common.define('string', 'export_dir', None,
              'The model base path: the folder holding the version '
              'folders 1/, 2/, ... (trainers.export --export_dir; TF '
              'Serving\'s --model_base_path).')
common.define('string', 'model_config_file', None,
              'Instead of --export_dir: TF Serving\'s model config file '
              '(a text ModelServerConfig with a model_config_list), for '
              'several models, version policies and labels.')
common.define('string', 'model_name', None,
              'NAME in /v1/models/NAME for --export_dir (default: '
              'export_dir\'s name, as in its models.config).')
common.define('string', 'host', _D.host,
              'Address to listen on (127.0.0.1: this machine only).')
common.define('integer', 'rest_api_port', _D.rest_api_port,
              'Port of the REST APIs (TF Serving\'s default).')
common.define('integer', 'grpc_port', _D.grpc_port,
              'Port of the gRPC services: TF Serving\'s and KServe V2\'s '
              '(0: no gRPC).')
common.define('integer', 'max_batch', _D.max_batch,
              'Largest batch a request may carry: instances, examples, an '
              'input\'s leading dimension, num_samples.')
common.define('integer', 'max_request_bytes', _D.max_request_bytes,
              'Largest REST request body (HTTP 413 above it) or gRPC '
              'message.')
common.define('float', 'poll_seconds', _D.poll_seconds,
              'Look for new and removed versions this often (TF '
              'Serving\'s --file_system_poll_wait_seconds; 0: never).')
common.define('integer', 'max_versions', _D.max_versions,
              '--export_dir\'s version policy: serve the newest N versions '
              '(TF Serving\'s default policy serves 1); 0: all.')
common.define('float', 'grace_seconds', _D.grace_seconds,
              'After SIGTERM, how long requests in flight may take.')
common.define('string', 'monitoring_config_file', None,
              'TF Serving\'s monitoring config (a text MonitoringConfig): '
              'its prometheus_config moves or turns off the Prometheus '
              'page (default /monitoring/prometheus/metrics).')
FLAGS = flags.FLAGS
_FIELDS = ('export_dir', 'model_config_file', 'model_name', 'host',
           'rest_api_port', 'grpc_port', 'max_batch', 'max_request_bytes',
           'poll_seconds', 'max_versions', 'grace_seconds',
           'monitoring_config_file')


def serve_from_flags() -> None:
  """Validates the flags and serves until SIGTERM.

  Raises:
    ConfigError: a flag is invalid.
    ServingError: what the flags name cannot be served.
    TfpVaeError: the server's packages are not installed.
  """
  values = {name: FLAGS[name].value for name in _FIELDS}
  for name in ('export_dir', 'model_config_file', 'monitoring_config_file'):
    values[name] = values[name] or ''
  config = config_lib.ServeConfig(**values).validate()
  common.import_tensorflow()
  try:
    from tfp_vae.serving import server  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise errors.TfpVaeError(
        f'the model server needs KServe and tensorflow-serving-api ({e}): '
        "pip install 'tfp-vae[serving]'") from e
  server.serve(config)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  common.exit_on_user_error(serve_from_flags)


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
