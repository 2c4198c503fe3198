"""The models a server serves and their versions: loaded, kept current, and
looked up by number or label the way TF Serving does.

A model is a name and a base path holding version folders (`1/`,
`00000123/`, `tfp_vae.internal.layout`), a version policy (TF Serving's
`model_version_policy`: the latest N, all, or specific versions) and
version labels.  `--export_dir` gives one model serving its latest version;
`--model_config_file` gives TF Serving's `model_config_list` of several.

Versions load with `tf.saved_model.load` (TF1 SavedModels too, whose
signatures it prunes out of the graph; this module never imports
TensorFlow Probability).  A poller looks at every base path every
`poll_seconds`, loads what the policy wants (newest first) and then
unloads what it no longer wants, so the model never goes without a version
while a new one loads (TF Serving's availability-preserving policy).  A
version that fails to load is retried on the next polls, up to
LOAD_ATTEMPTS, then reported with its error (state END).
"""

import dataclasses
import errno
import gc
import os
import re
import threading
from typing import Any, Callable, Mapping, Optional

from absl import logging
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.protobuf import saved_model_pb2

from tfp_vae.internal import errors
from tfp_vae.internal import layout
from tfp_vae.internal import tensorflow_internals as tf_internals
from tfp_vae.serving import status

# TF Serving retries a failed load (--max_num_load_retries, default 5).
LOAD_ATTEMPTS = 5
CLASSIFY_METHOD = 'tensorflow/serving/classify'
REGRESS_METHOD = 'tensorflow/serving/regress'


class ServingError(errors.TfpVaeError):
  """What is to be served cannot be (a missing or empty base path, nothing
  loads, a bad --model_config_file)."""


# -- configuration -----------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VersionPolicy:
  """TF Serving's model_version_policy.

  Attributes:
    kind: 'latest' (the `num_versions` highest), 'all' or 'specific'.
    num_versions: for 'latest'.
    versions: for 'specific'.
  """
  kind: str = 'latest'
  num_versions: int = 1
  versions: tuple[int, ...] = ()

  def select(self, on_disk: list[int]) -> list[int]:
    """The versions to serve among those on disk (ascending)."""
    if self.kind == 'all':
      return list(on_disk)
    if self.kind == 'specific':
      return [v for v in on_disk if v in self.versions]
    return list(on_disk[-self.num_versions:])

  def describe(self) -> str:
    if self.kind == 'latest':
      return f'latest {self.num_versions}'
    if self.kind == 'specific':
      return f'specific {list(self.versions)}'
    return 'all'


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """One model: TF Serving's ModelConfig, as far as this server reads it.

  Attributes:
    name: the NAME in /v1/models/NAME.
    base_path: the folder holding the version folders.
    policy: which versions to serve.
    labels: {label: version} (TF Serving's version_labels).
  """
  name: str
  base_path: str
  policy: VersionPolicy = VersionPolicy()
  labels: Mapping[str, int] = dataclasses.field(default_factory=dict)


def read_model_config_file(path: str) -> list[ModelConfig]:
  """The models of a TF Serving --model_config_file (a text
  ModelServerConfig with a model_config_list).

  Raises:
    ServingError: the file is missing or does not parse, lists no model,
      names one twice, names a platform other than tensorflow, has a
      policy with no versions.
  """
  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.config import model_server_config_pb2
  # pylint: enable=g-import-not-at-top
  try:
    with open(path) as f:
      text = f.read()
  except OSError as e:
    raise ServingError(f'--model_config_file={path}: cannot be read ({e})'
                       ) from None
  config = model_server_config_pb2.ModelServerConfig()
  try:
    text_format.Parse(text, config)
  except text_format.ParseError as e:
    raise ServingError(f'--model_config_file={path} is not a text '
                       f'ModelServerConfig: {e}') from None
  if config.WhichOneof('config') != 'model_config_list':
    raise ServingError(f'--model_config_file={path} has no model_config_list'
                       ' (custom_model_config is not supported)')
  models = []
  for entry in config.model_config_list.config:
    where = f'--model_config_file={path}, model {entry.name!r}'
    if not entry.name or any(c in entry.name for c in '/: \t\n'):
      raise ServingError(f'{where}: the name must be non-empty, without '
                         "'/', ':' or spaces")
    if not entry.base_path:
      raise ServingError(f'{where}: base_path is empty')
    if entry.model_platform not in ('', 'tensorflow'):
      raise ServingError(f'{where}: model_platform {entry.model_platform!r} '
                         "is not served here (only 'tensorflow')")
    choice = entry.model_version_policy.WhichOneof('policy_choice')
    if choice == 'all':
      policy = VersionPolicy('all')
    elif choice == 'specific':
      wanted = tuple(sorted(entry.model_version_policy.specific.versions))
      if not wanted:
        raise ServingError(f'{where}: the specific policy lists no version')
      policy = VersionPolicy('specific', versions=wanted)
    else:  # latest, TF Serving's default of one version
      latest = entry.model_version_policy.latest.num_versions
      policy = VersionPolicy('latest', num_versions=latest or 1)
    models.append(ModelConfig(entry.name, entry.base_path, policy,
                              dict(entry.version_labels)))
  if not models:
    raise ServingError(f'--model_config_file={path} lists no model')
  names = [m.name for m in models]
  twice = sorted({n for n in names if names.count(n) > 1})
  if twice:
    raise ServingError(f'--model_config_file={path} names {twice} more than '
                       'once')
  return models


