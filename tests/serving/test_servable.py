"""Servables (tfp_vae/serving/servable.py): the TF1 Session path."""

import numpy as np
import tensorflow as tf

from tfp_vae.serving import servable as servable_lib


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
