"""Evaluation of a trained model on held-out images.

Every metric is an estimate over the test split; likelihoods are in nats per
image (higher log-likelihood is better, lower negative ELBO is better).

Cheap metrics, computed at the end of every training run (`evaluate`):

* test_reconstruction_nll: -log p(x|z) at one z ~ q(z|x) per image (for the
  deterministic encoder, z is the code itself).
* test_rate (Gaussian encoders): KL(q(z|x) || p(z)) in closed form, or for
  a prior without one (mixture, vamp) the one-sample estimate
  log q(z|x) - log p(z).
* test_neg_elbo (Gaussian encoders): test_reconstruction_nll + test_rate,
  an unbiased estimate of -ELBO.  Not defined for the MMD-VAE, whose point-mass posterior
  has infinite KL to the prior, so the key is left out there.
* test_mmd_to_prior: MMD^2 (sources' kernel, biased estimate) between one
  code per test image (z ~ q(z|x)) and as many prior samples: how well the
  aggregate posterior q(z) matches p(z).  Near 0 means q(z) fills the prior.
  On test sets larger than 2,000 images, 2,000 random codes (seeded).
* test_active_units: the number of latent dimensions u with
  Cov_x(E_q(z|x)[z_u]) > 0.01 (Burda et al. 2016), the posterior means taken
  over the test images.
* test_loss: the model's training objective on the test set (one z per
  image; the MMD over the whole set, with the model's kernel; for the IWAE,
  its k-sample bound).

Costlier metrics (`evaluate_all`, used by trainers.evaluate and
trainers.compare):

* test_iwae_log_likelihood: the importance-weighted bound (Burda et al.)
  log p(x) >= E[log (1/k) sum_i p(x|z_i) p(z_i) / r(z_i|x)], z_i ~ r(z|x),
  with k = test_iwae_samples.  r is q(z|x) for the Gaussian encoder.  The
  MMD-VAE's q(z|x) is a point mass, which cannot be a proposal (its density
  ratio is undefined), so r = N(f(x), s^2 I) around the code f(x), s =
  `proposal_scale` (test_iwae_proposal_scale).  Any proposal gives a lower
  bound in expectation that tightens to log p(x) as k grows; the proposal
  only changes how fast.  With the Bernoulli likelihood on grey-level pixels
  p(x|z) is the sources' cross-entropy, not a normalised density: compare
  these numbers between models, not with binarised-MNIST literature.
* test_knn_accuracy, test_logreg_accuracy: latent probes (`tfp_vae.probes`,
  scikit-learn): a 5-nearest-neighbour classifier and a multinomial logistic
  regression fit on the posterior means of the training split and scored on
  those of the test split; the labels are used by the probes only.
* test_classifier_frechet_distance: a Frechet distance between generated
  images (decoder means at prior samples, as many as test images) and the
  test images, in the 128-d penultimate layer of a small conv classifier
  trained on the training split (`feature_classifier`).  It is the FID
  recipe in another feature space, NOT the Inception FID: compare it between
  models on the same data only.  feature_classifier_test_accuracy says how
  good that feature space is; train_test_classifier_frechet_distance (as
  many random training images as test images, against the test images) is
  what a model that reproduces the data would score, finite-sample bias
  included.
"""

import hashlib
import os
import weakref
from typing import Any, Optional

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae import losses
from tfp_vae import models as models_lib
from tfp_vae import probes
from tfp_vae import progress as progress_lib

tfd = tfp.distributions

ACTIVE_UNIT_THRESHOLD = 0.01
MMD_MAX_CODES = 2000
DEFAULT_PROPOSAL_SCALE = 0.1
_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {name: tf.function}


def _cached(model, name, build):
  """One traced function per (model, name), so repeated evaluation (every
  epoch) does not retrace."""
  functions = _FUNCTIONS.setdefault(model, {})
  if name not in functions:
    functions[name] = build()
  return functions[name]


