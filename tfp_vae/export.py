"""SavedModel export for TF Serving and KServe: checked inputs, plain-tensor
outputs, versioned directories.

The serving graph never returns distribution objects: endpoints build the
`tfd` objects inside and return dicts of named float32 tensors, so the
SavedModel loads in a process that has not imported TFP (or this package).
Keras 3's `keras.export.ExportArchive` is used because a Keras 3 model held
by a plain `tf.Module` fails under the TF1 session loader that TF Serving's
path is closest to (see CONVENTIONS.md).

Signatures (every input is checked inside the graph; a bad one fails with
INVALID_ARGUMENT naming what was expected and what came):

  encode(images)        -> code_mean, code_stddev, code_sample   [B, latent]
  decode(codes)         -> images                                 [B, H, W, C]
  reconstruct(images)   -> reconstructions                        [B, H, W, C]
  sample(num_samples, seed) -> images [N, H, W, C], codes [N, latent]
  log_likelihood(images) -> log_likelihood [B] (nats per image)
  serving_default       =  encode

`encode` is the default because the codes are what the sources' question is
about and what downstream users embed with; the other signatures are one
`signature_name` away.

Input shapes are declared with unknown rank (`saved_model_cli` shows
"unknown_rank") so that a wrong rank reaches the in-graph checks and gets
their message in every loader, TF Serving included, instead of a loader-
specific binding error.

Layout: `export_dir/<version>/` with integer versions (TF Serving's model base
path), a new version per export, written to a temporary directory beside the
versions and renamed into place, so a polling server never sees half a
model; `export_dir/models.config` is a TF Serving `model_config_list` for it.
"""

import os
import shutil
import tempfile
from typing import Optional

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae import layout
from tfp_vae import losses
from tfp_vae import metrics
from tfp_vae import models as models_lib

tfd = tfp.distributions
# The reader (tfp_vae.serving) shares the layout without importing TFP.
versions = layout.versions

MAX_SAMPLES = 10000
LOG_LIKELIHOOD_SAMPLES = 16
# Proposal scale around the deterministic code for the MMD-VAE's estimate.
POINT_MASS_PROPOSAL_SCALE = metrics.DEFAULT_PROPOSAL_SCALE


def _check(condition: tf.Tensor, message: str, *data: tf.Tensor):
  return tf.debugging.Assert(condition, [message, *data], summarize=8)


def _padded_shape(x: tf.Tensor, rank: int) -> tf.Tensor:
  """tf.shape(x) cut or padded with -1 to `rank` entries (never fails)."""
  return tf.concat([tf.shape(x), -tf.ones([rank], tf.int32)], 0)[:rank]


def check_images(images: tf.Tensor, image_shape) -> tf.Tensor:
  """`images` after checking shape [batch, H, W, C] and values in [0, 1]."""
  h, w, c = image_shape
  shape_ok = _check(
      tf.equal(tf.rank(images), 4) & tf.reduce_all(
          tf.equal(_padded_shape(images, 4)[1:], [h, w, c])),
      f'images must have shape [batch, {h}, {w}, {c}] (rank 4, {h}x{w} '
      f'pixels, {c} channel(s)); got shape', tf.shape(images))
  # NaN fails both comparisons, so it is refused too.
  range_ok = _check(tf.reduce_all((images >= 0.0) & (images <= 1.0)),
                    'images must have values in [0, 1]; got min and max',
                    tf.reduce_min(images), tf.reduce_max(images))
  with tf.control_dependencies([shape_ok, range_ok]):
    return tf.ensure_shape(tf.reshape(images, [-1, h, w, c]), [None, h, w, c])


def check_codes(codes: tf.Tensor, latent_dim: int) -> tf.Tensor:
  """`codes` after checking shape [batch, latent_dim] and finiteness."""
  shape_ok = _check(
      tf.equal(tf.rank(codes), 2) &
      tf.equal(_padded_shape(codes, 2)[1], latent_dim),
      f'codes must have shape [batch, {latent_dim}] (one latent vector of '
      f'size {latent_dim} per row); got shape', tf.shape(codes))
  finite_ok = _check(tf.reduce_all(tf.math.is_finite(codes)),
                     'codes must be finite')
  with tf.control_dependencies([shape_ok, finite_ok]):
    return tf.ensure_shape(tf.reshape(codes, [-1, latent_dim]),
                           [None, latent_dim])


def log_likelihood(model: models_lib.LatentVariableModel, images: tf.Tensor,
                   num_samples: int = LOG_LIKELIHOOD_SAMPLES,
                   seed=(0, 0)) -> tf.Tensor:
  """Per-image log-likelihood estimate in nats, [B].

  Gaussian encoders: the ELBO, E_q[log p(x|z)] - KL(q(z|x) || p(z)), with
  the analytic KL (the sampled one for mixture and VampPrior priors) and the
  expectation averaged over `num_samples` draws: a lower bound on log p(x).
  MMD-VAE (point-mass encoder, no ELBO): importance sampling with the
  proposal r(z|x) = N(code(x), 0.1^2 I):
  log (1/K) sum_k p(x|z_k) p(z_k) / r(z_k|x), a consistent estimate of
  log p(x) under decoder and prior (biased low for finite K, like IWAE).
  """
  posterior = model.encode(images)
  prior = model.prior_distribution()
  proposal = metrics.proposal(posterior, POINT_MASS_PROPOSAL_SCALE)
  z = proposal.sample(num_samples, seed=seed)  # [K, B, latent]
  log_w = losses.log_importance_weights(images, proposal, prior, model.decode,
                                        z)
  if proposal is not posterior:  # point mass: importance sampling
    return tf.reduce_logsumexp(log_w, 0) - tf.math.log(float(num_samples))
  # log_w = log p(x|z) - (log q(z|x) - log p(z)): swap that one-sample rate
  # for the closed form where TFP has one (`losses.rate`).
  return tf.reduce_mean(
      log_w + losses.sampled_rate(posterior, prior, z) -
      losses.rate(posterior, prior, z), 0)


