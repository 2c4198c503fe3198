"""TF Serving's REST API (g3doc/api_rest.md), routed as its
http_rest_api_handler.cc does:

  GET  /v1/models/NAME[/versions/N|/labels/L]            model status
  GET  /v1/models/NAME[/versions/N|/labels/L]/metadata   signature_def map
  POST /v1/models/NAME[/versions/N|/labels/L]:predict    instances | inputs
  POST /v1/models/NAME[/versions/N|/labels/L]:classify   examples, context
  POST /v1/models/NAME[/versions/N|/labels/L]:regress    examples, context
  GET  /monitoring/prometheus/metrics                    TF Serving's metrics

Any other /v1/ path or method is TF Serving's 400 "Malformed request".
:predict goes through the model's `kserve.Model` (preprocess, predict,
postprocess); the rest is answered from the repository directly.
"""

import asyncio
import re
import time
from typing import Any

from starlette import requests
from starlette import responses
from starlette import routing

from tfp_vae.serving import http
from tfp_vae.serving import kserve_adapter
from tfp_vae.serving import status
from tfp_vae.serving import tfserving

# http_rest_api_util.cc's regular expressions; a version is any segment
# here, so that a non-number gets "Failed to convert version".
_POST = re.compile(r'(?i)/v1/models/([^/:]+)(?:(?:/versions/([^/:]+))|'
                   r'(?:/labels/([^/:]+)))?:(classify|regress|predict)')
_GET = re.compile(r'(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/([^/:]+))|'
                  r'(?:/labels/([^/:]+)))?(?:/(metadata))?')


def parse_version(text: str) -> int:
  """/versions/N's N.

  Raises:
    Status: INVALID_ARGUMENT, TF Serving's message when N is not a number.
  """
  if not re.fullmatch(r'\d+', text) or int(text) >= 2**63:
    raise status.invalid_argument(
        f'Failed to convert version: {text} to numeric.')
  return int(text)


def _route(name: str, version: str, label: str) -> tfserving.Route:
  return tfserving.Route(name, parse_version(version) if version else None,
                         label or None)


def _run(fn, *args):
  return asyncio.get_running_loop().run_in_executor(None, fn, *args)


def routes(state: http.ServerState) -> list[routing.BaseRoute]:
  """The Starlette routes of TF Serving's REST API over `state`."""

  async def v1(request: requests.Request) -> responses.Response:
    start = time.perf_counter()
    path = request.scope['path']
    model, api = '', 'unknown'
    try:
      if request.method == 'POST':
        match = _POST.fullmatch(path)
        if not match:
          raise status.invalid_argument(
              f'Malformed request: POST {path}')
        model, version, label, api = match.groups()
        route = _route(model, version, label)
        body = http.loads(await http.read_body(request))
        if api == 'predict':
          reply = await kserve_adapter.call_model(
              state.model(model), body,
              {**request.headers, kserve_adapter.REQUEST_KEY: route})
        else:
          serv = tfserving.servable(state.repository, route)
          reply = await _run(tfserving.examples_json, serv, body, api,
                             state.max_batch)
      elif request.method == 'GET':
        match = _GET.fullmatch(path)
        if not match:
          raise status.invalid_argument(f'Malformed request: GET {path}')
        model, version, label, metadata = match.groups()
        if not model:
          raise status.invalid_argument('Missing model name in request.')
        route = _route(model, version, label)
        if metadata:
          api = 'GetModelMetadata'
          reply = tfserving.metadata_json(
              model, tfserving.servable(state.repository, route))
        else:
          api = 'GetModelStatus'
          reply = tfserving.status_json(state.repository.status(
              model, route.version, route.label))
      else:
        raise status.invalid_argument(
            f'Malformed request: {request.method} {path}')
    except Exception as e:  # pylint: disable=broad-except
      response, code = http.error_reply(request, e)
      state.metrics.record_request(model, api, 'REST', code, 0)
      return response
    state.metrics.record_request(model, api, 'REST', 'OK',
                                 (time.perf_counter() - start) * 1e6)
    return http.json_response(reply)

  async def prometheus(request: requests.Request) -> responses.Response:
    del request
    return responses.PlainTextResponse(state.metrics.page())

  return [
      routing.Route('/v1/{rest:path}', v1,
                    methods=['GET', 'POST', 'PUT', 'DELETE', 'PATCH']),
      routing.Route(state.monitoring_path, prometheus, methods=['GET']),
  ]


def predict_v1(max_batch: int):
  """ExportDirModel's :predict work: (versions, body, route) -> reply."""

  def work(versions, body: Any, route: tfserving.Route) -> dict:
    return tfserving.predict_json(versions, body, route, max_batch)

  return work
