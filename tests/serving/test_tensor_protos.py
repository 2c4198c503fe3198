"""TensorProtos (tfp_vae/serving/tensor_protos.py) with TF Serving's typed
fields."""

import numpy as np
import tensorflow as tf

from tfp_vae.serving import tensor_protos


def test_tensor_proto_uses_typed_fields_like_tf_serving():
  proto = tensor_protos.tensor_proto(np.array([[1.5, 2.0]], np.float32))
  assert list(proto.float_val) == [1.5, 2.0] and not proto.tensor_content
  assert [d.size for d in proto.tensor_shape.dim] == [1, 2]
  np.testing.assert_array_equal(tf.make_ndarray(proto), [[1.5, 2.0]])
  proto = tensor_protos.tensor_proto(np.array([b'a', b'b'], object))
  assert list(proto.string_val) == [b'a', b'b']
  assert list(tensor_protos.tensor_proto(
      np.array([3], np.int64)).int64_val) == [3]
  assert list(tensor_protos.tensor_proto(np.array(True)).bool_val) == [True]
