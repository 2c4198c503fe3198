"""tfp_vae/internal/tensorflow_internals.py: every use of TensorFlow's
internals, exercised against the installed version, so that an upgrade that
moves or changes one fails here, by name.  Keras's and the Kubernetes
client's are in tests/internal/test_keras_internals.py and
tests/deploy/test_kubernetes_internals.py."""

import errno
import os

import numpy as np
import tensorflow as tf

from tfp_vae.internal import tensorflow_internals as tf_internals


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
