"""SavedModels for TF Serving: every signature in a TensorFlow-only process,
the TF1 session loader, input checks, layout, models.config, client."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import BAD, REPO, run_cli
from tfp_vae.config import settings as config_lib
from tfp_vae.model import export
from tfp_vae.internal import layout
from tfp_vae.model import models
from tfp_vae.training import rundir
from tfp_vae.training import trained as trained_lib
from tfp_vae.training import run as training

# One worker runs this file: its module fixtures (trained runs, servers)
# are built once, not once per worker (`make test` uses --dist loadgroup).
pytestmark = pytest.mark.xdist_group('export')

SHAPE = (28, 28, 1)

_LOADER = r'''
import json, sys
import numpy as np
import tensorflow as tf

path, inputs = sys.argv[1], np.load(sys.argv[2])
m = tf.saved_model.load(path)
images = tf.constant(inputs['images'])
out = {
  'encode': m.signatures['encode'](images=images),
  'decode': m.signatures['decode'](codes=tf.constant(inputs['codes'])),
  'reconstruct': m.signatures['reconstruct'](images=images),
  'sample': m.signatures['sample'](num_samples=tf.constant(5, tf.int64),
                                   seed=tf.constant(7, tf.int64)),
  'log_likelihood': m.signatures['log_likelihood'](images=images),
  'serving_default': m.signatures['serving_default'](images=images),
}
np.savez(sys.argv[3], **{f'{s}/{k}': v.numpy() for s, o in out.items()
                         for k, v in o.items()})
assert 'tensorflow_probability' not in sys.modules
assert not any(name.startswith('tfp_vae') for name in sys.modules)
print(json.dumps(sorted(m.signatures.keys())))
'''


def _run_loader(path, tmp_path, mnist_5k, timeout):
  """Six test images and four codes through every signature of the
  SavedModel at `path`, in a process that imports TensorFlow only:
  (images, codes, {signature/output: array}, the signatures' names)."""
  images = mnist_5k.test_images[::100][:6].astype(np.float32) / 255
  codes = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
  np.savez(tmp_path / 'in.npz', images=images, codes=codes)
  r = subprocess.run(
      [sys.executable, '-c', _LOADER, path, str(tmp_path / 'in.npz'),
       str(tmp_path / 'out.npz')], capture_output=True, text=True,
      timeout=timeout)
  assert r.returncode == 0, r.stderr[-3000:]
  names = json.loads(r.stdout.strip().splitlines()[-1])
  return images, codes, np.load(tmp_path / 'out.npz'), names


@pytest.fixture(scope='module', params=['vae', 'mmd_vae'])
def exported(request, tmp_path_factory):
  config = config_lib.TrainConfig.create(model=request.param, latent_dim=3).validate()
  model = models.build_model(config, SHAPE)
  export_dir = str(tmp_path_factory.mktemp(request.param) / 'vae')
  path = export.export_savedmodel(model, SHAPE, export_dir)
  return model, path, export_dir


@pytest.mark.slow
def test_every_signature_in_a_tensorflow_only_process(exported, tmp_path,
                                                      mnist_5k):
  model, path, _ = exported
  images, codes, out, names = _run_loader(path, tmp_path, mnist_5k, 300)
  assert names == sorted(
      ['decode', 'encode', 'log_likelihood', 'reconstruct', 'sample',
       'serving_default'])
  x = tf.constant(images)
  posterior = model.encode(x)
  close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  close(out['encode/code_mean'], posterior.mean())
  close(out['encode/code_stddev'], posterior.stddev())
  assert out['encode/code_sample'].shape == (6, 3)
  close(out['serving_default/code_mean'], posterior.mean())
  close(out['decode/images'], model.decode(tf.constant(codes)).mean())
  close(out['reconstruct/reconstructions'], model(x))
  prior_codes = model.prior_distribution().sample(5, seed=(7, 0))
  close(out['sample/codes'], prior_codes)
  close(out['sample/images'], model.decode(prior_codes).mean())
  close(out['log_likelihood/log_likelihood'], export.log_likelihood(model, x))
  if model.member.name == 'mmd_vae':
    np.testing.assert_array_equal(out['encode/code_stddev'], 0.0)
    np.testing.assert_array_equal(out['encode/code_sample'],
                                  out['encode/code_mean'])


@pytest.mark.slow
def test_pixel_cnn_signatures_in_a_tensorflow_only_process(tmp_path,
                                                          mnist_5k):
  """The autoregressive likelihood's generation (a while loop over pixels)
  and its log-probability, served from the SavedModel without TFP."""
  config = config_lib.TrainConfig.create(
      model='vae', likelihood='pixel_cnn', latent_dim=3).validate()
  model = models.build_model(config, SHAPE)
  path = export.export_savedmodel(model, SHAPE, str(tmp_path / 'vae'))
  images, codes, out, _ = _run_loader(path, tmp_path, mnist_5k, 600)
  close = lambda a, b: np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)
  close(out['decode/images'], model.decode(tf.constant(codes)).mean())
  prior_codes = model.prior_distribution().sample(5, seed=(7, 0))
  close(out['sample/images'], model.decode(prior_codes).mean())
  assert out['reconstruct/reconstructions'].shape == (6,) + SHAPE
  close(out['log_likelihood/log_likelihood'],
        export.log_likelihood(model, tf.constant(images)))


