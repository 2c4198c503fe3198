"""Sample quality: a Frechet distance in the features of a small classifier.

test_classifier_frechet_distance compares generated images (decoder means
at prior samples, as many as test images) with the test images, in the
128-d penultimate layer of a small conv classifier trained on the training
split (`feature_classifier`).  It is the FID recipe in another feature
space, NOT the Inception FID: compare it between models on the same data
only.  feature_classifier_test_accuracy says how good that feature space is;
train_test_classifier_frechet_distance (as many random training images as
test images, against the test images) is what a model that reproduces the
data would score, finite-sample bias included.
"""

import hashlib
import os
from typing import Optional

from absl import logging

import keras
import numpy as np
import tensorflow as tf

from tfp_vae.internal import progress as progress_lib

FEATURE_CLASSIFIER_VERSION = 1
# The feature classifier's seed: the same features for runs of every seed.
CLASSIFIER_SEED = 0


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
  """Frechet distance between Gaussians fit to feature sets a [N, F], b [M, F]:
  |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)).

  Tr (S_a S_b)^(1/2) is computed as the sum of square roots of the
  eigenvalues of S_a^(1/2) S_b S_a^(1/2) (symmetric PSD, same spectrum).
  """
  a = np.asarray(a, np.float64)
  b = np.asarray(b, np.float64)
  mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
  cov_a = np.cov(a, rowvar=False)
  cov_b = np.cov(b, rowvar=False)
  vals, vecs = np.linalg.eigh(cov_a)
  root_a = (vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T
  cross = np.linalg.eigvalsh(root_a @ cov_b @ root_a)
  trace_root = np.sum(np.sqrt(np.clip(cross, 0, None)))
  return float(np.sum((mu_a - mu_b)**2) + np.trace(cov_a) + np.trace(cov_b)
               - 2.0 * trace_root)


def _classifier_network(image_shape, num_classes) -> keras.Model:
  inputs = keras.Input(image_shape)
  h = keras.layers.Conv2D(32, 3, 2, 'same', activation='relu')(inputs)
  h = keras.layers.Conv2D(64, 3, 2, 'same', activation='relu')(h)
  h = keras.layers.Flatten()(h)
  features = keras.layers.Dense(128, activation='relu', name='features')(h)
  logits = keras.layers.Dense(num_classes, name='logits')(features)
  return keras.Model(inputs, [features, logits], name='feature_classifier')


def feature_classifier(train_images: np.ndarray,
                       train_labels: Optional[np.ndarray],
                       num_classes: int, cache_dir: Optional[str] = None,
                       epochs: int = 5, seed: int = 0) -> keras.Model:
  """A small conv classifier of the training split, for Frechet features.

  Trained with Adam (1e-3, batch 100, `epochs`) on float images in [0, 1].
  Without labels (None) it learns to tell the four flips of an image apart
  (none, left-right, up-down, both; `flip_task`) instead: a feature space
  of the data's own structure.  When `cache_dir` is set, weights are stored
  there under a hash of the training data and recipe, so every model
  evaluated on the same data is measured in the same feature space.

  Returns:
    A Keras model images -> (features [N, 128], logits [N, classes]).
  """
  if train_labels is None:
    train_images, train_labels = flip_task(train_images, seed)
    num_classes = FLIPS
  x = np.asarray(train_images, np.float32)
  y = np.asarray(train_labels, np.int64)
  digest = hashlib.sha1()
  for part in (x.tobytes(), y.tobytes(),
               repr((num_classes, epochs, seed,
                     FEATURE_CLASSIFIER_VERSION)).encode()):
    digest.update(part)
  path = (os.path.join(cache_dir, f'feature_classifier-'
                       f'{digest.hexdigest()[:16]}.weights.h5')
          if cache_dir else None)
  keras.utils.set_random_seed(seed)
  net = _classifier_network(x.shape[1:], num_classes)
  if path and os.path.exists(path):
    net.load_weights(path)
    return net
  trainer = keras.Model(net.input, net.output[1])
  trainer.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  jit_compile=False)
  bar = progress_lib.Progress(
      f'training the Frechet feature classifier on {len(x):,} images',
      epochs, unit='epochs')
  trainer.fit(x, y, batch_size=100, epochs=epochs, shuffle=True, verbose=0,
              callbacks=[keras.callbacks.LambdaCallback(
                  on_epoch_end=lambda *_: bar.update(1))])
  if path:
    # Evaluations running at once may train it at once: own temp names.
    tmp = f'{path}.tmp-{os.getpid()}.weights.h5'
    try:
      os.makedirs(cache_dir, exist_ok=True)
      net.save_weights(tmp)
      os.replace(tmp, path)
    except OSError as e:  # the cache is a saving, not a result
      logging.warning('could not cache the Frechet feature classifier in %s '
                      '(%s): the next evaluation trains it again', cache_dir,
                      e.strerror or e)
      if os.path.exists(tmp):
        os.remove(tmp)
  return net


FLIPS = 4


def flip_task(images: np.ndarray, seed: int = 0
              ) -> tuple[np.ndarray, np.ndarray]:
  """(images, labels): each image flipped by a seeded random one of the
  four flips, labelled by which (0 none, 1 left-right, 2 up-down, 3
  both)."""
  flips = np.random.default_rng(seed).integers(0, FLIPS, len(images))
  out = np.array(images, np.float32, copy=True)
  out[flips % 2 == 1] = out[flips % 2 == 1][:, :, ::-1]
  out[flips >= 2] = out[flips >= 2][:, ::-1]
  return out, flips.astype(np.int64)


def features(net: keras.Model, images: np.ndarray, batch_size: int = 500
             ) -> tuple[np.ndarray, np.ndarray]:
  """(features [N, 128], logits [N, classes]) of `images`, batched."""
  feats, logits = [], []
  for start in range(0, len(images), batch_size):
    f, l = net(tf.constant(images[start:start + batch_size]), training=False)
    feats.append(f.numpy())
    logits.append(l.numpy())
  return np.concatenate(feats), np.concatenate(logits)


def generate(model, num_images: int, seed: int = 0,
             batch_size: int = 500) -> np.ndarray:
  """Decoder means at `num_images` prior samples, float32 [N, H, W, C]."""
  codes = model.prior_distribution().sample(num_images, seed=(seed, 5))
  return np.concatenate([
      model.decode(codes[s:s + batch_size]).mean().numpy()
      for s in range(0, num_images, batch_size)])


def sample_quality(model, classifier: keras.Model,
                   train_images: np.ndarray, test_images: np.ndarray,
                   test_labels: Optional[np.ndarray], seed: int = 0
                   ) -> tuple[dict[str, float], np.ndarray]:
  """The three sample-quality metrics (module doc) and the generated
  images."""
  test_features, test_logits = features(classifier, test_images)
  generated = generate(model, len(test_images), seed=seed)
  out = {'test_classifier_frechet_distance': frechet_distance(
      features(classifier, generated)[0], test_features)}
  if test_labels is not None:
    out['feature_classifier_test_accuracy'] = float(
        np.mean(test_logits.argmax(axis=1) == test_labels))
  # A random subset: a split may be ordered by class (mnist_5k's is).
  picks = np.random.default_rng(seed).choice(
      len(train_images), min(len(test_images), len(train_images)),
      replace=False)
  out['train_test_classifier_frechet_distance'] = frechet_distance(
      features(classifier, train_images[np.sort(picks)])[0], test_features)
  return out, generated
