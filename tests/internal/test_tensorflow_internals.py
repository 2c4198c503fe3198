"""tfp_vae/internal/keras_internals.py, tensorflow_internals.py and
deploy/kubernetes_internals.py: every use of a dependency's internals,
exercised against the installed version, so that an upgrade that moves or
changes one fails here, by name."""

import errno
import os
import sys

import keras
import numpy as np
import tensorflow as tf

from tests.helpers import REPO
from tfp_vae.internal import keras_internals as keras_internals
from tfp_vae.internal import tensorflow_internals as tf_internals

sys.path.insert(0, os.path.join(REPO, 'deploy'))
import kubernetes_internals  # pylint: disable=g-import-not-at-top,wrong-import-position


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


def test_tensorflow_op_seed_state_is_read_and_put_back():
  tf.random.set_seed(5)
  saved = tf_internals.op_seed_state()
  assert saved[0] == 5 and saved[1] is not None
  tf.random.set_seed(6)
  tf_internals.restore_op_seed_state(saved)
  assert tf_internals.op_seed_state() == saved


def test_a_session_is_fed_whatever_the_shape_as_tf_serving_does():
  graph = tf.Graph()
  with graph.as_default():
    x = tf.compat.v1.placeholder(tf.float32, [None, 1], name='x')
    y = x * 0.5 + 2.0
  with tf.compat.v1.Session(graph=graph) as session:
    call = tf_internals.session_caller(session, {'x': x}, [y])
    # Session.run refuses a [3] feed for a [?, 1] tensor; TF Serving does not.
    (value,) = call(x=np.float32([1.0, 2.0, 5.0]))
  np.testing.assert_allclose(value, [2.5, 3.0, 4.5])


def test_the_errno_of_a_tensorflow_file_error_is_read_from_its_text():
  try:
    tf.io.gfile.GFile('/nonexistent-dir/file').read()
  except tf.errors.OpError as e:
    assert os.strerror(errno.ENOENT) in str(e)
    assert tf_internals.errno_of(e) == errno.ENOENT
  try:
    tf.io.write_file('/proc/tfp-vae-test', 'x')
  except tf.errors.OpError as e:
    assert tf_internals.errno_of(e) is not None, str(e)
  assert tf_internals.errno_in_text(
      f'write failed: {os.strerror(errno.ENOSPC)}') == errno.ENOSPC
  assert tf_internals.errno_of(ValueError('No space left on device')) is None


def test_the_kubernetes_client_builds_and_refuses_its_models_from_dicts():
  from kubernetes import client  # pylint: disable=g-import-not-at-top
  api = client.ApiClient()
  job = kubernetes_internals.deserialize(
      api, {'metadata': {'name': 'x'}, 'spec': {'template': {}}}, 'V1Job')
  assert isinstance(job, client.V1Job) and job.metadata.name == 'x'
  try:
    kubernetes_internals.deserialize(api, {'spec': {}}, 'V1Job')
  except (ValueError, TypeError) as e:
    assert 'template' in str(e)
  else:
    raise AssertionError('a JobSpec without its template was accepted')