# -- one version -------------------------------------------------------------


def signature_error_message(error: tf.errors.OpError) -> str:
  """The signature's own message in a TensorFlow error, on one line.

  The in-graph checks (`tfp_vae.model.export`) fail with `tf.debugging.Assert`,
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


def _signature_defs(path: str) -> dict[str, Any]:
  """The serving MetaGraph's SignatureDefs, as `saved_model_cli show` and
  TF Serving's metadata read them from saved_model.pb."""
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(path, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  graphs = [g for g in saved_model.meta_graphs
            if set(g.meta_info_def.tags) == {'serve'}] or [
                g for g in saved_model.meta_graphs
                if 'serve' in g.meta_info_def.tags]
  if not graphs:
    raise ServingError(f'{path}/saved_model.pb has no MetaGraph tagged '
                       '"serve"')
  return dict(graphs[0].signature_def)


class Servable:
  """One loaded version: its SignatureDefs and signatures.

  Attributes:
    version: the version folder's number.
    path: the version folder.
    signature_defs: {name: SignatureDef proto} of saved_model.pb.
  """

  def __init__(self, version: int, path: str):
    """Loads the SavedModel in `path` (raises whatever loading raises).

    `tf.saved_model.load` first; a graph it cannot import (those of early
    TF 1.x releases, such as TF Serving's own half_plus_three, whose
    placeholders use the old "empty shape means unknown" convention) is
    loaded with the TF1 session loader, TF Serving's own path.
    """
    self.version = version
    self.path = path
    self.signature_defs = _signature_defs(path)
    self.loader = 'tf.saved_model.load'
    try:
      self._module = tf.saved_model.load(path, tags=['serve'])
      self._signatures = dict(self._module.signatures)
    except ValueError as e:
      logging.info('%s: tf.saved_model.load failed (%s); loading it with '
                   'the TF1 session loader', path, str(e).splitlines()[0])
      self._module = _SessionModel(path, self.signature_defs)
      self._signatures = self._module.signatures
      self.loader = 'tf.compat.v1.saved_model.loader'

  def signature_def(self, name: str):
    """The SignatureDef `name`.

    Raises:
      Status: INVALID_ARGUMENT, TF Serving's message plus the names there
        are.
    """
    found = self.signature_defs.get(name)
    if found is None or name not in self._signatures:
      raise status.invalid_argument(
          f'Serving signature name: "{name}" not found in signature def '
          f'(this model has: {", ".join(sorted(self._signatures))})')
    return found

  def input_dtypes(self, name: str) -> dict[str, tf.DType]:
    """{input name: dtype} of signature `name` (see `signature_def`)."""
    return {k: tf.as_dtype(v.dtype)
            for k, v in self.signature_def(name).inputs.items()}

  def run(self, name: str, arrays: Mapping[str, np.ndarray],
          output_filter: Optional[list[str]] = None
          ) -> dict[str, np.ndarray]:
    """Calls signature `name` on every one of its inputs.

    Args:
      name: e.g. 'serving_default'.
      arrays: {input name: array of the input's dtype}.
      output_filter: the outputs wanted (default: all).

    Returns:
      {output name: array}.

    Raises:
      Status: INVALID_ARGUMENT for an unknown signature or output, or the
        signature's own checks failing (their message); a TensorFlow error
        keeps its code (RESOURCE_EXHAUSTED, UNAVAILABLE, ...).
    """
    signature_def = self.signature_def(name)
    wanted = list(output_filter or [])
    for alias in wanted:
      if alias not in signature_def.outputs:
        raise status.invalid_argument(
            f'output tensor alias not found in signature: {alias} Outputs '
            f'expected to be in the set {{{",".join(sorted(signature_def.outputs))}}}.')
    if len(set(wanted)) != len(wanted):
      raise status.invalid_argument(
          f'duplicate output tensor alias in output_filter: {wanted}')
    try:
      outputs = self._signatures[name](
          **{k: tf.constant(v) for k, v in arrays.items()})
      if wanted:
        outputs = {k: outputs[k] for k in wanted}
    except tf.errors.OpError as e:
      raise status.from_tf_error(e.error_code, signature_error_message(e)
                                 ) from None
    except (TypeError, ValueError) as e:  # arguments the function refuses
      raise status.invalid_argument(
          f'signature {name!r} refused its inputs: '
          f'{str(e).splitlines()[0]}') from None
    return {k: t.numpy() for k, t in outputs.items()
            if not wanted or k in wanted}


class _SessionModel:
  """A SavedModel in a TF1 Session, its signatures run by tensor name as
  TF Serving's session path runs them.

  A request's value is fed whatever its shape, as TF Serving's C++
  Session::Run does: Python's Session.run refuses a feed whose shape
  differs from the tensor's static one (TF Serving's documented
  `{"instances": [1.0, 2.0, 5.0]}` on half_plus_three's [?, 1] input), so
  the session's run is called below that check.
  """

  def __init__(self, path: str, signature_defs: Mapping[str, Any]):
    self._graph = tf.Graph()
    self._session = tf.compat.v1.Session(graph=self._graph)
    tf.compat.v1.saved_model.loader.load(self._session, ['serve'], path)
    self.signatures = {name: self._signature(sd)
                       for name, sd in signature_defs.items()
                       if sd.inputs and sd.outputs}

  def _signature(self, signature_def):
    inputs = {k: self._graph.get_tensor_by_name(v.name)
              for k, v in signature_def.inputs.items()}
    names = sorted(signature_def.outputs)
    run = tf_internals.session_caller(
        self._session, inputs,
        [self._graph.get_tensor_by_name(signature_def.outputs[k].name)
         for k in names])

    def call(**arrays):
      return {k: tf.constant(v) for k, v in zip(names, run(**arrays))}

    return call


def _freeze_heap() -> None:
  """Collects garbage once, then exempts every object alive from the
  cyclic garbage collector (gc.freeze).

  A loaded SavedModel leaves hundreds of thousands of Python objects,
  which each full collection walks with the GIL held, triggered every so
  often by the allocations of JSON requests: those walks showed in the p99
  latency of requests with images (measured with bench/serving_load.py:
  docs/serving.md).  Frozen, collections
  walk only what requests allocate.  Unfreezing first lets the collector
  free an unloaded version.
  """
  gc.unfreeze()
  gc.collect()
  gc.freeze()


# -- the versions of one model -----------------------------------------------


@dataclasses.dataclass(frozen=True)
class VersionStatus:
  """TF Serving's ModelVersionStatus of one version.

  Attributes:
    version: the number.
    state: 'START', 'LOADING', 'AVAILABLE', 'UNLOADING' or 'END'.
    error: why it is not available ('' when it is, or was unloaded).
    error_code: TensorFlow's code of `error` ('OK' when there is none).
  """
  version: int
  state: str
  error: str = ''
  error_code: str = 'OK'


def _load_error_code(error: Exception) -> str:
  if isinstance(error, tf.errors.OpError):
    return status.code_name(error.error_code)
  if isinstance(error, (FileNotFoundError, IOError)):
    return 'NOT_FOUND'
  return 'UNKNOWN'


class ModelVersions:
  """The versions of one model, loaded and kept current."""

  def __init__(self, config: ModelConfig,
               on_change: Optional[Callable[[], None]] = None,
               on_load: Optional[Callable[[str, str], None]] = None):
    """
    Args:
      config: the model's name, base path, policy and labels.
      on_change: called after versions were loaded or unloaded.
      on_load: called with (path, 'OK' or an error code) per load attempt.
    """
    self.config = config
    self.name = config.name
    self.base_path = config.base_path
    # Replaced, never mutated, so readers need no lock.
    self._loaded: dict[int, Servable] = {}
    self._status: dict[int, VersionStatus] = {}
    self._attempts: dict[int, int] = {}
    self._poll_lock = threading.Lock()
    self._on_change = on_change
    self._on_load = on_load
    self._unreadable: Optional[str] = None  # why the base path cannot be read

  def loaded(self) -> list[int]:
    """The versions that answer requests, ascending."""
    return sorted(self._loaded)

  def poll(self) -> list[int]:
    """Loads the version folders the policy wants (newest first), then
    unloads what it no longer wants (once a wanted version is loaded).

    Returns:
      The versions loaded by this call.
    """
    with self._poll_lock:
      folders = self._version_dirs()
      if folders is None:
        return []
      on_disk = list(folders)
      wanted = self.config.policy.select(on_disk)
      for version in list(self._attempts):
        if version not in on_disk:  # a rewritten folder gets new attempts
          del self._attempts[version]
      loaded_now = []
      for version in sorted(set(wanted) - set(self._loaded), reverse=True):
        if self._attempts.get(version, 0) >= LOAD_ATTEMPTS:
          continue
        self._set_status(VersionStatus(version, 'LOADING'))
        path = os.path.join(self.base_path, folders[version])
        try:
          servable = Servable(version, path)
        except Exception as e:  # pylint: disable=broad-except
          # Whatever a broken folder raises, the other versions stay up.
          attempts = self._attempts[version] = (
              self._attempts.get(version, 0) + 1)
          lines = str(e).strip().splitlines()
          message = f'{type(e).__name__}: {lines[0] if lines else ""}'
          final = attempts >= LOAD_ATTEMPTS
          code = _load_error_code(e)
          self._set_status(VersionStatus(version, 'END' if final else 'START',
                                         message, code))
          if self._on_load:
            self._on_load(path, code)
          logging.warning('%s version %d failed to load (attempt %d of %d): '
                          '%s', self.name, version, attempts, LOAD_ATTEMPTS,
                          message)
          continue
        self._loaded = {**self._loaded, version: servable}
        self._set_status(VersionStatus(version, 'AVAILABLE'))
        if self._on_load:
          self._on_load(path, 'OK')
        loaded_now.append(version)
        logging.info('%s: version %d loaded from %s', self.name, version, path)
      # Removed folders go at once; versions the policy no longer wants go
      # once one it wants is loaded.
      keep_old = not set(wanted) & set(self._loaded)
      unloaded = sorted(v for v in set(self._loaded) - set(wanted)
                        if v not in on_disk or not keep_old)
      for version in unloaded:
        self._loaded = {v: s for v, s in self._loaded.items() if v != version}
        self._set_status(VersionStatus(version, 'END'))
        logging.info('%s: version %d unloaded (%s)', self.name, version,
                     'removed' if version not in on_disk else
                     f'the policy is {self.config.policy.describe()}')
      if loaded_now or unloaded:
        _freeze_heap()
        if self._on_change:
          self._on_change()
      return loaded_now

  def _version_dirs(self) -> Optional[dict[int, str]]:
    """The version folders on disk, or None when the base path is gone or
    unreadable (a vanished mount, a folder made unreadable): then the
    loaded versions stay and one warning says so, until it is back.  An
    empty base path that is there unloads them, as TF Serving does when
    the versions are removed."""
    try:
      if not os.path.isdir(self.base_path):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                self.base_path)
      folders = layout.version_dirs(self.base_path)  # lists it: may raise
    except OSError as e:
      problem = f'{e.strerror or e}'
      if self._unreadable != problem:
        self._unreadable = problem
        logging.warning(
            '%s: cannot read its base path %s (%s): serving the loaded '
            'versions %s until it is back', self.name, self.base_path,
            problem, self.loaded() or 'none')
      return None
    if self._unreadable is not None:
      logging.info('%s: base path %s is readable again', self.name,
                   self.base_path)
      self._unreadable = None
    return folders

  def _set_status(self, version_status: VersionStatus) -> None:
    self._status = {**self._status, version_status.version: version_status}

  def failures(self) -> list[VersionStatus]:
    """Versions whose last load failed, ascending."""
    return [s for _, s in sorted(self._status.items()) if s.error]

  def resolve(self, version: Optional[int] = None,
              label: Optional[str] = None) -> Optional[int]:
    """The version a request names: `version`, the version of `label`, or
    None (the latest).

    Raises:
      Status: both given (INVALID_ARGUMENT); an unknown label
        (INVALID_ARGUMENT, TF Serving's message).
    """
    if version is not None and label:
      raise status.invalid_argument(
          f'Both model version ({version}) and model version label '
          f'({label}) cannot be supplied.')
    if label:
      if label not in self.config.labels:
        raise status.invalid_argument(
            f'Unrecognized servable version label: {label}')
      return self.config.labels[label]
    return version

  def get(self, version: Optional[int] = None,
          label: Optional[str] = None) -> Servable:
    """The loaded `version` (or `label`'s), or the latest when neither.

    Raises:
      Status: NOT_FOUND with TF Serving's message when that version is not
        loaded (or none is); see `resolve`.
    """
    version = self.resolve(version, label)
    loaded = self._loaded
    if version is None:
      if not loaded:
        raise status.not_found(
            f'Servable not found for request: Latest({self.name})')
      return loaded[max(loaded)]
    if version not in loaded:
      raise status.not_found(
          f'Servable not found for request: Specific({self.name}, {version})')
    return loaded[version]

  def status(self, version: Optional[int] = None,
             label: Optional[str] = None) -> list[VersionStatus]:
    """Every version seen, newest first (TF Serving's order), or one.

    Raises:
      Status: NOT_FOUND with TF Serving's messages for an unknown version
        or a model with none; see `resolve`.
    """
    version = self.resolve(version, label)
    statuses = self._status
    if version is not None:
      if version not in statuses:
        raise status.not_found(
            f'Could not find version {version} of model {self.name}')
      return [statuses[version]]
    if not statuses:
      raise status.not_found(
          f'Could not find any versions of model {self.name}')
    return [statuses[v] for v in sorted(statuses, reverse=True)]

  def check_labels(self) -> None:
    """Refuses labels that point at a version not loaded (TF Serving
    refuses to assign them too).

    Raises:
      ServingError: naming the label and its version.
    """
    for label, version in sorted(self.config.labels.items()):
      if version not in self._loaded:
        raise ServingError(
            f'model {self.name!r}: label {label!r} points at version '
            f'{version}, which is not available (loaded: '
            f'{self.loaded() or "none"})')


