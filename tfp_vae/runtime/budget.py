"""Memory a run would need, estimated before anything is built, and the
memory this machine (or container) has.

The estimate counts what grows with the settings:

  parameters   the networks' weights, which grow linearly with latent_dim
               (measured by building the networks at latent sizes 1 and 2:
               exact for these architectures), each held four times
               (weights, gradients, Adam's two moments);
  activations  every layer's output per image (measured on the networks),
               times the batch, times the member's codes per image (the
               IWAE's importance samples), kept for the backward pass;
  the prior    what its declaration says it adds
               (`components.Prior.memory_bytes`: a mixture's parameters and
               [codes, K, latent] densities, a VampPrior's K pseudo-images
               encoded every step).

It is multiplied by OVERHEAD for TensorFlow's temporaries and allocator
slack.  `check` refuses a run whose estimate exceeds BUDGET_SHARE of the
available memory, naming the setting that contributes most.
"""

import dataclasses
import math
import resource
from typing import Optional

from tfp_vae.family import components
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.runtime import plan as plan_lib

BYTES_PER_FLOAT = components.FLOAT_BYTES
COPIES_OF_PARAMETERS = components.PARAMETER_COPIES  # weights, grads, Adam m, v
OVERHEAD = 2.0
BUDGET_SHARE = 0.8


def peak_rss_mb() -> int:
  """This process's peak resident memory in MB: VmHWM where Linux gives it
  (ru_maxrss keeps a forking parent's peak across exec), else ru_maxrss."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('VmHWM:'):
          return int(line.split()[1]) // 1024
  except OSError:
    pass
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


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
                   encoder_outputs: int) -> tuple[int, int, int]:
  """(parameters, activations per image, encoder activations per image) of
  the encoder and decoder networks at `latent`."""
  arch = components.ARCHITECTURES.get(architecture)()
  encoder = arch.encoder(image_shape, encoder_outputs)
  decoder = arch.decoder(latent, image_shape)

  def activations(net):
    return sum(math.prod(layer.output.shape[1:]) for layer in net.layers)

  enc = activations(encoder)
  return (encoder.count_params() + decoder.count_params(),
          enc + activations(decoder), enc)


def estimate(config: config_lib.TrainConfig,
             the_plan: plan_lib.Plan) -> dict[str, float]:
  """Estimated bytes by the setting they grow with: {'latent_dim': ...,
  'prior_components': ..., 'batch_size': ...} (before OVERHEAD); the
  member's samples per image (`family.Member.samples_setting`) replace
  'batch_size' when they multiply it."""
  model, image_shape, member = config.model, the_plan.image_shape, (
      the_plan.member)
  encoder, _, prior, _ = the_plan.parts
  p1, act, enc_act = _network_sizes(model.architecture, image_shape, 1,
                                    encoder.outputs(1))
  p2, _, _ = _network_sizes(model.architecture, image_shape, 2,
                            encoder.outputs(2))
  latent = model.latent_dim
  per_param = BYTES_PER_FLOAT * COPIES_OF_PARAMETERS
  out = {'latent_dim': float(p1 + (p2 - p1) * (latent - 1)) * per_param}
  samples = member.samples_per_image()
  batch = config.trainer.batch_size
  prior_bytes = prior.memory_bytes(latent, model.prior_components,
                                   image_shape, batch * samples, enc_act)
  if prior_bytes:
    out['prior_components'] = prior_bytes
  # Forward activations kept for the backward pass, and their gradients.
  activations = float(batch) * samples * act * BYTES_PER_FLOAT * 2
  out[member.samples_setting if samples > 1 else 'batch_size'] = activations
  return out


def check(config: config_lib.TrainConfig, the_plan: plan_lib.Plan,
          available: Optional[int] = None) -> float:
  """Refuses a run that would not fit in memory; returns the estimate in
  bytes (OVERHEAD included).

  Raises:
    ConfigError: naming the setting that contributes most, with the
      estimate and what is available.
  """
  parts = estimate(config, the_plan)
  total = OVERHEAD * sum(parts.values())
  available = available_bytes() if available is None else available
  if available and total > BUDGET_SHARE * available:
    name = max(parts, key=parts.get)
    flat = {**config.flat(), **dataclasses.asdict(the_plan.member)}
    raise errors.ConfigError(
        name, flat.get(name),
        f'would need about {total / 2**30:,.1f} GB of memory '
        f'({OVERHEAD * parts[name] / 2**30:,.1f} GB of it from {name}), '
        f'more than {BUDGET_SHARE:.0%} of the {available / 2**30:,.1f} GB '
        f'available here; use a smaller value')
  return total
