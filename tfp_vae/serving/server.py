"""The server: the REST front ends on uvicorn, the gRPC services on one
grpc.aio server, the repository's poller, and SIGTERM.

One process, one event loop: uvicorn serves the Starlette app (TF
Serving's REST API, KServe's V2 REST API, /metrics), grpc.aio serves TF
Serving's PredictionService and ModelService and V2's
GRPCInferenceService on one port.  Signatures run in the loop's thread
pool, so probes and metrics are answered while they compute.  SIGTERM or
SIGINT stops both from accepting, lets the requests in flight finish
(up to --grace_seconds), and returns.
"""

import asyncio
import logging as std_logging
import signal
from typing import Optional

from absl import logging
import grpc
import prometheus_client
from starlette import applications
from starlette import exceptions as starlette_exceptions
from starlette import requests
from starlette import responses
from starlette import routing
import uvicorn

from tfp_vae.config import serve_settings
from tfp_vae.serving import http
from tfp_vae.serving import kserve_adapter
from tfp_vae.serving import monitoring
from tfp_vae.serving import model_config
from tfp_vae.serving import repository
from tfp_vae.serving import tfserving_grpc
from tfp_vae.serving import tfserving_rest
from tfp_vae.serving import v2

DEFAULT_MONITORING_PATH = '/monitoring/prometheus/metrics'


def model_configs(config: serve_settings.ServeConfig
                  ) -> list[model_config.ModelConfig]:
  """The models `config` serves: --model_config_file's, or one at
  --export_dir (the latest --max_versions, 0: all).

  Raises:
    ServingError: a bad --model_config_file.
  """
  if config.model_config_file:
    return model_config.read_model_config_file(config.model_config_file)
  policy = (model_config.VersionPolicy('latest', config.max_versions)
            if config.max_versions else model_config.VersionPolicy('all'))
  return [model_config.ModelConfig(config.resolved_model_name(),
                                   config.export_dir, policy)]


def monitoring_path(config: serve_settings.ServeConfig) -> Optional[str]:
  """Where TF Serving's Prometheus page goes: --monitoring_config_file's
  prometheus_config (None when it is disabled there), else the default.

  Raises:
    ServingError: the file does not parse.
  """
  if not config.monitoring_config_file:
    return DEFAULT_MONITORING_PATH
  # pylint: disable=g-import-not-at-top
  from google.protobuf import text_format
  from tensorflow_serving.config import monitoring_config_pb2
  # pylint: enable=g-import-not-at-top
  parsed = monitoring_config_pb2.MonitoringConfig()
  try:
    with open(config.monitoring_config_file) as f:
      text_format.Parse(f.read(), parsed)
  except (OSError, text_format.ParseError) as e:
    raise model_config.ServingError(
        f'--monitoring_config_file={config.monitoring_config_file}: {e}'
    ) from None
  if not parsed.prometheus_config.enable:
    return None
  return parsed.prometheus_config.path or DEFAULT_MONITORING_PATH


def build_app(state: http.ServerState, max_request_bytes: int):
  """The ASGI app: TF Serving's and V2's REST routes, /metrics (KServe's
  and the process's Prometheus metrics), the body limit."""

  async def metrics(request: requests.Request) -> responses.Response:
    del request
    return responses.Response(
        prometheus_client.generate_latest(prometheus_client.REGISTRY),
        media_type=prometheus_client.CONTENT_TYPE_LATEST)

  async def not_found(request: requests.Request, exc) -> responses.Response:
    return http.json_response({'error': f'{exc.detail}: {request.method} '
                                        f'{request.url.path}'},
                              exc.status_code)

  async def alive(request: requests.Request) -> responses.Response:
    del request  # KServe's root route, which its V1 clients probe
    return http.json_response({'status': 'alive'})

  routes = tfserving_rest.routes(state) + v2.routes(state) + [
      routing.Route('/metrics', metrics, methods=['GET']),
      routing.Route('/', alive, methods=['GET'])]
  if state.monitoring_path is None:
    routes = [r for r in routes if getattr(r, 'path', '') !=
              DEFAULT_MONITORING_PATH]
  app = applications.Starlette(routes=routes, exception_handlers={
      starlette_exceptions.HTTPException: not_found})
  return http.BodyLimit(app, max_request_bytes)


