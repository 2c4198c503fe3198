"""TF Serving's half_plus_two SavedModels, built as its testdata script
(servables/tensorflow/testdata/saved_model_half_plus_two.py) builds them:
TF1 with SavedModelBuilder and tf.Example signatures, TF2 with
tf.saved_model.save.  Shared by the serving tests (no network here, and
nothing fetched is committed)."""

import os

import tensorflow as tf

v1 = tf.compat.v1



def _feature_spec():
  return {'x': v1.FixedLenFeature([1], dtype=tf.float32),
          'x2': v1.FixedLenFeature([1], dtype=tf.float32, default_value=[0.0])}


def build_half_plus_two_tf1(export_dir: str, assets_dir: str) -> None:
  """saved_model_half_plus_two.py's TF1 model (CPU), y = 0.5 x + 2."""
  os.makedirs(assets_dir, exist_ok=True)
  asset = os.path.join(assets_dir, 'foo.txt')
  with open(asset, 'w') as f:
    f.write('asset-file-contents')
  builder = v1.saved_model.builder.SavedModelBuilder(export_dir)
  with tf.Graph().as_default(), v1.Session() as sess:
    a = v1.Variable(0.5, name='a')
    b = v1.Variable(2.0, name='b')
    c = v1.Variable(3.0, name='c')
    serialized = v1.placeholder(tf.string, name='tf_example', shape=[None])
    example = v1.parse_example(serialized, _feature_spec())
    x = tf.identity(example['x'], name='x')
    y = tf.identity(tf.add(tf.multiply(a, x), b), name='y')
    y2 = tf.identity(tf.add(tf.multiply(a, x), c), name='y2')
    x2 = tf.identity(example['x2'], name='x2')
    a2 = v1.Variable(0.5, name='a2')
    c2 = v1.Variable(3.0, name='c2')
    y3 = tf.identity(tf.add(tf.multiply(a2, x2), c2), name='y3')
    assets_path = tf.constant(asset)
    v1.add_to_collection(v1.GraphKeys.ASSET_FILEPATHS, assets_path)
    filename = v1.Variable('foo.txt', name='filename_tensor', trainable=False,
                           collections=[])
    assign_filename = filename.assign('foo.txt')
    info = v1.saved_model.utils.build_tensor_info
    build = v1.saved_model.signature_def_utils.build_signature_def
    keys = v1.saved_model.signature_constants

    def regression(inputs, outputs):
      return build({keys.REGRESS_INPUTS: info(inputs)},
                   {keys.REGRESS_OUTPUTS: info(outputs)},
                   keys.REGRESS_METHOD_NAME)

    signatures = {
        'regress_x_to_y': regression(serialized, y),
        'regress_x_to_y2': regression(serialized, y2),
        'regress_x2_to_y3': regression(x2, y3),
        'classify_x_to_y': build(
            {keys.CLASSIFY_INPUTS: info(serialized)},
            {keys.CLASSIFY_OUTPUT_SCORES: info(y)},
            keys.CLASSIFY_METHOD_NAME),
        keys.DEFAULT_SERVING_SIGNATURE_DEF_KEY: build(
            {'x': info(x)}, {'y': info(y)}, keys.PREDICT_METHOD_NAME),
    }
    sess.run(v1.global_variables_initializer())
    builder.add_meta_graph_and_variables(
        sess, [v1.saved_model.tag_constants.SERVING],
        signature_def_map=signatures,
        assets_collection=v1.get_collection(v1.GraphKeys.ASSET_FILEPATHS),
        main_op=tf.group(assign_filename))
  builder.save()


class HalfPlusTwo(tf.Module):
  """saved_model_half_plus_two.py's native TF2 model; `b` is 2 (half plus
  two) or 3 (half plus three)."""

  def __init__(self, b: float = 2.0):
    super().__init__()
    self.a = tf.Variable(0.5, name='a')
    self.b = tf.Variable(b, name='b')
    self.c = tf.Variable(3.0, name='c')

  def compute(self, x, inc):
    return tf.add(tf.multiply(self.a, x), inc)

  @tf.function(input_signature=[tf.TensorSpec(shape=[1], dtype=tf.float32)])
  def predict(self, x):
    return {'y': self.compute(x, self.b)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='inputs')])
  def regress_xy(self, serialized_proto):
    x = tf.io.parse_example(serialized_proto, _feature_spec())['x']
    return {'outputs': self.compute(x, self.b)}

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                              name='inputs')])
  def classify_xy(self, serialized_proto):
    x = tf.io.parse_example(serialized_proto, _feature_spec())['x']
    return {'scores': self.compute(x, self.b)}


def build_half_plus_two_tf2(export_dir: str, b: float = 2.0) -> None:
  model = HalfPlusTwo(b)
  tf.saved_model.save(model, export_dir, signatures={
      'regress_x_to_y': model.regress_xy,
      'classify_x_to_y': model.classify_xy,
      'serving_default': model.predict})