class Repository:
  """Every model the server serves, by name, and their poller."""

  def __init__(self, configs: list[ModelConfig],
               on_load: Optional[Callable[[str, str], None]] = None):
    self.models = {c.name: ModelVersions(c, on_load=on_load)
                   for c in configs}
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None

  def get(self, name: str) -> ModelVersions:
    """The model `name`.

    Raises:
      Status: NOT_FOUND, TF Serving's message for an unknown model.
    """
    found = self.models.get(name)
    if found is None:
      raise status.not_found(f'Servable not found for request: '
                             f'Latest({name})')
    return found

  def status(self, name: str, version: Optional[int] = None,
             label: Optional[str] = None) -> list[VersionStatus]:
    """GetModelStatus: see ModelVersions.status; an unknown model is TF
    Serving's NOT_FOUND "Could not find any versions of model NAME"."""
    found = self.models.get(name)
    if found is None:
      raise status.not_found(f'Could not find any versions of model {name}')
    return found.status(version, label)

  def load(self) -> None:
    """Loads what every model's policy wants now.

    Raises:
      ServingError: a base path is missing or holds no version folder, no
        version of a model loads, or a label points at no loaded version.
    """
    for model in self.models.values():
      if not os.path.isdir(model.base_path):
        raise ServingError(
            f'model {model.name!r}: {model.base_path!r} is not a directory: '
            'point --export_dir (or base_path) at the folder holding the '
            'version folders (1/, 2/, ...) that trainers.export writes')
    for model in self.models.values():
      model.poll()
      if not model.loaded():
        failed = model.failures()
        if not failed:
          raise ServingError(
              f'model {model.name!r}: {model.base_path!r} holds no version '
              f'folder its policy ({model.config.policy.describe()}) '
              'serves (1/, 2/, ...): write one with trainers.export or '
              'trainers.train --export_dir')
        raise ServingError(
            f'model {model.name!r}: no version in {model.base_path!r} loads: '
            + '; '.join(f'version {s.version}: {s.error}' for s in failed))
      model.check_labels()

  def start_polling(self, seconds: float) -> None:
    """Polls every model every `seconds` in a daemon thread until `stop`."""

    def loop():
      while not self._stop.wait(seconds):
        for model in self.models.values():
          try:
            model.poll()
          except Exception:  # pylint: disable=broad-except
            logging.exception('%s: polling %s failed', model.name,
                              model.base_path)

    self._thread = threading.Thread(target=loop, daemon=True, name='poll')
    self._thread.start()

  def stop(self) -> None:
    self._stop.set()
