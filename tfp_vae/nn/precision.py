"""The package's mixed-precision policy, in one place.

Under `--precision=mixed_bfloat16` or `mixed_float16` the networks' hidden
layers compute in 16 bits with float32 weights (Keras's mixed policies).
What is numerically sensitive stays in float32, for every member,
likelihood, prior and architecture, because it is applied here, where
`models.build_model` builds the networks, and not by each part:

  outputs        the last layer of every network that has weights, and any
                 weightless layers after it (a Reshape): the decoder's logits
                 or means and the encoder's location and raw scale.  A code
                 rounded to bfloat16's 8-bit mantissa is what the MMD kernel
                 and the decoder would otherwise see.
  distributions  network outputs are cast to float32 before a distribution
                 is built (`as_float32`), so the encoder's softplus scale,
                 the likelihood's log-probability, the prior, the MMD kernel
                 and its sums, and every reduction over pixels and batches
                 compute in float32: TFP's distributions compute in their
                 parameters' dtype.

Two more parts can be kept for measuring what each is worth
(`bench/train_throughput.py`'s `keep=`); measured on `cpu-avx512-bf16`,
neither brought the MMD-VAE's bfloat16 test loss within the guard at both
seeds, so neither is part of `POLICY` (docs/performance.md):

  encoder        the whole encoder network: it makes the codes the MMD
                 kernel sees (about 17% of a step);
  decoder_input  the decoder's first layer with weights and any weightless
                 layers before it.

`POLICY` is what the package keeps; a run records it (`plan.Runtime`).
`keeping` changes it for a measurement only: `bench/train_throughput.py`'s
`keep=distributions` variant is the policy before `outputs` was added (the
one whose MMD-VAE lost test loss in bfloat16 on `cpu-avx512-bf16`:
docs/performance.md), against today's
`keep=outputs+distributions`.  Loss scaling under mixed_float16 is the trainer's
(`training/run.py`); evaluation, plots and exports compute in float32 whatever
the training precision (`models.in_float32`).
"""

import contextlib
from typing import Iterable, Iterator

from absl import logging

# Keras is imported where it is used: the plan records `kept()` without
# loading TensorFlow.
PARTS = ('outputs', 'distributions', 'encoder', 'decoder_input')
POLICY = frozenset({'outputs', 'distributions'})
_kept = POLICY


def kept() -> frozenset:
  """The parts kept in float32 now (`POLICY` unless inside `keeping`)."""
  return _kept


def checked(parts: Iterable[str]) -> frozenset:
  """`parts` as a set that `keeping` accepts.

  Raises:
    ValueError: a part that is not one of `PARTS`, or parts without
      `distributions` (the losses need it).
  """
  parts = frozenset(parts)
  unknown = sorted(parts - set(PARTS))
  if unknown:
    raise ValueError(f'unknown float32 part(s) {unknown}: the parts are '
                     f'{", ".join(PARTS)}')
  if 'distributions' not in parts:
    # Measured: TFP distributions built from bfloat16 parameters meet the
    # float32 prior, noise and images inside the losses and fail there.
    raise ValueError('the distributions part cannot be dropped: the losses '
                     'mix its distributions with float32 priors, noise and '
                     'images')
  return parts


@contextlib.contextmanager
def keeping(parts: Iterable[str]) -> Iterator[None]:
  """Models built inside keep only `parts` in float32: for measuring what
  each part is worth, not for training the package's models.

  Raises:
    ValueError: as `checked`.
  """
  global _kept  # pylint: disable=global-statement
  previous, _kept = _kept, checked(parts)
  try:
    yield
  finally:
    _kept = previous


@contextlib.contextmanager
def scope(precision: str) -> Iterator[None]:
  """Keras layers built inside compute in `precision` (a Keras dtype policy
  name: float32, mixed_bfloat16, mixed_float16); the global policy is
  restored on exit."""
  import keras  # pylint: disable=g-import-not-at-top
  previous = keras.config.dtype_policy()
  keras.config.set_dtype_policy(precision)
  try:
    yield
  finally:
    keras.config.set_dtype_policy(previous)


def _end_layers(network, from_last: bool) -> list:
  """The layers from one end of `network.layers` (in order of computation
  for Sequential and functional models) up to and including the first with
  weights, entering a nested model; empty when none has weights.  From the
  last: what the `outputs` part keeps in float32; from the first: what
  `decoder_input` keeps."""
  import keras  # pylint: disable=g-import-not-at-top
  layers = list(getattr(network, 'layers', None) or [])
  end = []
  for layer in reversed(layers) if from_last else layers:
    if isinstance(layer, keras.Model):
      inner = _end_layers(layer, from_last)
      end.extend(inner)
      if inner and inner[-1].weights:
        return end
      continue
    end.append(layer)
    if layer.weights:
      return end
  return []


def _all_layers(network) -> list:
  import keras  # pylint: disable=g-import-not-at-top
  layers = []
  for layer in getattr(network, 'layers', None) or []:
    layers.extend(_all_layers(layer) if isinstance(layer, keras.Model)
                  else [layer])
  return layers


def apply(network, role: str = ''):
  """`network` (role 'encoder' or 'decoder'), built under a mixed policy by
  `scope` and called once (its layers have their weights), with the kept
  parts set to float32: `outputs` (every network), `encoder`,
  `decoder_input`; a no-op in float32.  A network whose output layer cannot
  be found (a subclassed model without `layers`) keeps its own dtypes and
  says so; its outputs are still cast (`as_float32`)."""
  if network.compute_dtype == 'float32':
    return network
  layers = []
  if 'outputs' in _kept:
    layers = _end_layers(network, from_last=True)
    if not layers:
      logging.warning('mixed precision: no layer with weights found in '
                      'network %s; its last layer computes in %s (only its '
                      'outputs are cast to float32)', network.name,
                      network.compute_dtype)
  if 'encoder' in _kept and role == 'encoder':
    layers = layers + _all_layers(network)
  if 'decoder_input' in _kept and role == 'decoder':
    layers = layers + _end_layers(network, from_last=False)
  for layer in layers:
    layer.dtype_policy = 'float32'
  return network


def as_float32(outputs):
  """A network's outputs in float32 before any distribution is built from
  them (the `distributions` part): a no-op when the network computes in
  float32."""
  if 'distributions' not in _kept:
    return outputs
  import keras  # pylint: disable=g-import-not-at-top
  return keras.ops.cast(outputs, 'float32')
