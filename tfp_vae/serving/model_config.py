"""What a server is told to serve: models (a name, a base path of version
folders, a version policy, version labels), from `--export_dir` or TF
Serving's `--model_config_file` (`model_config_list`); and `ServingError`,
raised when what is to be served cannot be.
"""

import dataclasses
from typing import Mapping

from google.protobuf import text_format

from tfp_vae.internal import errors


class ServingError(errors.TfpVaeError):
  """What is to be served cannot be (a missing or empty base path, nothing
  loads, a bad --model_config_file)."""


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
