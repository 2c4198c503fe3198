"""Keras 3 internals used by the package, each for want of a public API.

- `reduce_per_replica`: Keras's reduction of per-replica step outputs (the
  mean over local replicas, a collective mean across workers), which its
  own train function applies; the package's multi-step train function
  (`models.make_multi_step_train_function`) must reduce exactly as Keras
  does.  Keras exports no reduction.
- `global_seed_state` / `restore_global_seed_state`: Keras's global seed
  and seed generator, which `keras.utils.set_random_seed` replaces and no
  public API reads back; `models.seeded` gives them back after a seeded
  block.
"""

from typing import Any


def reduce_per_replica(outputs: Any, strategy: Any) -> Any:
  """Per-replica step outputs reduced as Keras's train function does."""
  # pylint: disable=g-import-not-at-top
  from keras.src.backend.tensorflow.trainer import reduce_per_replica as reduce
  return reduce(outputs, strategy, reduction='auto')


def _global_keys() -> tuple[str, ...]:
  # pylint: disable=g-import-not-at-top
  from keras.src.random import seed_generator
  from keras.src.utils import rng_utils
  return (rng_utils.GLOBAL_RANDOM_SEED, seed_generator.GLOBAL_SEED_GENERATOR)


def global_seed_state() -> dict[str, Any]:
  """Keras's global seed and seed generator, as they are now."""
  from keras.src.backend.common import global_state  # pylint: disable=g-import-not-at-top
  return {k: global_state.get_global_attribute(k) for k in _global_keys()}


def restore_global_seed_state(state: dict[str, Any]) -> None:
  """Puts back what `global_seed_state` returned."""
  from keras.src.backend.common import global_state  # pylint: disable=g-import-not-at-top
  for key, value in state.items():
    global_state.set_global_attribute(key, value)