def endpoints(model: models_lib.LatentVariableModel,
              image_shape: tuple[int, int, int]) -> dict[str, tuple]:
  """{signature name: (function, input signature)} of the serving graph.

  The functions also run eagerly (tests call them for every model
  combination without writing a SavedModel).
  """
  latent = model.latent_dim
  image_spec = tf.TensorSpec(None, tf.float32, name='images')
  code_spec = tf.TensorSpec(None, tf.float32, name='codes')

  def encode(images):
    posterior = model.encode(check_images(images, image_shape))
    return {'code_mean': posterior.mean(),
            'code_stddev': posterior.stddev(),
            'code_sample': posterior.sample()}

  def decode(codes):
    return {'images': model.decode(check_codes(codes, latent)).mean()}

  def reconstruct(images):
    return {'reconstructions': model(check_images(images, image_shape))}

  def sample(num_samples, seed):
    # Assert needs a scalar condition whatever shape arrived (a [1] input,
    # e.g. from TF Serving's row format, is refused with this message too).
    n_ok = _check((tf.rank(num_samples) == 0) & tf.reduce_all(
        (num_samples >= 0) & (num_samples <= MAX_SAMPLES)),
                  f'num_samples must be a scalar in [0, {MAX_SAMPLES}]; got',
                  num_samples)
    seed_ok = _check((tf.rank(seed) == 0) & tf.reduce_all(seed >= -1),
                     'seed must be a scalar >= 0 (reproducible) or -1 '
                     '(fresh draws); got', seed)
    with tf.control_dependencies([n_ok, seed_ok]):
      n = tf.reshape(num_samples, [])
      s = tf.reshape(seed, [])
      fresh = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int32)
      stateless = tf.stack([tf.where(s >= 0, s, fresh), tf.constant(0)])
      codes = model.prior_distribution().sample(n, seed=stateless)
      return {'codes': codes, 'images': model.decode(codes).mean()}

  def likelihood(images):
    return {'log_likelihood': log_likelihood(
        model, check_images(images, image_shape))}

  scalar = lambda name: tf.TensorSpec(None, tf.int32, name=name)
  return {
      'serving_default': (encode, [image_spec]),
      'encode': (encode, [image_spec]),
      'decode': (decode, [code_spec]),
      'reconstruct': (reconstruct, [image_spec]),
      'sample': (sample, [scalar('num_samples'), scalar('seed')]),
      'log_likelihood': (likelihood, [image_spec]),
  }


def build_archive(model: models_lib.LatentVariableModel,
                  image_shape: tuple[int, int, int]
                  ) -> keras.export.ExportArchive:
  """An ExportArchive tracking `model` with the signatures above."""
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, (fn, signature) in endpoints(model, image_shape).items():
    archive.add_endpoint(name, fn, input_signature=signature)
  return archive


def models_config(name: str, base_path: str) -> str:
  """A TF Serving model_config_list (text proto) serving the latest version."""
  return (
      'model_config_list {\n'
      '  config {\n'
      f'    name: "{name}"\n'
      f'    base_path: "{base_path}"\n'
      '    model_platform: "tensorflow"\n'
      '    model_version_policy { latest { num_versions: 1 } }\n'
      '  }\n'
      '}\n')


def export_savedmodel(model: models_lib.LatentVariableModel,
                      image_shape: tuple[int, int, int], export_dir: str,
                      model_name: Optional[str] = None,
                      serving_base_path: Optional[str] = None) -> str:
  """Writes a new version of `model` under export_dir; returns its path.

  Also writes export_dir/models.config naming `model_name` (default: the
  directory's name) at `serving_base_path` (default /models/<model_name>,
  where the TF Serving image looks, so mount export_dir there).
  """
  os.makedirs(export_dir, exist_ok=True)
  version = (versions(export_dir) or [0])[-1] + 1
  tmp = tempfile.mkdtemp(prefix=f'.tmp-{version}-', dir=export_dir)
  try:
    build_archive(model, image_shape).write_out(tmp, verbose=False)
    final = os.path.join(export_dir, str(version))
    os.rename(tmp, final)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  name = model_name or os.path.basename(os.path.abspath(export_dir))
  config_path = os.path.join(export_dir, 'models.config')
  with open(config_path + '.tmp', 'w') as f:
    f.write(models_config(name, serving_base_path or f'/models/{name}'))
  os.replace(config_path + '.tmp', config_path)
  return final
