"""The server's pieces without a server: the JSON / tf.Example / TensorProto
codec, TF Serving's status codes, models.config parsing, version policies
and the version-folder layout."""

import base64
import os

import numpy as np
import pytest
import tensorflow as tf

from tfp_vae.internal import layout
from tfp_vae.serving import codec
from tfp_vae.serving import model_config
from tfp_vae.serving import servable as servable_lib
from tfp_vae.serving import status
from tfp_vae.serving import tensor_protos
from tfp_vae.serving import tf_examples


def _refused(fn, *args) -> str:
  with pytest.raises(status.Status) as e:
    fn(*args)
  assert e.value.code == 'INVALID_ARGUMENT'
  return e.value.message


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


def test_examples_and_context_are_merged_as_tf_serving_does():
  signature, examples, context = tf_examples.parse_examples_body({
      'signature_name': 'regress', 'context': {'x': 1.0, 'tag': 'ctx'},
      'examples': [{}, {'x': 2.0, 'n': [1, 2], 'flag': True}]}, 'regress')
  assert signature == 'regress'
  tensor = tf_examples.serialized_examples(examples, context)
  parsed = tf.io.parse_example(tensor, {
      'x': tf.io.FixedLenFeature([1], tf.float32),
      'tag': tf.io.FixedLenFeature([1], tf.string),
      'n': tf.io.FixedLenFeature([2], tf.int64, default_value=[0, 0]),
      'flag': tf.io.FixedLenFeature([1], tf.int64, default_value=[0])})
  assert parsed['x'].numpy().tolist() == [[1.0], [2.0]]  # example wins
  assert parsed['tag'].numpy().tolist() == [[b'ctx'], [b'ctx']]
  assert parsed['n'].numpy().tolist() == [[0, 0], [1, 2]]
  assert parsed['flag'].numpy().tolist() == [[0], [1]]
  for body, message in (
      ({}, "needs 'examples'"), ({'examples': []}, 'empty list'),
      ({'examples': [3]}, 'example 0 must be a JSON object'),
      ({'examples': [{'x': [1, 2.5]}]}, "feature 'x' mixes int64 and float"),
      ({'examples': [{'x': None}]}, 'unexpected JSON type'),
      ({'examples': [{}], 'context': []}, "'context' must be a JSON object")):
    assert message in _refused(tf_examples.parse_examples_body, body,
                               'classify')


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


def test_status_codes_map_as_tf_serving_maps_them():
  assert status.invalid_argument('x').http_status == 400
  assert status.not_found('x').http_status == 404
  for error, code, http_status in (
      (tf.errors.ResourceExhaustedError, 'RESOURCE_EXHAUSTED', 429),
      (tf.errors.UnavailableError, 'UNAVAILABLE', 503),
      (tf.errors.DeadlineExceededError, 'DEADLINE_EXCEEDED', 504),
      (tf.errors.FailedPreconditionError, 'FAILED_PRECONDITION', 400),
      (tf.errors.UnimplementedError, 'UNIMPLEMENTED', 501),
      (tf.errors.InternalError, 'INTERNAL', 500)):
    found = status.from_tf_error(error(None, None, 'm').error_code, 'm')
    assert (found.code, found.http_status) == (code, http_status)
  with pytest.raises(ValueError, match='must be an error code'):
    status.Status('OK', 'no')


def test_model_config_file_policies_labels_and_errors(tmp_path):
  path = tmp_path / 'models.config'
  path.write_text('''
    model_config_list {
      config { name: "a" base_path: "/m/a" model_platform: "tensorflow" }
      config { name: "b" base_path: "/m/b"
               model_version_policy { latest { num_versions: 2 } } }
      config { name: "c" base_path: "/m/c"
               model_version_policy { specific { versions: 3 versions: 1 } }
               version_labels { key: "stable" value: 1 } }
      config { name: "d" base_path: "/m/d" model_version_policy { all {} } }
    }''')
  a, b, c, d = model_config.read_model_config_file(str(path))
  assert (a.name, a.base_path, a.policy) == (
      'a', '/m/a', model_config.VersionPolicy('latest', 1))
  on_disk = [1, 2, 3, 4]
  assert a.policy.select(on_disk) == [4]
  assert b.policy.select(on_disk) == [3, 4]
  assert c.policy.select(on_disk) == [1, 3] and c.labels == {'stable': 1}
  assert d.policy.select(on_disk) == on_disk
  for text, message in (
      ('model_config_list { config { name: "a" } } x', 'is not a text '
       'ModelServerConfig'),
      ('model_config_list { }', 'lists no model'),
      ('model_config_list { config { name: "a" base_path: "/x" } '
       'config { name: "a" base_path: "/y" } }', "names ['a'] more than once"),
      ('model_config_list { config { name: "a" base_path: "/x" '
       'model_platform: "onnx" } }', "model_platform 'onnx'"),
      ('model_config_list { config { name: "a" } }', 'base_path is empty'),
  ):
    path.write_text(text)
    with pytest.raises(model_config.ServingError) as e:
      model_config.read_model_config_file(str(path))
    assert message in str(e.value)


def test_version_folders_may_have_leading_zeros(tmp_path):
  for name in ('00000123', '7', '.tmp-1-x', '0042'):
    os.makedirs(tmp_path / name)
  (tmp_path / '9').write_text('a file, not a version')
  assert layout.version_dirs(str(tmp_path)) == {7: '7', 42: '0042',
                                                123: '00000123'}
  assert layout.versions(str(tmp_path)) == [7, 42, 123]
  assert layout.versions(str(tmp_path / 'missing')) == []


def test_the_session_loader_runs_signatures_as_tf_serving_does(tmp_path):
  """The TF1 Session path (for graphs tf.saved_model.load cannot import,
  such as TF Serving's half_plus_three from TF 1.0) feeds a value of any
  shape, as TF Serving's Session::Run does."""
  from tests.half_plus_two import build_half_plus_two_tf1  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / '00000123')
  build_half_plus_two_tf1(path, str(tmp_path / 'assets'))
  # pylint: disable=protected-access
  model = servable_lib._SessionModel(path,
                                     servable_lib._signature_defs(path))
  # pylint: enable=protected-access
  y = model.signatures['serving_default'](
      x=np.array([2.0, 3.0, 4.0], np.float32))['y']  # declared [?, 1]
  assert y.numpy().tolist() == [3.0, 3.5, 4.0]
  example = tf.train.Example()
  example.features.feature['x'].float_list.value.append(2.0)
  out = model.signatures['regress_x_to_y2'](
      inputs=np.array([example.SerializeToString()], object))['outputs']
  assert out.numpy().tolist() == [[4.0]]
