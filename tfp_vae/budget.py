"""Memory a run would need, estimated before anything is built, and the
memory this machine (or container) has.

The estimate counts what grows with the settings:

  parameters   the networks' weights, which grow linearly with latent_dim
               (measured by building the networks at latent sizes 1 and 2:
               exact for these architectures), plus the prior's (a mixture:
               K (2 latent + 1); a VampPrior: K pseudo-images), each held four
               times (weights, gradients, Adam's two moments);
  activations  every layer's output per image (measured on the networks),
               times the batch, times the importance samples of the IWAE,
               kept for the backward pass; a VampPrior also encodes its K
               pseudo-inputs every step; a mixture prior's densities and
               samples hold [codes, K, latent] tensors.

It is multiplied by OVERHEAD for TensorFlow's temporaries and allocator
slack.  `check` refuses a run whose estimate exceeds BUDGET_SHARE of the
available memory, naming the setting that contributes most.
"""

import math
import os
from typing import Optional

from tfp_vae import config as config_lib
from tfp_vae import errors

BYTES_PER_FLOAT = 4
COPIES_OF_PARAMETERS = 4  # weights, gradients, Adam m and v
OVERHEAD = 2.0
BUDGET_SHARE = 0.8


def available_bytes() -> Optional[int]:
  """Memory this process may use: the container's limit (cgroup v2 or v1)
  when there is one, else the kernel's MemAvailable; None if unknown."""
  limits = []
  for path in ('/sys/fs/cgroup/memory.max',
               '/sys/fs/cgroup/memory/memory.limit_in_bytes'):
    try:
      with open(path) as f:
        text = f.read().strip()
      if text.isdigit() and int(text) < 1 << 60:
        limits.append(int(text))
    except OSError:
      pass
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          limits.append(int(line.split()[1]) * 1024)
  except OSError:
    pass
  return min(limits) if limits else None


def _network_sizes(architecture: str, image_shape, latent: int,
                   gaussian: bool) -> tuple[int, int, int]:
  """(parameters, activations per image, encoder activations per image) of
  the encoder and decoder networks at `latent`."""
  from tfp_vae import networks  # pylint: disable=g-import-not-at-top
  encoder_fn, decoder_fn = networks.ARCHITECTURES[architecture]
  encoder = encoder_fn(image_shape, 2 * latent if gaussian else latent)
  decoder = decoder_fn(latent, image_shape)

  def activations(net):
    return sum(math.prod(layer.output.shape[1:]) for layer in net.layers)

  enc = activations(encoder)
  return (encoder.count_params() + decoder.count_params(),
          enc + activations(decoder), enc)


def estimate(config: config_lib.TrainConfig,
             image_shape: tuple[int, int, int]) -> dict[str, float]:
  """Estimated bytes by the setting they grow with: {'latent_dim': ...,
  'prior_components': ..., 'batch_size': ...} (before OVERHEAD)."""
  model = config.model
  gaussian = model.member.encoder == 'gaussian'
  p1, act, enc_act = _network_sizes(model.architecture, image_shape, 1,
                                    gaussian)
  p2, _, _ = _network_sizes(model.architecture, image_shape, 2, gaussian)
  latent = model.latent_dim
  per_param = BYTES_PER_FLOAT * COPIES_OF_PARAMETERS
  out = {'latent_dim': float(p1 + (p2 - p1) * (latent - 1)) * per_param}
  components = model.prior_components
  samples = getattr(model.member, 'iwae_samples', 1)
  batch = config.trainer.batch_size
  # A mixture's log density and its reparameterised samples hold
  # [codes, components, latent] tensors (and their gradients).
  per_code = float(batch * samples * components * (latent + 1)) * (
      BYTES_PER_FLOAT * 4)
  if model.prior == 'mixture':
    out['prior_components'] = float(components * (2 * latent + 1)) * (
        per_param) + per_code
  elif model.prior == 'vamp':
    out['prior_components'] = float(components) * (
        math.prod(image_shape) * per_param + enc_act * BYTES_PER_FLOAT * 2
    ) + per_code
  # Forward activations kept for the backward pass, and their gradients.
  out['batch_size'] = float(batch) * samples * act * BYTES_PER_FLOAT * 2
  if samples > 1:
    out['iwae_samples'] = out.pop('batch_size')
  return out


def check(config: config_lib.TrainConfig, image_shape: tuple[int, int, int],
          available: Optional[int] = None) -> float:
  """Refuses a run that would not fit in memory; returns the estimate in
  bytes (OVERHEAD included).

  Raises:
    ConfigError: naming the setting that contributes most, with the
      estimate and what is available.
  """
  parts = estimate(config, image_shape)
  total = OVERHEAD * sum(parts.values())
  available = available_bytes() if available is None else available
  if available and total > BUDGET_SHARE * available:
    name = max(parts, key=parts.get)
    values = {'latent_dim': config.model.latent_dim,
              'prior_components': config.model.prior_components,
              'batch_size': config.trainer.batch_size,
              'iwae_samples': getattr(config.model.member, 'iwae_samples',
                                      None)}
    raise errors.ConfigError(
        name, values[name],
        f'would need about {total / 2**30:,.1f} GB of memory '
        f'({OVERHEAD * parts[name] / 2**30:,.1f} GB of it from {name}), '
        f'more than {BUDGET_SHARE:.0%} of the {available / 2**30:,.1f} GB '
        f'available here; use a smaller value')
  return total


def check_size(name: str, value: int, limit: int, why: str) -> None:
  """A hard bound for settings whose cost is not memory alone.

  Raises:
    ConfigError: value above limit.
  """
  if value > limit:
    raise errors.ConfigError(name, value, f'must be at most {limit:,} ({why})')
