"""TF Serving's REST and gRPC APIs over an export directory, on KServe.

  python -m trainers.serve --export_dir=runs/export/vae

serves every version folder of the export directory (`tfp_vae.layout`) the
way TF Serving does, from one Python process built on KServe's model server
(`kserve.ModelServer`: FastAPI on uvicorn, its V1 protocol, health
endpoints, Prometheus metrics, SIGTERM handling) plus TF Serving's gRPC
services on grpcio:

  GET  /v1/models/NAME[/versions/N]            version status
  GET  /v1/models/NAME[/versions/N]/metadata   signature_def map
  POST /v1/models/NAME[/versions/N]:predict    {"signature_name": ...,
                                                "instances" | "inputs": ...}
  GET  /v2/health/live, /v2/health/ready,      liveness and readiness
       /v2/models/NAME/ready                   (KServe's, for probes)
  gRPC tensorflow.serving.PredictionService/{Predict,GetModelMetadata},
       tensorflow.serving.ModelService/GetModelStatus

`:predict` without a version is KServe's own V1 route, which calls
`ExportDirModel` (a `kserve.Model`: subclass it and override `preprocess` /
`postprocess` for Python pre- or post-processing); the routes KServe has no
equivalent for (versions, metadata, TF Serving's status reply) are added to
KServe's FastAPI app ahead of its own.

Versions are loaded with `tf.saved_model.load` (this module never imports
TensorFlow Probability; the SavedModels do not need it).  A poller looks at
the directory every `poll_seconds`, loads new versions and drops removed
ones, like TF Serving's file-system polling; requests without a version go
to the newest.  A version that fails to load is retried on the next polls,
then reported with its error (state END).

Requests are bounded: the body (or gRPC message) by `max_request_bytes`
(HTTP 413 past it), the batch by `max_batch` (instances, the leading
dimension of any input, `num_samples`).  A signature's own input checks
fail with InvalidArgumentError; that becomes HTTP 400 (gRPC
INVALID_ARGUMENT) with the check's message, e.g.
`{"error": "images must have shape [batch, 28, 28, 1] (...); got shape
[2 28 28]"}`.  README.md (Serving) lists where this differs from TF
Serving.
"""

import asyncio
import contextvars
import dataclasses
import gc
import logging as std_logging
import os
import re
import sys
import threading
import warnings
from typing import Any, Mapping, Optional

from absl import logging
import numpy as np
import orjson
import tensorflow as tf

from tfp_vae import config as config_lib
from tfp_vae import errors
from tfp_vae import layout

# kserve.model_server parses sys.argv with its own argparse flags when it is
# imported (and fails on an ambiguous prefix of one of them); the server's
# configuration is passed explicitly instead, so hide this program's flags.
_argv, sys.argv = sys.argv, sys.argv[:1]
try:
  # pylint: disable=g-import-not-at-top
  import fastapi
  from google.protobuf import json_format
  import grpc
  import kserve
  from kserve import errors as kserve_errors
  from kserve import model_server as kserve_model_server
  from kserve.constants import constants as kserve_constants
  from kserve.protocol import dataplane as kserve_dataplane
  from kserve.protocol.grpc import server as kserve_grpc
  from kserve.protocol.rest import server as kserve_rest
  from kserve.protocol.rest import v1_endpoints
  from starlette import exceptions as starlette_exceptions
  from tensorflow.core.protobuf import error_codes_pb2
  from tensorflow.core.protobuf import saved_model_pb2
  from tensorflow_serving.apis import get_model_metadata_pb2
  from tensorflow_serving.apis import get_model_status_pb2
  from tensorflow_serving.apis import model_service_pb2_grpc
  from tensorflow_serving.apis import predict_pb2
  from tensorflow_serving.apis import prediction_service_pb2_grpc
  # pylint: enable=g-import-not-at-top
finally:
  sys.argv = _argv

DEFAULT_SIGNATURE = 'serving_default'
# TF Serving retries a failed load (--max_num_load_retries, default 5).
LOAD_ATTEMPTS = 5
# A body over the limit is read and dropped up to this size before the 413
# (see _BodyLimit).
_DRAIN_BYTES = 2**30
# The version a request asked for (/versions/N); None: the newest.  Set by
# the versioned route around KServe's V1 handler, read by predict.
_REQUESTED_VERSION: contextvars.ContextVar[Optional[int]] = (
    contextvars.ContextVar('requested_version', default=None))


class ServingError(errors.TfpVaeError):
  """The export directory cannot be served (missing, empty, unloadable)."""


class BadRequest(kserve_errors.InvalidInput):
  """A request the server refuses: HTTP 400, gRPC INVALID_ARGUMENT."""


