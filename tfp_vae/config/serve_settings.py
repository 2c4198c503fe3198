"""How `trainers.serve` serves SavedModels (`ServeConfig`), validated once
at the boundary, without TensorFlow."""

import dataclasses
import os
from typing import Optional

from tfp_vae.config import declare
from tfp_vae.config import settings
from tfp_vae.internal import checks
from tfp_vae.internal import errors


@dataclasses.dataclass
class ServeConfig:
  """How `trainers.serve` serves SavedModels (`tfp_vae.serving`).

  Each field's help is its `trainers.serve` flag's help (the flags are
  generated from these fields, `trainers/common.py`).
  """
  export_dir: str = declare.field(
      '', "The model base path: the folder holding the version folders 1/, "
      "2/, ... (trainers.export --export_dir; TF Serving's "
      "--model_base_path).")
  model_config_file: str = declare.field(
      '', "Instead of --export_dir: TF Serving's model config file (a text "
      'ModelServerConfig with a model_config_list), for several models, '
      'version policies and labels.')
  model_name: Optional[str] = declare.field(
      None, 'NAME in /v1/models/NAME for --export_dir (default: '
      "export_dir's name, as in its models.config).")
  host: str = declare.field(
      '0.0.0.0', 'Address to listen on (127.0.0.1: this machine only).')
  rest_api_port: int = declare.field(
      8501, "Port of the REST APIs (TF Serving's default).")
  grpc_port: int = declare.field(
      8500, "Port of the gRPC services: TF Serving's and KServe V2's (0: no "
      'gRPC).')
  max_batch: int = declare.field(
      settings.MAX_BATCH, 'Largest batch a request may carry: instances, '
      "examples, an input's leading dimension, num_samples.")
  max_request_bytes: int = declare.field(
      64 * 2**20, 'Largest REST request body (HTTP 413 above it) or gRPC '
      'message.')
  poll_seconds: float = declare.field(
      1.0, "Look for new and removed versions this often (TF Serving's "
      '--file_system_poll_wait_seconds; 0: never).')
  max_versions: int = declare.field(
      1, "--export_dir's version policy: serve the newest N versions (TF "
      "Serving's default policy serves 1); 0: all.")
  grace_seconds: float = declare.field(
      30.0, 'After SIGTERM, how long requests in flight may take.')
  monitoring_config_file: str = declare.field(
      '', "TF Serving's monitoring config (a text MonitoringConfig): its "
      'prometheus_config moves or turns off the Prometheus page (default '
      '/monitoring/prometheus/metrics).')

  def validate(self) -> 'ServeConfig':
    """Checks every field; returns self.

    Raises:
      ConfigError: naming the first invalid field and its value.
    """
    for field in ('export_dir', 'model_config_file', 'monitoring_config_file'):
      if not isinstance(getattr(self, field), str):
        raise errors.ConfigError(field, getattr(self, field),
                                 'must be a path')
    if not self.export_dir and not self.model_config_file:
      raise errors.ConfigError(
          'export_dir', self.export_dir,
          'is required (the folder holding the version folders 1/, 2/, ...)'
          ' unless --model_config_file lists the models')
    if self.export_dir and self.model_config_file:
      raise errors.ConfigError(
          'model_config_file', self.model_config_file,
          'and --export_dir cannot both be given: one names one model, the '
          'other lists them')
    if self.model_config_file and self.model_name:
      raise errors.ConfigError('model_name', self.model_name,
                               'names the --export_dir model; with '
                               '--model_config_file the file names them')
    if self.export_dir:
      name = self.resolved_model_name()
      if not name or any(c in name for c in '/: \t\n'):
        raise errors.ConfigError('model_name', name,
                                 "must be a name without '/', ':' or spaces "
                                 '(it is a URL path segment)')
    if not isinstance(self.host, str) or not self.host:
      raise errors.ConfigError('host', self.host, 'must be an address')
    checks.port('rest_api_port', self.rest_api_port, allow_zero=False)
    checks.port('grpc_port', self.grpc_port, allow_zero=True)
    if self.grpc_port == self.rest_api_port:
      raise errors.ConfigError('grpc_port', self.grpc_port,
                               'must differ from --rest_api_port')
    checks.positive_int('max_batch', self.max_batch)
    checks.positive_int('max_request_bytes', self.max_request_bytes)
    for field in ('poll_seconds', 'grace_seconds'):
      value = getattr(self, field)
      checks.finite_non_negative(field, value)
    checks.non_negative_int('max_versions', self.max_versions)
    return self

  def resolved_model_name(self) -> str:
    """`model_name`, else the export directory's name."""
    if self.model_name:
      return self.model_name
    return os.path.basename(os.path.abspath(self.export_dir))
