"""Arrays to and from TensorProtos, as TF Serving's gRPC API carries them:
replies with their values in the typed fields, requests read whatever the
client sent."""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import tensor_shape_pb2

from tfp_vae.serving import status

_FIELDS = {
    np.dtype(np.float32): 'float_val', np.dtype(np.float64): 'double_val',
    np.dtype(np.int32): 'int_val', np.dtype(np.int16): 'int_val',
    np.dtype(np.int8): 'int_val', np.dtype(np.uint8): 'int_val',
    np.dtype(np.uint16): 'int_val', np.dtype(np.int64): 'int64_val',
    np.dtype(np.uint32): 'uint32_val', np.dtype(np.uint64): 'uint64_val',
    np.dtype(np.bool_): 'bool_val',
}


def tensor_proto(array: np.ndarray) -> tensor_pb2.TensorProto:
  """An array as a TensorProto with its values in the typed fields
  (float_val, int64_val, string_val, ...), as TF Serving writes replies
  by default (Tensor::AsProtoField)."""
  array = np.asarray(array)
  proto = tensor_pb2.TensorProto()
  if array.dtype.kind in 'OSU':
    proto.dtype = tf.string.as_datatype_enum
    proto.string_val.extend(
        v if isinstance(v, bytes) else str(v).encode('utf-8')
        for v in array.ravel())
  elif array.dtype in _FIELDS:
    proto.dtype = tf.as_dtype(array.dtype).as_datatype_enum
    getattr(proto, _FIELDS[array.dtype]).extend(array.ravel().tolist())
  else:  # float16, bfloat16, complex: TensorFlow's own encoding
    return tf.make_tensor_proto(array)
  proto.tensor_shape.CopyFrom(tensor_shape_pb2.TensorShapeProto(
      dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d)
           for d in array.shape]))
  return proto


def from_tensor_proto(name: str, proto: tensor_pb2.TensorProto
                      ) -> np.ndarray:
  """A request's TensorProto as an array.

  Raises:
    Status: INVALID_ARGUMENT naming the input when it cannot be read.
  """
  try:
    return tf.make_ndarray(proto)
  except (TypeError, ValueError) as e:
    raise status.invalid_argument(
        f'input {name!r}: the TensorProto cannot be read ({e})') from None
