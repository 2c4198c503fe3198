"""tfp_vae/nn/pixelcnn.py: --likelihood=pixel_cnn, an autoregressive decoder
that can model images without the code: its masks, its exact windowed
generation, its reduction to the Bernoulli decoder, and a model with it
that trains, saves, resumes exactly and samples."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

import tfp_vae
from tfp_vae.nn import pixelcnn

tfd = tfp.distributions
SHAPE = (28, 28, 1)


@pytest.fixture(scope='module')
def digits():
  (x_train, _), (x_test, _) = tfp_vae.datasets.load_data('mnist_5k')
  return x_train[:200], x_test[:8]


@pytest.fixture(scope='module')
def decoder():
  """A random PixelCNN decoder on a random code network."""
  keras.utils.set_random_seed(0)
  network = keras.Sequential([keras.Input((2,)), keras.layers.Dense(784),
                              keras.layers.Reshape(SHAPE)])
  layer = pixelcnn.PixelCNNDecoder(network, SHAPE, name='decoder')
  layer.build((None, 2))
  # Larger masked weights than the initialiser's, so that every window
  # position matters to the checks below.
  for v in layer.weights:
    if 'kernel' in v.path and 'dense' not in v.path:
      v.assign(v * 3.0)
  return layer


def test_the_masks_see_only_earlier_pixels():
  a = pixelcnn.causal_mask(3, 1, 1, include_centre=False)[..., 0, 0]
  b = pixelcnn.causal_mask(3, 1, 1, include_centre=True)[..., 0, 0]
  np.testing.assert_array_equal(a, [[1, 1, 1], [1, 0, 0], [0, 0, 0]])
  np.testing.assert_array_equal(b, [[1, 1, 1], [1, 1, 0], [0, 0, 0]])


def test_a_pixels_logit_depends_on_earlier_pixels_only(decoder):
  rng = np.random.default_rng(1)
  images = rng.uniform(size=(1,) + SHAPE).astype(np.float32)
  context = decoder.network(tf.constant([[0.3, -0.2]]))
  logits = decoder.logits(images, context).numpy().ravel()
  for pixel in (0, 37, 400, 783):
    changed = images.copy().reshape(1, -1)
    changed[0, pixel:] = rng.uniform(size=784 - pixel)
    after = decoder.logits(changed.reshape(images.shape),
                           context).numpy().ravel()
    np.testing.assert_array_equal(after[:pixel + 1], logits[:pixel + 1])
    if pixel < 783:  # the next pixel's logit reads this one (mask B)
      only = images.copy().reshape(1, -1)
      only[0, pixel] = 1.0 - only[0, pixel]
      moved = decoder.logits(only.reshape(images.shape),
                             context).numpy().ravel()
      np.testing.assert_array_equal(moved[:pixel + 1], logits[:pixel + 1])
      assert moved[pixel + 1] != logits[pixel + 1], pixel


def test_generation_is_exact_on_its_windows(decoder):
  """The image generated from its own probabilities is what the full-image
  logits say it should be, to float precision, though each pixel's logits
  were computed on a window of the image."""
  codes = tf.constant([[0.0, 0.0], [1.5, -1.0], [-2.0, 0.5]])
  p = decoder(codes)
  mean = p.mean().numpy()
  full = tf.sigmoid(decoder.logits(mean, p.context)).numpy()
  np.testing.assert_allclose(mean, full, atol=1e-5)
  assert p.batch_shape == [3] and p.event_shape == list(SHAPE)
  drawn = p.sample(2, seed=(4, 5)).numpy()
  assert drawn.shape == (2, 3) + SHAPE
  assert set(np.unique(drawn)) <= {0.0, 1.0}
  np.testing.assert_array_equal(drawn, p.sample(2, seed=(4, 5)).numpy())
  assert not np.array_equal(drawn[0], drawn[1])
  # The first pixel depends on the code only: over many draws its
  # frequency of ones is its probability (3 standard errors).
  many = decoder(tf.repeat(codes[1:2], 400, axis=0))
  first = many.sample(seed=(6, 7)).numpy()[:, 0, 0, 0]
  p_first = float(tf.sigmoid(decoder.logits(
      tf.zeros((1,) + SHAPE), many.context[:1])[0, 0, 0, 0]))
  assert abs(first.mean() - p_first) < 3 * np.sqrt(
      p_first * (1 - p_first) / 400) + 1e-3, (first.mean(), p_first)
  assert p.sample(0, seed=(1, 2)).shape == (0, 3) + SHAPE
  # On binary images, log p is TFP's Bernoulli log-probability of each
  # pixel at its logit (the soft-label cross-entropy is the same formula).
  binary = drawn[1]
  np.testing.assert_allclose(
      p.log_prob(binary),
      tfd.Independent(tfd.Bernoulli(logits=decoder.logits(
          binary, p.context)), 3).log_prob(binary), rtol=1e-5)


def test_with_its_output_layer_at_zero_it_is_the_bernoulli_decoder(decoder):
  keep = [v.numpy() for v in decoder.out.weights]
  try:
    for v in decoder.out.weights:
      v.assign(tf.zeros_like(v))
    codes = tf.constant([[0.2, 0.1], [-1.0, 2.0]])
    images = np.random.default_rng(2).uniform(size=(2,) + SHAPE)
    images = tf.constant(images, tf.float32)
    bernoulli = tfd.Independent(
        tfd.Bernoulli(logits=decoder.network(codes), dtype=tf.float32), 3)
    np.testing.assert_allclose(decoder(codes).log_prob(images),
                               bernoulli.log_prob(images), rtol=1e-6)
    np.testing.assert_allclose(decoder(codes).mean(), bernoulli.mean(),
                               atol=1e-6)
  finally:
    for v, value in zip(decoder.out.weights, keep):
      v.assign(value)


def test_a_model_with_it_fits_saves_and_scores(digits, tmp_path):
  x_train, x_test = digits
  model = tfp_vae.InfoVAE(latent_dim=2, likelihood='pixel_cnn', seed=1)
  model.compile()
  history = model.fit(x_train, batch_size=50, epochs=1, verbose=0)
  assert np.isfinite(history.history['loss']).all()
  drawn = model.sample(3, seed=2)
  assert drawn.shape == (3,) + SHAPE and 0 <= drawn.min() <= drawn.max() <= 1
  log_p = model.log_likelihood(x_test, num_samples=4)
  assert log_p.shape == (8,) and np.isfinite(log_p).all()
  path = str(tmp_path / 'pixel_cnn.keras')
  model.save(path)
  loaded = tfp_vae.load(path)
  np.testing.assert_array_equal(loaded.reconstruct(x_test[:2]),
                                model.reconstruct(x_test[:2]))


@pytest.mark.slow
def test_a_run_with_it_resumes_exactly_and_exports(digits, tmp_path):
  x_train, x_test = digits
  data = (x_train, np.arange(len(x_train)) % 10)
  run = dict(batch_size=50, plot_every=0, verbose=False)
  # Latent 3: the final plots draw traversals, not the 400-image grid.
  straight = tfp_vae.VAE(latent_dim=3, likelihood='pixel_cnn', seed=3)
  tfp_vae.fit(straight, data, epochs=2, model_dir=str(tmp_path / 'a'),
              export_dir=str(tmp_path / 'export'), **run)
  resumed = tfp_vae.VAE(latent_dim=3, likelihood='pixel_cnn', seed=3)
  tfp_vae.fit(resumed, data, epochs=1, model_dir=str(tmp_path / 'b'), **run)
  tfp_vae.fit(resumed, data, epochs=2, model_dir=str(tmp_path / 'b'), **run)
  for a, b in zip(straight.get_weights(), resumed.get_weights()):
    np.testing.assert_array_equal(a, b)
  with open(tmp_path / 'b' / 'config.json') as f:
    assert json.load(f)['model']['likelihood'] == 'pixel_cnn'
  assert os.path.exists(tmp_path / 'b' / 'metrics.json')
  # The SavedModel generates pixel by pixel in its decode and sample
  # signatures, as the Python model does.
  served = tf.saved_model.load(str(tmp_path / 'export' / '1'))
  codes = straight.encode(x_test[:2]).mean()
  np.testing.assert_allclose(
      served.signatures['decode'](codes=codes)['images'],
      straight.decode(codes).mean(), atol=1e-5)
  images = served.signatures['sample'](num_samples=tf.constant(3, tf.int64),
                                       seed=tf.constant(1, tf.int64))['images']
  assert images.shape == (3,) + SHAPE