def encode_all(model: models_lib.LatentVariableModel, images: np.ndarray,
               batch_size: int = 500, seed: int = 0,
               progress: Optional[str] = None) -> dict[str, np.ndarray]:
  """Per-image terms and codes for `images`; with `progress`, a step name to
  log progress under (`tfp_vae.progress`).

  Returns:
    {'code_mean': [N, latent], 'code_sample': [N, latent],
     'distortion': [N], and for Gaussian posteriors 'rate': [N]}.
  """

  def build():
    @tf.function(reduce_retracing=True, autograph=False)
    def batch_terms(x, seed_and_step):
      posterior = model.encode(x)
      codes = model.sample_codes(posterior, seed_and_step)
      out = {'code_mean': posterior.mean(), 'code_sample': codes,
             'distortion': losses.distortion(model.decode(codes), x)}
      if isinstance(posterior, tfd.MultivariateNormalDiag):
        out['rate'] = losses.rate(posterior, model.prior_distribution(),
                                  codes, 'analytic')
      return out
    return batch_terms

  batch_terms = _cached(model, 'encode_all', build)
  bar = progress_lib.Progress(progress, len(images)) if progress else None
  parts = []
  for i, start in enumerate(range(0, len(images), batch_size)):
    x = tf.constant(images[start:start + batch_size])
    parts.append({k: v.numpy() for k, v in
                  batch_terms(x, tf.constant([seed, i], tf.int32)).items()})
    if bar:
      bar.update(len(x))
  return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def active_units(code_means: np.ndarray,
                 threshold: float = ACTIVE_UNIT_THRESHOLD
                 ) -> tuple[int, np.ndarray]:
  """Number of units with Cov_x(E_q[z_u]) > threshold, and every variance."""
  variances = np.var(np.asarray(code_means, np.float64), axis=0)
  return int(np.sum(variances > threshold)), variances


def evaluate(model: models_lib.LatentVariableModel, images: np.ndarray,
             seed: int = 0) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """The cheap test metrics (module doc) and the per-image arrays behind
  them."""
  terms = encode_all(model, images, seed=seed)
  out: dict[str, Any] = {
      'test_reconstruction_nll': float(terms['distortion'].mean()),
  }
  codes = terms['code_sample']
  if len(codes) > MMD_MAX_CODES:  # the kernel matrices are N x N
    picks = np.random.default_rng(seed).choice(len(codes), MMD_MAX_CODES,
                                               replace=False)
    codes = codes[np.sort(picks)]
  codes = tf.constant(codes)
  prior_samples = model.prior_distribution().sample(
      len(codes), seed=(seed, 2))
  mmd = float(losses.mmd(codes, prior_samples))
  out['test_mmd_to_prior'] = mmd
  out['test_active_units'] = active_units(terms['code_mean'])[0]
  if 'rate' in terms:
    out['test_rate'] = float(terms['rate'].mean())
    out['test_neg_elbo'] = float((terms['distortion'] + terms['rate']).mean())
  out['test_loss'] = _test_loss(model, images, terms, seed, codes,
                                prior_samples)
  return out, terms


def _test_loss(model, images, terms, seed, codes, prior_samples) -> float:
  """The model's training objective on the test set: one code per image,
  the MMD (with the model's kernel) over the whole set."""
  if isinstance(model, models_lib.IWAE):
    return float(-iwae_log_likelihood(model, images, model.num_samples,
                                      seed=seed).mean())
  loss = terms['distortion'].mean()
  if 'rate' in terms:
    loss += model.rate_weight * terms['rate'].mean()
  if getattr(model, 'mmd_weight', 0.0):
    loss += model.mmd_weight * float(losses.mmd(
        codes, prior_samples, model.kernel, model.unbiased_mmd))
  return float(loss)


# -- likelihood ------------------------------------------------------------


def proposal(posterior: tfd.Distribution, scale: float) -> tfd.Distribution:
  """The importance-sampling proposal r(z|x): q(z|x) itself, or for a point
  mass a Gaussian of standard deviation `scale` around it."""
  if isinstance(posterior, tfd.VectorDeterministic):
    loc = posterior.loc
    return tfd.MultivariateNormalDiag(
        loc=loc, scale_diag=tf.fill(tf.shape(loc), tf.cast(scale, loc.dtype)))
  return posterior


