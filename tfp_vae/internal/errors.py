"""Errors raised at the package's boundaries.

Every error a user can cause derives from `TfpVaeError` and carries a message
that names what was wrong and shows the bad value, so that command-line
programs can print it as one sentence and exit non-zero.
"""


class TfpVaeError(Exception):
  """Base class of the errors a user can cause and fix."""


class ConfigError(TfpVaeError, ValueError):
  """A setting's value is invalid.

  Attributes:
    field: the setting's name as users know it (its command-line flag
      without `--`).
    value: the offending value.
  """

  def __init__(self, field: str, value, message: str):
    self.field = field
    self.value = value
    super().__init__(f'{field} {message}, got {value!r}')


class EnvironmentConfigError(ConfigError):
  """An environment variable (TF_CONFIG, the Kubeflow Trainer v2
  variables) is invalid; `field` names the variable."""


class InputError(TfpVaeError, ValueError):
  """Images or codes given to a model are not what it takes (dtype, value
  range, shape); the message names the value and how to fix it."""


class UndefinedError(TfpVaeError, ValueError):
  """A quantity asked of a model does not exist for it (the ELBO of a
  point-mass encoder); the message says why and what to use instead."""


class DataError(TfpVaeError):
  """A dataset is unknown, missing, or cannot be prepared."""


class CheckpointError(TfpVaeError):
  """A checkpoint is unreadable or belongs to a different configuration."""


class NonFiniteLossError(TfpVaeError):
  """Training produced a NaN or infinite loss."""


# The exit code of a RetryableError in the command-line programs: 128 +
# SIGTERM, what a preempted process exits with, which job controllers
# (a TFJob's restartPolicy ExitCode, Trainer v2's failure policy) retry.
RETRYABLE_EXIT_CODE = 143


class RetryableError(TfpVaeError):
  """The run stopped for a reason outside it; running it again resumes."""


class Preempted(RetryableError):
  """SIGTERM arrived; a checkpoint was saved before stopping."""


class PeerLost(RetryableError):
  """A worker of a multi-worker run stopped answering."""


class StorageError(TfpVaeError):
  """Writing to the run's storage failed (`tfp_vae.internal.storage` words
  it)."""


class StorageUnavailable(StorageError, RetryableError):
  """The storage is full, read-only or gone; running again once it is back
  resumes from the last checkpoint."""