class NotFound(kserve_errors.ModelNotFound):
  """No such model or version: HTTP 404, gRPC NOT_FOUND."""

  def __init__(self, message: str):
    super().__init__()
    self.reason = message


class RequestTooLarge(Exception):
  """A request body above `max_request_bytes`: HTTP 413."""


# -- signatures --------------------------------------------------------------


def signature_error_message(error: tf.errors.OpError) -> str:
  """The signature's own message in a TensorFlow error, on one line.

  The in-graph checks (`tfp_vae.export`) fail with `tf.debugging.Assert`,
  whose error reads "Graph execution error: ... assertion failed:
  [<message>] [<data>] ... [[{{node ...}}]]"; this returns "<message>
  [<data>] ...".  Other errors give their first informative line.

  Args:
    error: raised by calling a signature.

  Returns:
    One line, e.g. "images must have values in [0, 1]; got min and max [2]
    [2]".
  """
  lines = [line.strip() for line in error.message.splitlines()]
  for line in lines:
    if line.startswith('assertion failed: '):
      # [message] [data] [data]: the message may hold brackets of its own,
      # the data items (shapes, scalars) do not.
      match = re.fullmatch(r'\[(.*?)\]((?: \[[^\[\]]*\])*)',
                           line[len('assertion failed: '):])
      if match:
        return match.group(1) + match.group(2)
  useful = [line for line in lines if line and not line.startswith((
      'Graph execution error', 'Detected at node', '<stack traces',
      '[[{{node'))]
  first = useful[0] if useful else type(error).__name__
  return re.sub(r'\s*\[Op:[^\]]*\]$', '', first)


def _preview(value: Any, limit: int = 60) -> str:
  text = repr(value)
  return text if len(text) <= limit else text[:limit] + '...'


def to_array(name: str, value: Any, dtype: tf.DType) -> np.ndarray:
  """A request's value for input `name` as a NumPy array of `dtype`.

  Args:
    name: the input's name, for messages.
    value: nested lists of numbers (JSON) or an array (gRPC).
    dtype: the signature's dtype for the input.

  Returns:
    The array, converted to `dtype`.

  Raises:
    BadRequest: the value is ragged, not numeric, fractional or out of range
      for an integer dtype.
  """
  try:
    array = np.asarray(value)
  except (ValueError, TypeError) as e:
    raise BadRequest(f'input {name!r} is not a rectangular array of numbers '
                     f'({e})') from None
  if array.dtype.kind not in 'biuf':
    raise BadRequest(f'input {name!r} must hold numbers ({dtype.name}); got '
                     f'{_preview(value)}')
  if dtype.is_integer and array.size:
    if array.dtype.kind == 'f' and not np.all(np.isfinite(array) & (
        array == np.round(array))):
      raise BadRequest(f'input {name!r} must hold integers ({dtype.name}); '
                       f'got {_preview(value)}')
    limits = np.iinfo(dtype.as_numpy_dtype)
    if array.min() < limits.min or array.max() > limits.max:
      raise BadRequest(f'input {name!r} is out of range for {dtype.name}; '
                       f'got {_preview(value)}')
  return array.astype(dtype.as_numpy_dtype, copy=False)


def check_batch(arrays: Mapping[str, np.ndarray], max_batch: int) -> None:
  """Refuses a batch above `max_batch`: any input's leading dimension, or
  the scalar `num_samples` of `sample`.

  Raises:
    BadRequest: naming the input, its batch and the limit.
  """
  for name, array in arrays.items():
    if array.ndim and array.shape[0] > max_batch:
      raise BadRequest(f'input {name!r} has a batch of {array.shape[0]}, '
                       f'above this server\'s limit of {max_batch} '
                       f'(--max_batch)')
  samples = arrays.get('num_samples')
  if samples is not None and samples.ndim == 0 and samples > max_batch:
    raise BadRequest(f'num_samples {int(samples)} is above this server\'s '
                     f'limit of {max_batch} (--max_batch)')