class _RestServer(uvicorn.Server):
  """uvicorn, telling the rest of the server when a signal asks it to
  stop."""

  def __init__(self, config: uvicorn.Config, stopping: asyncio.Event):
    super().__init__(config)
    self._stopping = stopping

  def handle_exit(self, sig, frame) -> None:
    super().handle_exit(sig, frame)
    self._stopping.set()


async def _serve(app, state: http.ServerState,
                 config: serve_settings.ServeConfig) -> None:
  stopping = asyncio.Event()
  rest = _RestServer(uvicorn.Config(
      app, host=config.host, port=config.rest_api_port, log_config=None,
      timeout_graceful_shutdown=int(config.grace_seconds) or 1,
      access_log=False, lifespan='off'), stopping)
  grpc_server = None
  if config.grpc_port:
    grpc_server = grpc.aio.server(options=[
        ('grpc.max_receive_message_length', config.max_request_bytes),
        ('grpc.max_send_message_length', -1)])
    tfserving_grpc.add_to_server(grpc_server, state)
    v2.add_to_server(grpc_server, state)
    where = f'{config.host}:{config.grpc_port}'
    if not grpc_server.add_insecure_port(where):
      raise model_config.ServingError(f'gRPC cannot listen on {where} '
                                      '(--host, --grpc_port)')
    await grpc_server.start()

  async def stop_grpc():
    await stopping.wait()
    if grpc_server is not None:
      await grpc_server.stop(config.grace_seconds)

  # After uvicorn restores the handlers it replaced, it raises the signal
  # it caught again: these take it instead of ending the process.
  loop = asyncio.get_running_loop()
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: loop.call_soon_threadsafe(stopping.set))
  await asyncio.gather(rest.serve(), stop_grpc())


def serve(config: serve_settings.ServeConfig,
          model_class: Optional[type] = None) -> None:
  """Serves what `config` names until SIGTERM or SIGINT.

  Args:
    config: validated serving settings.
    model_class: kserve_adapter.ExportDirModel (default) or a subclass
      (Python pre- and post-processing).

  Raises:
    ServingError: nothing can be served (see Repository.load,
      read_model_config_file).
  """
  metrics = monitoring.Metrics()
  repo = repository.Repository(model_configs(config),
                               on_load=metrics.record_load)
  path = monitoring_path(config)
  repo.load()
  state = http.ServerState(repo, {}, config.max_batch, metrics, path)
  model_class = model_class or kserve_adapter.ExportDirModel
  predict = tfserving_rest.predict_v1(config.max_batch)
  infer = v2.infer_v2(config.max_batch)
  state.models = {name: model_class(name, versions, predict, infer)
                  for name, versions in repo.models.items()}
  for model in state.models.values():
    model.load()
  if config.poll_seconds > 0:
    repo.start_polling(config.poll_seconds)
  std_logging.getLogger('uvicorn.access').setLevel(std_logging.WARNING)
  for name, versions in repo.models.items():
    logging.info('serving %s: versions %s of %s (%s)', name,
                 versions.loaded(), versions.base_path,
                 versions.config.policy.describe())
  grpc_where = (f', gRPC {config.host}:{config.grpc_port}'
                if config.grpc_port else '')
  logging.info('REST http://%s:%d%s; KServe %s', config.host,
               config.rest_api_port, grpc_where,
               kserve_adapter.kserve_version())
  try:
    asyncio.run(_serve(build_app(state, config.max_request_bytes), state,
                       config))
  finally:
    repo.stop()
