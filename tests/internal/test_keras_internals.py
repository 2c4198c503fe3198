"""tfp_vae/internal/keras_internals.py: every use of Keras's internals,
exercised against the installed version, so that an upgrade that moves or
changes one fails here, by name."""

import keras
import tensorflow as tf

from tfp_vae.internal import keras_internals as keras_internals


def test_keras_reduces_per_replica_outputs_to_their_mean():
  strategy = tf.distribute.MirroredStrategy(['/cpu:0'])
  outputs = strategy.run(lambda: {'loss': tf.constant(3.0)})
  reduced = keras_internals.reduce_per_replica(outputs, strategy)
  assert float(reduced['loss']) == 3.0


def test_keras_global_seed_state_is_read_and_put_back():
  keras.utils.set_random_seed(7)
  saved = keras_internals.global_seed_state()
  assert len(saved) == 2 and 7 in saved.values()
  keras.utils.set_random_seed(8)
  keras_internals.restore_global_seed_state(saved)
  assert keras_internals.global_seed_state() == saved