def _signature_defs(path: str) -> dict[str, Any]:
  """The serving MetaGraph's SignatureDefs, as `saved_model_cli show` and
  TF Serving's metadata read them from saved_model.pb."""
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(path, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  graphs = [g for g in saved_model.meta_graphs
            if 'serve' in g.meta_info_def.tags] or saved_model.meta_graphs
  return dict(graphs[0].signature_def)


class Servable:
  """One loaded version: its signatures, callable with checked inputs.

  Attributes:
    version: the version folder's number.
    path: the version folder.
    signature_defs: {name: SignatureDef proto} of saved_model.pb.
  """

  def __init__(self, version: int, path: str):
    """Loads the SavedModel in `path` (raises whatever loading raises)."""
    self.version = version
    self.path = path
    self._module = tf.saved_model.load(path)
    self._signatures = dict(self._module.signatures)
    self.signature_defs = _signature_defs(path)

  def input_specs(self, signature_name: str) -> dict[str, tf.TensorSpec]:
    """{input name: TensorSpec} of a signature.

    Raises:
      BadRequest: no such signature (TF Serving's message, plus the list).
    """
    function = self._signatures.get(signature_name)
    if function is None:
      raise BadRequest(f'Serving signature name: "{signature_name}" not '
                       f'found in signature def (this model has: '
                       f'{", ".join(sorted(self._signatures))})')
    return function.structured_input_signature[1]

  def run(self, signature_name: str, inputs: Mapping[str, Any],
          max_batch: int) -> dict[str, np.ndarray]:
    """Calls a signature on request values.

    Args:
      signature_name: e.g. 'encode'.
      inputs: {input name: nested lists or array}, every input of the
        signature and no other.
      max_batch: see `check_batch`.

    Returns:
      {output name: array}.

    Raises:
      BadRequest: an unknown signature, missing or unknown inputs, values
        that are not arrays of numbers, a batch above `max_batch`, or the
        signature's own checks failing (its message).
    """
    specs = self.input_specs(signature_name)
    missing = sorted(set(specs) - set(inputs))
    unknown = sorted(set(inputs) - set(specs))
    if missing or unknown:
      raise BadRequest(
          f'signature {signature_name!r} takes inputs {sorted(specs)}; '
          + (f'missing {missing}' if missing else '')
          + ('; ' if missing and unknown else '')
          + (f'unknown {unknown}' if unknown else ''))
    arrays = {name: to_array(name, value, specs[name].dtype)
              for name, value in inputs.items()}
    check_batch(arrays, max_batch)
    try:
      outputs = self._signatures[signature_name](
          **{name: tf.constant(a) for name, a in arrays.items()})
    except tf.errors.InvalidArgumentError as e:
      raise BadRequest(signature_error_message(e)) from None
    return {name: t.numpy() for name, t in outputs.items()}


def _freeze_heap() -> None:
  """Collects garbage once, then exempts every object alive from the
  cyclic garbage collector (gc.freeze).

  A loaded SavedModel leaves about 500,000 Python objects, which each full
  collection walks: 250 ms with the GIL held, triggered every so often by
  the allocations of JSON requests, which put 300 ms into the p99 latency
  of requests with images (bench/serving_load.py).  Frozen, collections
  walk only what requests allocate.  Unfreezing first lets the collector
  free an unloaded version.
  """
  gc.unfreeze()
  gc.collect()
  gc.freeze()


# -- versions ----------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  """TF Serving's ModelVersionStatus of one version.

  Attributes:
    version: the number.
    state: 'START', 'LOADING', 'AVAILABLE', 'UNLOADING' or 'END'.
    error: why it is not available ('' when it is, or was removed).
  """
  version: int
  state: str
  error: str = ''


class ModelVersions:
  """The versions of one export directory, loaded and kept current."""

  def __init__(self, name: str, export_dir: str, max_versions: int = 0):
    """
    Args:
      name: the model's name, for messages.
      export_dir: the model base path.
      max_versions: keep only the newest N loaded (0: all).
    """
    self.name = name
    self.export_dir = export_dir
    self.max_versions = max_versions
    # Replaced, never mutated, so readers need no lock.
    self._loaded: dict[int, Servable] = {}
    self._status: dict[int, VersionStatus] = {}
    self._attempts: dict[int, int] = {}
    self._poll_lock = threading.Lock()
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def loaded(self) -> list[int]:
    """The versions that answer requests, ascending."""
    return sorted(self._loaded)

  def poll(self) -> list[int]:
    """Loads new version folders (newest first) and drops removed ones.

    Returns:
      The versions loaded by this call.
    """
    with self._poll_lock:
      on_disk = layout.versions(self.export_dir)
      wanted = on_disk[-self.max_versions:] if self.max_versions else on_disk
      for version in list(self._attempts):
        if version not in on_disk:  # a rewritten folder gets new attempts
          del self._attempts[version]
      loaded_now = []
      for version in sorted(set(wanted) - set(self._loaded), reverse=True):
        if self._attempts.get(version, 0) >= LOAD_ATTEMPTS:
          continue
        self._set_status(VersionStatus(version, 'LOADING'))
        path = os.path.join(self.export_dir, str(version))
        try:
          servable = Servable(version, path)
        except Exception as e:  # pylint: disable=broad-except
          # Whatever a broken folder raises, the other versions stay up.
          attempts = self._attempts[version] = (
              self._attempts.get(version, 0) + 1)
          lines = str(e).strip().splitlines()
          message = f'{type(e).__name__}: {lines[0] if lines else ""}'
          final = attempts >= LOAD_ATTEMPTS
          self._set_status(VersionStatus(version, 'END' if final else 'START',
                                         message))
          logging.warning('%s version %d failed to load (attempt %d of %d): '
                          '%s', self.name, version, attempts, LOAD_ATTEMPTS,
                          message)
          continue
        self._loaded = {**self._loaded, version: servable}
        self._set_status(VersionStatus(version, 'AVAILABLE'))
        loaded_now.append(version)
        logging.info('%s: version %d loaded from %s', self.name, version, path)
      unloaded = sorted(set(self._loaded) - set(wanted))
      for version in unloaded:
        self._loaded = {v: s for v, s in self._loaded.items() if v != version}
        self._set_status(VersionStatus(version, 'END'))
        logging.info('%s: version %d unloaded (%s)', self.name, version,
                     'removed' if version not in on_disk else
                     f'beyond the newest {self.max_versions}')
      if loaded_now or unloaded:
        _freeze_heap()
      return loaded_now

  def _set_status(self, status: VersionStatus) -> None:
    self._status = {**self._status, status.version: status}

  def failures(self) -> list[VersionStatus]:
    """Versions whose last load failed, ascending."""
    return [s for _, s in sorted(self._status.items()) if s.error]

  def get(self, version: Optional[int] = None) -> Servable:
    """The loaded `version`, or the newest when None.

    Raises:
      NotFound: that version is not loaded (or none is).
    """
    loaded = self._loaded
    if version is None:
      if not loaded:
        raise NotFound(f'Servable not found for request: Latest({self.name})'
                       f': no version of {self.export_dir} is loaded')
      return loaded[max(loaded)]
    if version not in loaded:
      raise NotFound(f'Servable not found for request: Specific({self.name}, '
                     f'{version}) (loaded: {sorted(loaded) or "none"})')
    return loaded[version]

  def status(self, version: Optional[int] = None) -> list[VersionStatus]:
    """Every version seen, newest first (TF Serving's order), or one.

    Raises:
      NotFound: TF Serving's messages for an unknown version or model.
    """
    statuses = self._status
    if version is not None:
      if version not in statuses:
        raise NotFound(f'Could not find version {version} of model '
                       f'{self.name}')
      return [statuses[version]]
    if not statuses:
      raise NotFound(f'Could not find any versions of model {self.name}')
    return [statuses[v] for v in sorted(statuses, reverse=True)]

  def start_polling(self, seconds: float) -> None:
    """Polls every `seconds` in a daemon thread until `stop_polling`."""

    def loop():
      while not self._stop.wait(seconds):
        try:
          self.poll()
        except Exception:  # pylint: disable=broad-except
          logging.exception('%s: polling %s failed', self.name,
                            self.export_dir)

    self._thread = threading.Thread(target=loop, daemon=True,
                                    name=f'poll-{self.name}')
    self._thread.start()

  def stop_polling(self) -> None:
    self._stop.set()


# -- TF Serving's JSON -------------------------------------------------------


def parse_predict_body(body: Any, servable: Servable, max_batch: int
                       ) -> tuple[str, dict[str, Any], bool]:
  """A REST :predict body -> (signature name, {input: value}, row format).

  Row format: "instances" is a list with one entry per example, either the
  value of the signature's only input or an object naming every input.
  Columnar format: "inputs" is the only input's value or an object naming
  every input.  (TF Serving's REST API, "Request format".)

  Raises:
    BadRequest: not an object, neither or both of instances and inputs,
      instances that are not a list, too many instances, unnamed values for
      a signature with several inputs, an unknown signature.
  """
  if not isinstance(body, dict):
    raise BadRequest(f'the request body must be a JSON object; got '
                     f'{_preview(body)}')
  signature = body.get('signature_name') or DEFAULT_SIGNATURE
  if not isinstance(signature, str):
    raise BadRequest(f'signature_name must be a string; got '
                     f'{_preview(signature)}')
  if ('instances' in body) == ('inputs' in body):
    raise BadRequest("the request body must have exactly one of 'instances' "
                     "(row format) or 'inputs' (columnar format); got keys "
                     f'{sorted(body)}')
  names = sorted(servable.input_specs(signature))
  row_format = 'instances' in body
  values = body['instances'] if row_format else body['inputs']
  if row_format:
    if not isinstance(values, list):
      raise BadRequest(f"'instances' must be a list (one entry per example); "
                       f'got {_preview(values)}')
    if len(values) > max_batch:
      raise BadRequest(f'{len(values)} instances are above this server\'s '
                       f'limit of {max_batch} (--max_batch)')
    named = bool(values) and all(isinstance(v, dict) for v in values)
    if named:
      for i, instance in enumerate(values):
        if sorted(instance) != names:
          raise BadRequest(f'instance {i} has inputs {sorted(instance)}; '
                           f'signature {signature!r} takes {names}')
      return signature, {n: [v[n] for v in values] for n in names}, True
  elif isinstance(values, dict):
    return signature, values, False
  if len(names) != 1:
    where = 'each instance' if row_format else "'inputs'"
    raise BadRequest(f'signature {signature!r} takes {len(names)} inputs '
                     f'{names}: make {where} an object with those keys')
  return signature, {names[0]: values}, row_format


def predict_reply(outputs: Mapping[str, np.ndarray], row_format: bool
                  ) -> dict[str, Any]:
  """Outputs -> TF Serving's reply: {"predictions": ...} for the row format,
  {"outputs": ...} for the columnar one; a lone output is not named.

  Raises:
    BadRequest: row format with outputs that do not share a batch size
      (use the columnar format).
  """
  names = sorted(outputs)
  if not row_format:
    return {'outputs': outputs[names[0]] if len(names) == 1 else
            {n: outputs[n] for n in names}}
  sizes = {outputs[n].shape[0] if outputs[n].ndim else None for n in names}
  if len(sizes) != 1 or None in sizes:
    raise BadRequest('the outputs do not share a batch size, so they cannot '
                     "be returned as rows; use the columnar 'inputs' format")
  if len(names) == 1:
    return {'predictions': outputs[names[0]]}
  return {'predictions': [{n: outputs[n][i] for n in names}
                          for i in range(sizes.pop())]}


def predict_json(servable: Servable, body: Any, max_batch: int
                 ) -> dict[str, Any]:
  """A REST :predict body -> its reply, through `servable`.

  Raises:
    BadRequest: see `parse_predict_body`, `Servable.run`, `predict_reply`.
  """
  signature, inputs, row_format = parse_predict_body(body, servable,
                                                     max_batch)
  return predict_reply(servable.run(signature, inputs, max_batch), row_format)


def status_json(statuses: list[VersionStatus]) -> dict[str, Any]:
  """GetModelStatusResponse in JSON, as TF Serving's REST API prints it."""
  return {'model_version_status': [
      {'version': str(s.version), 'state': s.state,
       'status': {'error_code': 'UNKNOWN' if s.error else 'OK',
                  'error_message': s.error}} for s in statuses]}


def signature_def_map(servable: Servable
                      ) -> get_model_metadata_pb2.SignatureDefMap:
  out = get_model_metadata_pb2.SignatureDefMap()
  for name, signature_def in servable.signature_defs.items():
    out.signature_def[name].CopyFrom(signature_def)
  return out


def metadata_json(name: str, servable: Servable) -> dict[str, Any]:
  """GetModelMetadataResponse in JSON, as TF Serving's REST API prints it
  (proto field names, default values printed, int64 as strings)."""
  return {
      'model_spec': {'name': name, 'signature_name': '',
                     'version': str(servable.version)},
      'metadata': {'signature_def': json_format.MessageToDict(
          signature_def_map(servable),
          always_print_fields_with_no_presence=True,
          preserving_proto_field_name=True)},
  }


def parse_version(text: str) -> int:
  """/versions/N's N.

  Raises:
    BadRequest: TF Serving's message when N is not a number.
  """
  if not re.fullmatch(r'\d+', text):
    raise BadRequest(f'Failed to convert version: {text} to numeric.')
  return int(text)


# -- the KServe model --------------------------------------------------------


class ExportDirModel(kserve.Model):
  """Every version of an export directory, behind TF Serving's API.

  A `kserve.Model`: KServe's V1 :predict route calls `preprocess`,
  `predict` and `postprocess` with the JSON body, so a subclass can add
  Python pre- or post-processing around the signatures.
  """

  def __init__(self, name: str, export_dir: str, max_batch: int,
               poll_seconds: float, max_versions: int = 0):
    """
    Args:
      name: the model's name in URLs.
      export_dir: the model base path.
      max_batch: see `check_batch`.
      poll_seconds: 0: load once in `load`, never poll.
      max_versions: serve only the newest N (0: all).
    """
    super().__init__(name)
    self.export_dir = export_dir
    self.max_batch = max_batch
    self.poll_seconds = poll_seconds
    self.versions = ModelVersions(name, export_dir, max_versions)

  def load(self) -> bool:
    """Loads the versions present now.

    Returns:
      True (ready).

    Raises:
      ServingError: the directory is missing, holds no version folder, or
        none of them loads.
    """
    if not os.path.isdir(self.export_dir):
      raise ServingError(f'export_dir {self.export_dir!r} is not a directory:'
                         ' point --export_dir at the folder holding the '
                         'version folders (1/, 2/, ...) that trainers.export '
                         'writes')
    self.versions.poll()
    if not self.versions.loaded():
      failed = self.versions.failures()
      if not failed:
        raise ServingError(f'export_dir {self.export_dir!r} holds no version '
                           'folder (1/, 2/, ...): write one with '
                           'trainers.export or trainers.train --export_dir')
      raise ServingError(f'no version in {self.export_dir!r} loads: '
                         + '; '.join(f'version {s.version}: {s.error}'
                                     for s in failed))
    self.ready = True
    return self.ready

  def start(self):
    super().start()
    if self.poll_seconds > 0:
      self.versions.start_polling(self.poll_seconds)

  def stop(self):
    self.versions.stop_polling()
    super().stop()

  async def healthy(self) -> bool:
    return self.ready and bool(self.versions.loaded())

  async def predict(self, payload: Any, headers: Optional[dict] = None,
                    response_headers: Optional[dict] = None) -> dict:
    """TF Serving's :predict: the body's signature on its inputs.

    Args:
      payload: the JSON body (a dict; bytes when the client did not say
        application/json, which TF Serving does not require either).
      headers, response_headers: unused.

    Returns:
      {"predictions": ...} or {"outputs": ...}.

    Raises:
      BadRequest, NotFound.
    """
    del headers, response_headers
    if isinstance(payload, (bytes, str)):
      try:
        payload = orjson.loads(payload)
      except orjson.JSONDecodeError as e:
        raise BadRequest(f'the request body is not JSON: {e}') from None
    elif isinstance(payload, kserve.InferRequest):
      raise BadRequest('this server speaks TF Serving\'s protocol (KServe '
                       'V1): POST /v1/models/NAME:predict')
    servable = self.versions.get(_REQUESTED_VERSION.get())
    # JSON -> arrays, the signature and the reply's arrays run off the event
    # loop, so other requests, probes and metrics are answered meanwhile.
    return await asyncio.get_running_loop().run_in_executor(
        None, predict_json, servable, payload, self.max_batch)


# -- REST routes KServe lacks, errors, request size --------------------------


class _BodyLimit:
  """ASGI middleware: a request body above `max_bytes` raises
  RequestTooLarge (HTTP 413) where the handler reads it.

  Nothing past the limit is kept.  The rest of the body is read and
  dropped (up to `_DRAIN_BYTES`) before the reply, so that a client still
  sending gets the 413 rather than a reset connection.
  """

  def __init__(self, app, max_bytes: int):
    self.app = app
    self.max_bytes = max_bytes

  async def __call__(self, scope, receive, send):
    if scope['type'] != 'http':
      await self.app(scope, receive, send)
      return
    received = 0

    async def limited_receive():
      nonlocal received
      message = await receive()
      if message['type'] != 'http.request':
        return message
      received += len(message.get('body', b''))
      if received <= self.max_bytes:
        return message
      while message.get('more_body') and received < _DRAIN_BYTES:
        message = await receive()
        received += len(message.get('body', b''))
      raise RequestTooLarge(f'the request body has {received} bytes or more, '
                            f'above this server\'s limit of {self.max_bytes}'
                            ' (--max_request_bytes)')

    await self.app(scope, limited_receive, send)


def _json(content: Any, status_code: int = 200,
          headers: Optional[Mapping[str, str]] = None) -> fastapi.Response:
  """A JSON response; NumPy arrays are written by orjson directly."""
  return fastapi.Response(
      orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY),
      status_code=status_code, headers=headers, media_type='application/json')


def _error_handler(status: int):
  """An exception handler replying {"error": message} with `status` (0:
  the exception's own status code), logged in one line."""

  async def handler(request: fastapi.Request, exc: Exception):
    code = status or exc.status_code
    message = str(getattr(exc, 'detail', None) or exc)
    logging.warning('%s %s -> %d: %s', request.method, request.url.path,
                    code, message)
    return _json({'error': message}, code, getattr(exc, 'headers', None))

  return handler


def add_tf_serving_routes(app: fastapi.FastAPI,
                          dataplane: kserve_dataplane.DataPlane,
                          max_request_bytes: int) -> None:
  """Adds TF Serving's routes that KServe's V1 API lacks, ahead of KServe's.

  GET /v1/models/NAME answers with TF Serving's version status (KServe's
  says {"name", "ready"}); /versions/N and /metadata are added.  Errors
  reply {"error": message}, like TF Serving, with 400, 404 or 413.
  """
  v1 = v1_endpoints.V1Endpoints(dataplane)

  def model(name: str) -> ExportDirModel:
    found = dataplane.model_registry.get_model(name)
    if not isinstance(found, ExportDirModel):
      # KServe's message, as its own :predict route says it.
      raise NotFound(str(kserve_errors.ModelNotFound(name)))
    return found

  async def status(model_name: str):
    return _json(status_json(model(model_name).versions.status()))

  async def version_status(model_name: str, version: str):
    return _json(status_json(
        model(model_name).versions.status(parse_version(version))))

  async def metadata(model_name: str):
    found = model(model_name)
    return _json(metadata_json(found.name, found.versions.get()))

  async def version_metadata(model_name: str, version: str):
    found = model(model_name)
    return _json(metadata_json(found.name,
                               found.versions.get(parse_version(version))))

  async def version_predict(model_name: str, version: str,
                            request: fastapi.Request):
    token = _REQUESTED_VERSION.set(parse_version(version))
    try:
      return await v1.predict(model_name, request)
    finally:
      _REQUESTED_VERSION.reset(token)

  prefix = kserve_constants.V1_ROUTE_PREFIX + '/models/{model_name}'
  app.add_api_route(prefix, status, methods=['GET'])
  app.add_api_route(prefix + '/metadata', metadata, methods=['GET'])
  app.add_api_route(prefix + '/versions/{version}', version_status,
                    methods=['GET'])
  app.add_api_route(prefix + '/versions/{version}/metadata',
                    version_metadata, methods=['GET'])
  app.add_api_route(prefix + '/versions/{version}:predict', version_predict,
                    methods=['POST'], response_model=None)
  app.add_exception_handler(BadRequest, _error_handler(400))
  app.add_exception_handler(NotFound, _error_handler(404))
  app.add_exception_handler(RequestTooLarge, _error_handler(413))
  # Unknown paths and methods: {"error": ...} too, not FastAPI's "detail".
  app.add_exception_handler(starlette_exceptions.HTTPException,
                            _error_handler(0))
  app.add_middleware(_BodyLimit, max_bytes=max_request_bytes)


# -- gRPC: TF Serving's services ---------------------------------------------


def _model_spec_version(spec) -> Optional[int]:
  if spec.version_label:
    raise BadRequest(f'version labels are not supported (got '
                     f'{spec.version_label!r}); ask for a version number')
  return spec.version.value if spec.HasField('version') else None


class _GrpcBase:

  def __init__(self, dataplane: kserve_dataplane.DataPlane):
    self._dataplane = dataplane

  def _model(self, name: str) -> ExportDirModel:
    found = self._dataplane.model_registry.get_model(name)
    if not isinstance(found, ExportDirModel):
      raise NotFound(f'Servable not found for request: Latest({name})')
    return found

  @staticmethod
  async def _abort(context, error: Exception):
    code = (grpc.StatusCode.NOT_FOUND if isinstance(error, NotFound)
            else grpc.StatusCode.INVALID_ARGUMENT)
    await context.abort(code, error.reason)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer,
                         _GrpcBase):
  """tensorflow.serving.PredictionService: Predict and GetModelMetadata."""

  async def Predict(self, request, context):  # pylint: disable=invalid-name
    try:
      model = self._model(request.model_spec.name)
      servable = model.versions.get(_model_spec_version(request.model_spec))
      signature = request.model_spec.signature_name or DEFAULT_SIGNATURE
      try:
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
      except (TypeError, ValueError) as e:
        raise BadRequest(f'an input TensorProto cannot be read: {e}') from None
      outputs = await asyncio.get_running_loop().run_in_executor(
          None, servable.run, signature, inputs, model.max_batch)
      wanted = list(request.output_filter) or sorted(outputs)
      unknown = sorted(set(wanted) - set(outputs))
      if unknown:
        raise BadRequest(f'output_filter names {unknown}, not outputs of '
                         f'{signature!r} ({sorted(outputs)})')
    except (BadRequest, NotFound) as e:
      await self._abort(context, e)
    reply = predict_pb2.PredictResponse()
    reply.model_spec.name = model.name
    reply.model_spec.version.value = servable.version
    reply.model_spec.signature_name = signature
    for name in wanted:
      reply.outputs[name].CopyFrom(tf.make_tensor_proto(outputs[name]))
    return reply

  async def GetModelMetadata(self, request, context):  # pylint: disable=invalid-name
    try:
      model = self._model(request.model_spec.name)
      servable = model.versions.get(_model_spec_version(request.model_spec))
      fields = list(request.metadata_field)
      if fields != ['signature_def']:
        raise BadRequest(f'metadata_field must be ["signature_def"], the only'
                         f' metadata served; got {fields}')
    except (BadRequest, NotFound) as e:
      await self._abort(context, e)
    reply = get_model_metadata_pb2.GetModelMetadataResponse()
    reply.model_spec.name = model.name
    reply.model_spec.version.value = servable.version
    reply.metadata['signature_def'].Pack(signature_def_map(servable))
    return reply


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer, _GrpcBase):
  """tensorflow.serving.ModelService: GetModelStatus."""

  async def GetModelStatus(self, request, context):  # pylint: disable=invalid-name
    try:
      model = self._model(request.model_spec.name)
      statuses = model.versions.status(_model_spec_version(request.model_spec))
    except (BadRequest, NotFound) as e:
      await self._abort(context, e)
    reply = get_model_status_pb2.GetModelStatusResponse()
    states = get_model_status_pb2.ModelVersionStatus.State
    for s in statuses:
      entry = reply.model_version_status.add()
      entry.version = s.version
      entry.state = states.Value(s.state)
      entry.status.error_code = (error_codes_pb2.UNKNOWN if s.error
                                 else error_codes_pb2.OK)
      entry.status.error_message = s.error
    return reply


