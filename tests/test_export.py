"""The SavedModel loads without TFP or this package and matches the model."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfp_vae import config as config_lib
from tfp_vae import export
from tfp_vae import models

_LOADER = r'''
import json, sys
import numpy as np
import tensorflow as tf
path, inputs = sys.argv[1], np.load(sys.argv[2])
m = tf.saved_model.load(path)
out = {
  'encode': m.signatures['encode'](images=tf.constant(inputs['images'])),
  'decode': m.signatures['decode'](codes=tf.constant(inputs['codes'])),
  'reconstruct': m.signatures['reconstruct'](
      images=tf.constant(inputs['images'])),
  'serving_default': m.signatures['serving_default'](
      images=tf.constant(inputs['images'])),
}
np.savez(sys.argv[3], **{f'{s}/{k}': v.numpy() for s, o in out.items()
                         for k, v in o.items()})
assert 'tensorflow_probability' not in sys.modules
assert not any(name.startswith('tfp_vae') for name in sys.modules)
print(json.dumps(sorted(m.signatures.keys())))
'''


@pytest.mark.parametrize('name', ['vae', 'mmd_vae'])
def test_export_loads_in_a_fresh_tensorflow_only_process(tmp_path, name,
                                                         mnist_5k):
  config = config_lib.TrainConfig(model=name, latent_dim=3).validate()
  model = models.build_model(config, (28, 28, 1))
  path = export.export_savedmodel(model, (28, 28, 1), str(tmp_path))
  assert path == os.path.join(str(tmp_path), '1')
  images = mnist_5k.test_images[:5].astype(np.float32) / 255
  codes = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  np.savez(tmp_path / 'in.npz', images=images, codes=codes)
  r = subprocess.run(
      [sys.executable, '-c', _LOADER, path, str(tmp_path / 'in.npz'),
       str(tmp_path / 'out.npz')], capture_output=True, text=True,
      timeout=300)
  assert r.returncode == 0, r.stderr
  assert json.loads(r.stdout.strip().splitlines()[-1]) == [
      'decode', 'encode', 'reconstruct', 'serving_default']
  out = np.load(tmp_path / 'out.npz')
  posterior = model.encode(tf.constant(images))
  np.testing.assert_allclose(out['encode/code_mean'], posterior.mean(),
                             atol=1e-5)
  np.testing.assert_allclose(out['encode/code_stddev'], posterior.stddev(),
                             atol=1e-5)
  np.testing.assert_allclose(out['serving_default/code_mean'],
                             posterior.mean(), atol=1e-5)
  np.testing.assert_allclose(out['decode/images'],
                             model.decode(tf.constant(codes)).mean(),
                             atol=1e-5)
  np.testing.assert_allclose(out['reconstruct/reconstructions'],
                             model(tf.constant(images)), atol=1e-5)
  if name == 'mmd_vae':
    np.testing.assert_array_equal(out['encode/code_stddev'], 0.0)


def test_versions_increase_and_failed_export_leaves_nothing(tmp_path,
                                                            monkeypatch):
  config = config_lib.TrainConfig(latent_dim=2).validate()
  model = models.build_model(config, (28, 28, 1))
  export.export_savedmodel(model, (28, 28, 1), str(tmp_path))
  export.export_savedmodel(model, (28, 28, 1), str(tmp_path))
  assert export.versions(str(tmp_path)) == [1, 2]

  class HalfWritten:
    """Writes part of a SavedModel, then fails as a full disk would."""

    def write_out(self, path, **kwargs):
      with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
        f.write(b'partial')
      raise RuntimeError('disk full')

  monkeypatch.setattr(export, 'build_archive', lambda *a: HalfWritten())
  with pytest.raises(RuntimeError, match='disk full'):
    export.export_savedmodel(model, (28, 28, 1), str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ['1', '2']