@pytest.mark.slow
def test_log_likelihood_estimates_are_sound(exported, mnist_5k):
  model, _, _ = exported
  x = tf.constant(mnist_5k.test_images[:4].astype(np.float32) / 255)
  ll = export.log_likelihood(model, x, num_samples=64).numpy()
  assert ll.shape == (4,) and np.all(np.isfinite(ll)) and np.all(ll < 0)
  if model.member.name == 'vae':
    # The 64-draw ELBO agrees with an independent 200-draw estimate.
    q = model.encode(x)
    z = q.sample(200, seed=(1, 1))
    recon = tf.reduce_mean(tf.stack([model.decode(zi).log_prob(x)
                                     for zi in tf.unstack(z)]), 0)
    kl = q.kl_divergence(model.prior_distribution())
    np.testing.assert_allclose(ll, recon - kl, rtol=0.01)
  else:
    # Importance sampling: more samples never lower the estimate much, and
    # it is finite and below 0 for every image.
    more = export.log_likelihood(model, x, num_samples=256).numpy()
    assert np.all(more > ll - 1.0)


@pytest.mark.slow
def test_saved_model_cli_show_and_run(exported, tmp_path):
  """TF's own tool reads every signature of both members and runs their
  encoders; the decoder and the input check, the same code in every
  member, run for the VAE only (each run is a TensorFlow start)."""
  model, path, _ = exported
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  shown = subprocess.run([cli, 'show', '--dir', path, '--all'],
                         capture_output=True, text=True, timeout=120)
  assert shown.returncode == 0, shown.stderr[-2000:]
  text = shown.stdout
  for sig in ('encode', 'decode', 'reconstruct', 'sample', 'log_likelihood',
              'serving_default'):
    assert f"signature_def['{sig}']" in text
  assert "inputs['images'] tensor_info:\n        dtype: DT_FLOAT" in text
  assert "inputs['num_samples'] tensor_info:\n        dtype: DT_INT64" in text
  assert ("outputs['code_mean'] tensor_info:\n        dtype: DT_FLOAT\n"
          "        shape: (-1, 3)") in text
  assert ("outputs['images'] tensor_info:\n        dtype: DT_FLOAT\n"
          "        shape: (-1, 28, 28, 1)") in text
  np.save(tmp_path / 'images.npy', np.full((2, 28, 28, 1), 0.5, np.float32))
  np.save(tmp_path / 'codes.npy', np.zeros((2, 3), np.float32))
  runs = [('encode', f'images={tmp_path}/images.npy'),
          ('decode', f'codes={tmp_path}/codes.npy')]
  if model.member.name != 'vae':
    runs = runs[:1]
  for sig, arg in runs:
    r = subprocess.run([cli, 'run', '--dir', path, '--tag_set', 'serve',
                        '--signature_def', sig, '--inputs', arg],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'Result for output key' in r.stdout
  if model.member.name != 'vae':
    return
  np.save(tmp_path / 'bad.npy', np.zeros((2, 28, 28), np.float32))
  r = subprocess.run([cli, 'run', '--dir', path, '--tag_set', 'serve',
                      '--signature_def', 'encode', '--inputs',
                      f'images={tmp_path}/bad.npy'],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode != 0
  assert 'images must have shape [batch, 28, 28, 1]' in r.stderr




@pytest.mark.parametrize('sig,inputs,message,got', BAD)
@pytest.mark.slow
def test_bad_inputs_fail_with_invalid_argument(exported, sig, inputs,
                                               message, got):
  _, path, _ = exported
  loaded = tf.saved_model.load(path)
  with pytest.raises(tf.errors.InvalidArgumentError) as e:
    loaded.signatures[sig](**{k: tf.constant(v) for k, v in inputs.items()})
  assert message in e.value.message
  assert got in e.value.message


def test_sample_seed_minus_one_draws_fresh_samples(exported):
  _, path, _ = exported
  sample = tf.saved_model.load(path).signatures['sample']
  n, fresh = tf.constant(3, tf.int64), tf.constant(-1, tf.int64)
  a, b = sample(num_samples=n, seed=fresh), sample(num_samples=n, seed=fresh)
  assert not np.array_equal(a['codes'], b['codes'])
  assert sample(num_samples=tf.constant(0, tf.int64),
                seed=fresh)['images'].shape == (
      0, 28, 28, 1)


def test_models_config_parses_with_tensorflow_serving_protos(exported):
  from google.protobuf import text_format  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.config import model_server_config_pb2  # pylint: disable=g-import-not-at-top
  _, _, export_dir = exported
  with open(os.path.join(export_dir, 'models.config')) as f:
    parsed = text_format.Parse(f.read(),
                               model_server_config_pb2.ModelServerConfig())
  (entry,) = parsed.model_config_list.config
  assert entry.name == 'vae' and entry.base_path == '/models/vae'
  assert entry.model_platform == 'tensorflow'
  assert entry.model_version_policy.latest.num_versions == 1


def _client():
  """The client's protocol library (deploy/serving/protocols.py)."""
  spec = importlib.util.spec_from_file_location(
      'protocols', os.path.join(REPO, 'deploy', 'serving', 'protocols.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_client_builds_documented_requests():
  client = _client()
  images = np.zeros((2, 28, 28, 1), np.float32)
  body = client.rest_body('encode', {'images': images})
  assert body['signature_name'] == 'encode'
  assert np.asarray(body['instances']).shape == (2, 28, 28, 1)
  json.dumps(body)  # serialisable
  columnar = client.rest_body('sample', {'num_samples': 4, 'seed': 0},
                              row_format=False)
  assert columnar == {'signature_name': 'sample',
                      'inputs': {'num_samples': 4, 'seed': 0}}
  with pytest.raises(ValueError, match='row format needs exactly one'):
    client.rest_body('sample', {'num_samples': 4, 'seed': 0})
  request = client.predict_request('vae', 'sample',
                                   {'num_samples': 4, 'seed': 0})
  assert request.model_spec.name == 'vae'
  assert request.model_spec.signature_name == 'sample'
  assert request.inputs['num_samples'].dtype == tf.int64.as_datatype_enum
  request = client.predict_request('vae', 'encode', {'images': images})
  assert tf.make_ndarray(request.inputs['images']).shape == (2, 28, 28, 1)
  assert request.IsInitialized()


@pytest.mark.slow
def test_versions_increase_and_failed_export_leaves_nothing(tmp_path,
                                                            monkeypatch):
  config = config_lib.TrainConfig.create(latent_dim=2).validate()
  model = models.build_model(config, SHAPE)
  export.export_savedmodel(model, SHAPE, str(tmp_path))
  export.export_savedmodel(model, SHAPE, str(tmp_path))
  assert layout.versions(str(tmp_path)) == [1, 2]

  class HalfWritten:
    """Writes part of a SavedModel, then fails as a full disk would."""

    def write_out(self, path, **kwargs):
      with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
        f.write(b'partial')
      raise RuntimeError('disk full')

  monkeypatch.setattr(export, 'build_archive', lambda *a: HalfWritten())
  with pytest.raises(RuntimeError, match='disk full'):
    export.export_savedmodel(model, SHAPE, str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ['1', '2', 'models.config']


@pytest.mark.slow
def test_trainers_export_from_a_checkpoint(tmp_path, mnist_5k):
  model_dir = str(tmp_path / 'run')
  training.run(config_lib.TrainConfig.create(epochs=1, batch_size=500, plot_every=0,
                                      model_dir=model_dir, verbose=False))
  export_dir = str(tmp_path / 'export' / 'digits')
  r = run_cli('trainers.export', f'--model_dir={model_dir}',
              f'--export_dir={export_dir}')
  assert r.returncode == 0, r.stderr[-2000:]
  assert r.stdout.strip().endswith(os.path.join('digits', '1'))
  trained, _, _ = trained_lib.load_trained_model(model_dir)
  loaded = tf.saved_model.load(os.path.join(export_dir, '1'))
  x = tf.constant(mnist_5k.test_images[:3].astype(np.float32) / 255)
  np.testing.assert_allclose(
      loaded.signatures['encode'](images=x)['code_mean'],
      trained.encode(x).mean(), atol=1e-5)
  with open(os.path.join(export_dir, 'models.config')) as f:
    assert 'name: "digits"' in f.read()
  missing = run_cli('trainers.export', f'--model_dir={tmp_path}/none',
                    f'--export_dir={export_dir}')
  assert missing.returncode == 1
  assert 'holds no readable training run' in missing.stderr
  assert 'Traceback' not in missing.stderr


@pytest.mark.slow
def test_saved_model_cli_does_not_wrap_large_integers(exported):
  _, path, _ = exported
  cli = os.path.join(os.path.dirname(sys.executable), 'saved_model_cli')
  r = subprocess.run([cli, 'run', '--dir', path, '--tag_set', 'serve',
                      '--signature_def', 'sample', '--input_exprs',
                      'num_samples=4294967301;seed=0'],
                     capture_output=True, text=True, timeout=120)
  assert r.returncode != 0
  assert 'num_samples must be a scalar in [0, 10000]' in r.stderr
  assert '4294967301' in r.stderr


def test_batches_at_the_limit_pass_above_it_are_refused_empty_is_empty(
    tmp_path):
  config = config_lib.TrainConfig.create(latent_dim=3).validate()
  model = models.build_model(config, SHAPE)
  path = export.export_savedmodel(model, SHAPE, str(tmp_path / 'small'),
                                  max_batch=4)
  sigs = tf.saved_model.load(path).signatures
  at_limit = tf.fill([4, 28, 28, 1], 0.5)
  assert sigs['encode'](images=at_limit)['code_mean'].shape == (4, 3)
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='images must hold at most 4 examples'):
    sigs['log_likelihood'](images=tf.fill([5, 28, 28, 1], 0.5))
  with pytest.raises(tf.errors.InvalidArgumentError,
                     match='codes must hold at most 4 examples'):
    sigs['decode'](codes=tf.zeros([5, 3]))
  empty = tf.zeros([0, 28, 28, 1])
  assert sigs['encode'](images=empty)['code_sample'].shape == (0, 3)
  assert sigs['reconstruct'](images=empty)['reconstructions'].shape == (
      0, 28, 28, 1)
  assert sigs['log_likelihood'](images=empty)['log_likelihood'].shape == (0,)
  assert sigs['decode'](codes=tf.zeros([0, 3]))['images'].shape == (
      0, 28, 28, 1)


_PEAK = r'''
import resource, sys
import tensorflow as tf
sigs = tf.saved_model.load(sys.argv[1]).signatures
x = tf.fill([int(sys.argv[2]), 28, 28, 1], 0.5)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = sigs[sys.argv[3]](images=x)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) / 1024)
'''


@pytest.mark.parametrize('signature', ['log_likelihood', 'reconstruct'])
@pytest.mark.slow
def test_memory_of_a_request_at_the_batch_limit_is_bounded(exported,
                                                            signature):
  """log_likelihood used to take 11.6 GB for 4,000 images; it now works
  64 images at a time.  The growth of peak memory over the loaded model,
  for a request of the default maximum batch, stays small."""
  _, path, _ = exported
  r = subprocess.run([sys.executable, '-c', _PEAK, path,
                      str(config_lib.MAX_BATCH), signature],
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr[-2000:]
  grown_mb = float(r.stdout.strip().splitlines()[-1])
  assert grown_mb < 600, f'{signature} grew peak RSS by {grown_mb:.0f} MB'


_FRESH = r'''
import sys
import tensorflow as tf

sample = tf.saved_model.load(sys.argv[1]).signatures['sample']
out = sample(num_samples=tf.constant(2, tf.int64),
             seed=tf.constant(-1, tf.int64))['codes']
print(repr(out.numpy().ravel().tolist()))
'''


@pytest.mark.slow
def test_seed_minus_one_is_fresh_in_every_process(exported):
  _, path, _ = exported
  draws = [subprocess.run([sys.executable, '-c', _FRESH, path],
                          capture_output=True, text=True,
                          timeout=300).stdout.strip().splitlines()[-1]
           for _ in range(2)]
  assert draws[0] != draws[1]