class _GRPCServer(kserve_grpc.GRPCServer):
  """KServe's gRPC server lifecycle (started and stopped by ModelServer)
  hosting TF Serving's services instead of KServe's V2 one."""

  def __init__(self, host: str, port: int, dataplane, repository_extension,
               max_message_bytes: int, grace_period: float):
    super().__init__(port, dataplane, repository_extension, kwargs={},
                     grace_period=grace_period)
    self._host = host
    self._max_message_bytes = max_message_bytes

  async def start(self, max_workers: int):
    del max_workers  # the servicers are coroutines
    self._server = grpc.aio.server(options=[
        ('grpc.max_receive_message_length', self._max_message_bytes),
        ('grpc.max_send_message_length', -1)])
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(self._data_plane), self._server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(
        ModelServicer(self._data_plane), self._server)
    self._server.add_insecure_port(f'{self._host}:{self._port}')
    await self._server.start()
    logging.info('gRPC (TF Serving PredictionService, ModelService) on %s:%d',
                 self._host, self._port)
    await self._server.wait_for_termination()


# -- the server --------------------------------------------------------------


class _ModelServer(kserve.ModelServer):
  """kserve.ModelServer, single process, listening on `host` (KServe's
  REST server binds 0.0.0.0), with TF Serving's gRPC services."""

  def __init__(self, config: config_lib.ServeConfig):
    super().__init__(http_port=config.rest_api_port,
                     grpc_port=config.grpc_port, workers=1,
                     enable_grpc=False, enable_docs_url=False,
                     enable_latency_logging=False,
                     grace_period=config.grace_seconds)
    self._config = config

  def start(self, models: list[kserve.Model]) -> None:
    """ModelServer.start's single-process path, with the host and gRPC
    server above; returns after SIGTERM or SIGINT once requests in flight
    have finished (or `grace_seconds` passed)."""
    self._register_and_check_atleast_one_model_is_ready(models)
    self._rest_server = kserve_rest.RESTServer(
        kserve_constants.FASTAPI_APP_IMPORT_STRING, self.dataplane,
        self.model_repository_extension, self.http_port,
        access_log_format=self.access_log_format, workers=1,
        grace_period=self.grace_period, event_loop=self.event_loop,
        timeout_keep_alive=self.timeout_keep_alive)
    self._rest_server.config.host = self._config.host
    self.servers.append(self._rest_server.start())
    if self._config.grpc_port:
      self._grpc_server = _GRPCServer(
          self._config.host, self._config.grpc_port, self.dataplane,
          self.model_repository_extension, self._config.max_request_bytes,
          self.grace_period)
      self.servers.append(self._grpc_server.start(self.max_threads))
    self.setup_event_loop()
    self.register_signal_handler()
    asyncio.run(self._serve())