def log_importance_weights(model, images: tf.Tensor, num_samples: int,
                           seed: tf.Tensor,
                           proposal_scale: float = DEFAULT_PROPOSAL_SCALE
                           ) -> tf.Tensor:
  """log p(x|z_i) + log p(z_i) - log r(z_i|x) for z_i ~ r(z|x), [k, B].

  `model` needs `encode(x) -> q(z|x)`, `decode(z) -> p(x|z)` and
  `prior_distribution()`; r is q(z|x), or for a point-mass q a Gaussian of
  scale `proposal_scale` around it.
  """
  r = proposal(model.encode(images), proposal_scale)
  codes = r.sample(num_samples, seed=seed)  # [k, B, latent]
  return losses.log_importance_weights(images, r,
                                       model.prior_distribution(),
                                       model.decode, codes)


def iwae_log_likelihood(model, images: np.ndarray, num_samples: int = 100,
                        seed: int = 0,
                        proposal_scale: float = DEFAULT_PROPOSAL_SCALE,
                        images_per_call: int = 2000) -> np.ndarray:
  """The k-sample importance-weighted estimate of log p(x), per image [N].

  Work is batched so that one call decodes about `images_per_call` latent
  samples (images x samples), whatever k is: memory stays bounded and k =
  1000 on 1,000 test images is 1M decodes in 500 calls.  The k samples of an
  image are drawn in chunks and combined with a running logsumexp.

  Args:
    model: see `log_importance_weights`.
    images: [N, H, W, C] float32.
    num_samples: k >= 1.
    seed: draws are a deterministic function of (seed, batch, chunk).
    proposal_scale: see `log_importance_weights`.
    images_per_call: memory/throughput knob.

  Returns:
    float64 [N] estimates in nats.
  """
  if num_samples < 1:
    raise ValueError(f'num_samples must be >= 1, got {num_samples}')
  chunk = min(num_samples, images_per_call)
  batch = max(1, images_per_call // chunk)

  def build():
    @tf.function(reduce_retracing=True, autograph=False)
    def weights(x, k, seed_pair, scale):
      return log_importance_weights(model, x, k, seed_pair, scale)
    return weights

  weights = _cached(model, 'iwae', build)
  bar = progress_lib.Progress(f'IWAE log-likelihood (k={num_samples})',
                              len(images))
  out = np.empty(len(images), np.float64)
  for b, start in enumerate(range(0, len(images), batch)):
    x = tf.constant(images[start:start + batch])
    total = np.full(len(x), -np.inf)
    for c, first in enumerate(range(0, num_samples, chunk)):
      k = min(chunk, num_samples - first)
      seed_pair = tf.constant([seed, b * 100003 + c], tf.int32)
      logw = weights(x, tf.constant(k), seed_pair,
                     tf.constant(proposal_scale, tf.float32)).numpy()
      total = np.logaddexp(total, np.logaddexp.reduce(
          logw.astype(np.float64), axis=0))
    out[start:start + len(x)] = total - np.log(num_samples)
    bar.update(len(x))
  return out


# -- sample quality --------------------------------------------------------


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


FEATURE_CLASSIFIER_VERSION = 1


def _classifier_network(image_shape, num_classes) -> keras.Model:
  inputs = keras.Input(image_shape)
  h = keras.layers.Conv2D(32, 3, 2, 'same', activation='relu')(inputs)
  h = keras.layers.Conv2D(64, 3, 2, 'same', activation='relu')(h)
  h = keras.layers.Flatten()(h)
  features = keras.layers.Dense(128, activation='relu', name='features')(h)
  logits = keras.layers.Dense(num_classes, name='logits')(features)
  return keras.Model(inputs, [features, logits], name='feature_classifier')


def feature_classifier(train_images: np.ndarray, train_labels: np.ndarray,
                       num_classes: int, cache_dir: Optional[str] = None,
                       epochs: int = 5, seed: int = 0) -> keras.Model:
  """A small conv classifier of the training split, for Frechet features.

  Trained with Adam (1e-3, batch 100, `epochs`) on float images in [0, 1].
  When `cache_dir` is set, weights are stored there under a hash of the
  training data and recipe, so every model evaluated on the same data is
  measured in the same feature space.

  Returns:
    A Keras model images -> (features [N, 128], logits [N, classes]).
  """
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
    os.makedirs(cache_dir, exist_ok=True)
    tmp = path + '.tmp.weights.h5'
    net.save_weights(tmp)
    os.replace(tmp, path)
  return net


def _features(net: keras.Model, images: np.ndarray, batch_size: int = 500
              ) -> tuple[np.ndarray, np.ndarray]:
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


# -- everything ------------------------------------------------------------


def evaluate_all(model: models_lib.LatentVariableModel,
                 train_images: np.ndarray, train_labels: np.ndarray,
                 test_images: np.ndarray, test_labels: np.ndarray,
                 num_classes: int, iwae_samples: int = 100, seed: int = 0,
                 proposal_scale: float = DEFAULT_PROPOSAL_SCALE,
                 classifier: Optional[keras.Model] = None,
                 classifier_cache_dir: Optional[str] = None
                 ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """All metrics of the module doc.

  Args:
    model: the trained model.
    train_images, test_images: float32 [N, H, W, C] in [0, 1] (as trained).
    train_labels, test_labels: int [N] (probes and classifier only).
    num_classes: number of labels.
    iwae_samples: k of the importance-weighted bound (0: skip it).
    seed: seed of every Monte-Carlo draw.
    proposal_scale: proposal scale for point-mass encoders.
    classifier: the Frechet feature network (trained if None).
    classifier_cache_dir: where `feature_classifier` caches its weights.

  Returns:
    (metrics, arrays): the flat metrics dict, and per-image arrays
    ('code_mean', 'code_sample', 'distortion', 'iwae', 'train_code_mean',
    'generated').
  """
  out, terms = evaluate(model, test_images, seed=seed)
  if iwae_samples:
    iwae = iwae_log_likelihood(model, test_images, iwae_samples, seed=seed,
                               proposal_scale=proposal_scale)
    terms['iwae'] = iwae
    out['test_iwae_log_likelihood'] = float(iwae.mean())
    out['test_iwae_samples'] = int(iwae_samples)
    if 'rate' not in terms:  # a point-mass encoder: the proposal matters
      out['test_iwae_proposal_scale'] = float(proposal_scale)
  train_codes = encode_all(model, train_images, seed=seed,
                           progress='encoding the training images')[
                               'code_mean']
  terms['train_code_mean'] = train_codes
  out['test_knn_accuracy'] = probes.knn_accuracy(
      train_codes, train_labels, terms['code_mean'], test_labels)
  out['test_logreg_accuracy'] = probes.logistic_regression_accuracy(
      train_codes, train_labels, terms['code_mean'], test_labels)
  if classifier is None:
    classifier = feature_classifier(train_images, train_labels, num_classes,
                                    cache_dir=classifier_cache_dir, seed=seed)
  test_features, test_logits = _features(classifier, test_images)
  generated = generate(model, len(test_images), seed=seed)
  terms['generated'] = generated
  out['test_classifier_frechet_distance'] = frechet_distance(
      _features(classifier, generated)[0], test_features)
  out['feature_classifier_test_accuracy'] = float(
      np.mean(test_logits.argmax(axis=1) == test_labels))
  # A random subset: a split may be ordered by class (mnist_5k's is).
  picks = np.random.default_rng(seed).choice(
      len(train_images), min(len(test_images), len(train_images)),
      replace=False)
  reference = train_images[np.sort(picks)]
  out['train_test_classifier_frechet_distance'] = frechet_distance(
      _features(classifier, reference)[0], test_features)
  return out, terms
