"""The JSON codec (tfp_vae/serving/codec.py): arrays from JSON values,
predict bodies row and columnar, replies, V2 tensor metadata, and their
refusals.  The server's other pieces without a server have their modules'
test files in tests/serving/."""

import base64

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import refused as _refused
from tfp_vae.serving import codec


def test_to_array_numbers_strings_b64_and_booleans():
  np.testing.assert_array_equal(codec.to_array('x', [[1, 2]], tf.float32),
                                np.array([[1, 2]], np.float32))
  assert codec.to_array('x', [[1, 2]], tf.float32).dtype == np.float32
  got = codec.to_array('s', [['a', {'b64': base64.b64encode(b'\0\xff')
                                   .decode()}]], tf.string)
  assert got.shape == (1, 2) and got.tolist() == [[b'a', b'\0\xff']]
  assert codec.to_array('s', 'one', tf.string).shape == ()
  assert codec.to_array('b', [True, False], tf.bool).tolist() == [True, False]
  assert 'must hold integers' in _refused(codec.to_array, 'n', 2.5, tf.int64)
  assert 'out of range for int8' in _refused(codec.to_array, 'n', 300,
                                             tf.int8)
  assert 'must hold numbers' in _refused(codec.to_array, 'x', ['a'],
                                         tf.float32)
  assert 'must hold strings' in _refused(codec.to_array, 's', [1], tf.string)
  assert 'not valid base64' in _refused(codec.to_array, 's', {'b64': '!!'},
                                        tf.string)
  assert 'not formatted correctly for base64' in _refused(
      codec.to_array, 's', {'b64': 'QQ==', 'x': 1}, tf.string)
  assert 'not a rectangular array' in _refused(
      codec.to_array, 's', [['a'], ['b', 'c']], tf.string)
  assert 'must hold booleans' in _refused(codec.to_array, 'b', [1], tf.bool)


def test_parse_predict_body_row_and_columnar():
  dtypes = {'a': tf.float32, 'b': tf.string}
  arrays, row = codec.parse_predict_body(
      {'instances': [{'a': 1, 'b': 'x'}, {'a': 2, 'b': {'b64': 'eQ=='}}]},
      dtypes, 10)
  assert row and arrays['a'].tolist() == [1.0, 2.0]
  assert arrays['b'].tolist() == [b'x', b'y']
  arrays, row = codec.parse_predict_body({'inputs': {'a': [1], 'b': ['x']}},
                                         dtypes, 10)
  assert not row and arrays['a'].shape == (1,)
  # A lone input: b64 objects in instances are values, not named inputs.
  arrays, _ = codec.parse_predict_body({'instances': [{'b64': 'eQ=='}]},
                                       {'s': tf.string}, 10)
  assert arrays['s'].tolist() == [b'y']
  one = {'a': tf.float32}
  for body, dt, message in (
      ({'instances': []}, one, 'empty list'),
      ({'instances': [1], 'inputs': [1]}, one, "exactly one of 'instances'"),
      ({'instances': [1, 2, 3]}, one, 'above this server\'s limit of 2'),
      ({'inputs': [1]}, dtypes, 'takes 2 inputs'),
      ({'instances': [{'a': 1}]}, dtypes, "instance 0 has inputs ['a']"),
      ({'signature_name': 3, 'inputs': {}}, one, 'signature_name must be'),
      ({'inputs': {'a': [1], 'c': [2]}}, dtypes,
       "missing ['b']; unknown ['c']"),
  ):
    assert message in _refused(codec.parse_predict_body, body, dt, 2), body


def test_predict_reply_formats_and_bytes_outputs():
  outputs = {'y': np.array([[1.0], [2.0]], np.float32),
             'id_bytes': np.array([b'\0', b'a'], object),
             'label': np.array([b'cat', b'dog'], object)}
  reply = codec.predict_reply(outputs, row_format=True)
  assert [{k: (v.tolist() if hasattr(v, 'tolist') else v)
           for k, v in row.items()} for row in reply['predictions']] == [
      {'id_bytes': {'b64': 'AA=='}, 'label': 'cat', 'y': [1.0]},
      {'id_bytes': {'b64': 'YQ=='}, 'label': 'dog', 'y': [2.0]}]
  reply = codec.predict_reply({'y': outputs['y']}, row_format=False)
  assert reply['outputs'].tolist() == [[1.0], [2.0]]
  # Bytes that are not UTF-8 under another name: b64, not broken text.
  assert codec.json_value('raw', np.array([b'\xff'], object)) == [
      {'b64': '/w=='}]
  assert 'do not share a batch size' in _refused(
      codec.predict_reply, {'a': np.zeros(2), 'b': np.zeros(3)}, True)


def test_v2_tensor_metadata():
  from tensorflow.core.protobuf import meta_graph_pb2  # pylint: disable=g-import-not-at-top
  info = meta_graph_pb2.TensorInfo(
      name='t:0', dtype=tf.int64.as_datatype_enum,
      tensor_shape=tf.TensorShape([None, 3]).as_proto())
  assert codec.v2_tensor_metadata('t', info) == {
      'name': 't', 'datatype': 'INT64', 'shape': [-1, 3]}
  info.tensor_shape.unknown_rank = True
  del info.tensor_shape.dim[:]
  assert codec.v2_tensor_metadata('t', info)['shape'] == [-1]