def serve(config: config_lib.ServeConfig,
          model_class: type = ExportDirModel) -> None:
  """Serves `config.export_dir` until SIGTERM or SIGINT.

  Args:
    config: validated serving settings.
    model_class: ExportDirModel or a subclass (pre- and post-processing).

  Raises:
    ServingError: the export directory cannot be served.
  """
  # KServe's V1 handler replies with FastAPI's ORJSONResponse, deprecated
  # in FastAPI 0.165 but working; its per-request timing lines are noise
  # next to the access log.
  warnings.filterwarnings('ignore', message='ORJSONResponse is deprecated')
  name = config.resolved_model_name()
  model = model_class(name, config.export_dir, config.max_batch,
                      config.poll_seconds, config.max_versions)
  model.load()
  server = _ModelServer(config)  # configures KServe's loggers
  std_logging.getLogger('kserve.trace').setLevel(std_logging.WARNING)
  add_tf_serving_routes(kserve_model_server.app, server.dataplane,
                        config.max_request_bytes)
  grpc_where = (f', gRPC {config.host}:{config.grpc_port}'
                if config.grpc_port else '')
  logging.info('serving %s (versions %s of %s): REST http://%s:%d%s', name,
               model.versions.loaded(), config.export_dir, config.host,
               config.rest_api_port, grpc_where)
  server.start([model])
