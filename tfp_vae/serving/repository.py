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
import threading
from typing import Callable, Optional

from absl import logging
import tensorflow as tf

from tfp_vae.internal import layout
from tfp_vae.serving import model_config
from tfp_vae.serving import servable as servable_lib
from tfp_vae.serving import status

# TF Serving retries a failed load (--max_num_load_retries, default 5).
LOAD_ATTEMPTS = 5


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

  def __init__(self, config: model_config.ModelConfig,
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
    self._loaded: dict[int, servable_lib.Servable] = {}
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
          servable = servable_lib.Servable(version, path)
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
          label: Optional[str] = None) -> servable_lib.Servable:
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
        raise model_config.ServingError(
            f'model {self.name!r}: label {label!r} points at version '
            f'{version}, which is not available (loaded: '
            f'{self.loaded() or "none"})')


class Repository:
  """Every model the server serves, by name, and their poller."""

  def __init__(self, configs: list[model_config.ModelConfig],
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
        raise model_config.ServingError(
            f'model {model.name!r}: {model.base_path!r} is not a directory: '
            'point --export_dir (or base_path) at the folder holding the '
            'version folders (1/, 2/, ...) that trainers.export writes')
    for model in self.models.values():
      model.poll()
      if not model.loaded():
        failed = model.failures()
        if not failed:
          raise model_config.ServingError(
              f'model {model.name!r}: {model.base_path!r} holds no version '
              f'folder its policy ({model.config.policy.describe()}) '
              'serves (1/, 2/, ...): write one with trainers.export or '
              'trainers.train --export_dir')
        raise model_config.ServingError(
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
