"""SavedModel export for TF Serving and KServe: checked inputs, plain-tensor
outputs, versioned directories.

The serving graph never returns distribution objects: endpoints build the
`tfd` objects inside and return dicts of named float32 tensors, so the
SavedModel loads in a process that has not imported TFP (or this package).
Keras 3's `keras.export.ExportArchive` is used because a Keras 3 model held
by a plain `tf.Module` fails under the TF1 session loader that TF Serving's
path is closest to: it fails there with "Could not find variable ..."
while `keras.export.ExportArchive` loads in both.

Signatures (every input is checked inside the graph; a bad one fails with
INVALID_ARGUMENT naming what was expected and what came):

  encode(images)        -> code_mean, code_stddev, code_sample   [B, latent]
  decode(codes)         -> images                                 [B, H, W, C]
  reconstruct(images)   -> reconstructions                        [B, H, W, C]
  sample(num_samples, seed) -> images [N, H, W, C], codes [N, latent]
  log_likelihood(images) -> log_likelihood [B] (nats per image)
  serving_default       =  encode

Batched inputs hold at most `max_batch` examples (default 1,024, set at
export); an empty batch returns empty outputs; `log_likelihood` works
through its batch 64 images at a time, so its memory does not grow with the
batch.  `sample` takes int64 scalars (no wrap-around of large values):
num_samples in [0, 10000], seed in [0, 2^31 - 1] for reproducible draws or
-1 for fresh ones (the clock and a stateful draw, so they differ between
calls and between server processes).

`encode` is the default because the codes are what the articles' question is
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

import errno
import json
import os
import shutil
import tempfile
from typing import Optional

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.config import groups as config_groups
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import faults
from tfp_vae.internal import files
from tfp_vae.internal import layout
from tfp_vae.internal import storage
from tfp_vae.model import likelihood as likelihood_lib
from tfp_vae.nn import losses
from tfp_vae.model import models as models_lib

tfd = tfp.distributions

MAX_SAMPLES = 10000
MAX_SEED = config_groups.MAX_SEED
LOG_LIKELIHOOD_SAMPLES = 16
# Images per step of log_likelihood: 64 images x 16 draws = 1,024 decodes.
LOG_LIKELIHOOD_CHUNK = 64
# Proposal scale around the deterministic code for the MMD-VAE's estimate.
POINT_MASS_PROPOSAL_SCALE = likelihood_lib.DEFAULT_PROPOSAL_SCALE


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
  """Per-image log-likelihood estimate in nats, [B], from the model's log
  weights (`LatentVariableModel.log_weights`) at `num_samples` draws,
  LOG_LIKELIHOOD_CHUNK images at a time (one chunk after another, so memory
  stays bounded whatever the batch; the draws of a chunk depend on the seed
  and its place in the batch).

  Gaussian encoders: the ELBO, the mean of the log weights with codes drawn
  from q(z|x): a lower bound on log p(x).  Point-mass encoders (MMD-VAE, no
  ELBO): importance sampling with the proposal r(z|x) = N(code(x),
  0.1^2 I), reduced by logsumexp: log (1/K) sum_k p(x|z_k) p(z_k) /
  r(z_k|x), a consistent estimate of log p(x) under decoder and prior
  (biased low for finite K, like IWAE).
  """
  h, w, c = images.shape[1:]
  batch = tf.shape(images)[0]
  chunks = (batch + LOG_LIKELIHOOD_CHUNK - 1) // LOG_LIKELIHOOD_CHUNK
  padded = tf.pad(images, [[0, chunks * LOG_LIKELIHOOD_CHUNK - batch],
                           [0, 0], [0, 0], [0, 0]])
  seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
  out = tf.map_fn(
      lambda args: _log_likelihood_chunk(
          model, args[0], num_samples, tf.stack([seed[0], seed[1] + args[1]])),
      (tf.reshape(padded, [chunks, LOG_LIKELIHOOD_CHUNK, h, w, c]),
       tf.range(chunks)),
      fn_output_signature=tf.TensorSpec([LOG_LIKELIHOOD_CHUNK], tf.float32),
      parallel_iterations=1)
  return tf.reshape(out, [-1])[:batch]


def _log_likelihood_chunk(model, images, num_samples, seed) -> tf.Tensor:
  posterior = model.encode(images)
  proposal = losses.proposal(posterior, POINT_MASS_PROPOSAL_SCALE)
  codes = proposal.sample(num_samples, seed=seed)  # [K, B, latent]
  log_w = model.log_weights(images, proposal, codes)
  if proposal is posterior:
    return losses.elbo(log_w)
  return losses.iwae_bound(log_w)


def _batched(name: str, x: tf.Tensor, row_shape: dict, compute, empty,
             max_batch: int) -> dict[str, tf.Tensor]:
  """`compute(x)`, or `empty` outputs of `row_shape` for a batch of 0,
  after checking the batch holds at most `max_batch` examples."""
  size_ok = _check(tf.shape(x)[0] <= max_batch,
                   f'{name} must hold at most {max_batch} examples per '
                   f'request; got', tf.shape(x)[0])
  with tf.control_dependencies([size_ok]):
    return tf.cond(tf.shape(x)[0] > 0, lambda: compute(x),
                   lambda: {k: tf.zeros([0, *row_shape[k]]) for k in empty})


def _sample_arguments(num_samples: tf.Tensor, seed: tf.Tensor
                      ) -> tuple[tf.Tensor, tf.Tensor]:
  """(n int32 scalar, stateless seed pair) after checking both inputs."""
  # Assert needs a scalar condition whatever shape arrived (a [1] input,
  # e.g. from TF Serving's row format, is refused with this message too).
  n_ok = _check((tf.rank(num_samples) == 0) & tf.reduce_all(
      (num_samples >= 0) & (num_samples <= MAX_SAMPLES)),
                f'num_samples must be a scalar in [0, {MAX_SAMPLES}]; got',
                num_samples)
  num_samples = tf.cast(num_samples, tf.int64)
  seed = tf.cast(seed, tf.int64)
  seed_ok = _check((tf.rank(seed) == 0) & tf.reduce_all(
      (seed >= -1) & (seed <= MAX_SEED)),
                   f'seed must be a scalar >= 0 (reproducible, at most '
                   f'{MAX_SEED}) or -1 (fresh draws); got', seed)
  with tf.control_dependencies([n_ok, seed_ok]):
    n = tf.cast(tf.reshape(num_samples, []), tf.int32)
    s = tf.reshape(seed, [])
    return n, tf.stack([
        tf.where(s >= 0, tf.cast(s, tf.int32), _fresh_seed()[0]),
        tf.constant(0)])


def endpoints(model: models_lib.LatentVariableModel,
              image_shape: tuple[int, int, int],
              max_batch: int = config_lib.MAX_BATCH) -> dict[str, tuple]:
  """{signature name: (function, input signature)} of the serving graph.

  Batched inputs hold at most `max_batch` examples (refused with
  INVALID_ARGUMENT beyond); an empty batch gives empty outputs.  The
  functions also run eagerly (tests call them for every model combination
  without writing a SavedModel).
  """
  latent = model.latent_dim
  shape = list(image_shape)
  image_spec = tf.TensorSpec(None, tf.float32, name='images')
  code_spec = tf.TensorSpec(None, tf.float32, name='codes')

  def on_images(images, outputs, compute):
    return _batched('images', check_images(images, image_shape), outputs,
                    compute, tuple(outputs), max_batch)

  def encode(images):
    def compute(x):
      posterior = model.encode(x)
      return {'code_mean': posterior.mean(),
              'code_stddev': posterior.stddev(),
              'code_sample': posterior.sample(seed=_fresh_seed())}
    return on_images(images, {k: [latent] for k in ENCODE_OUTPUTS}, compute)

  def decode(codes):
    return _batched('codes', check_codes(codes, latent), {'images': shape},
                    lambda z: {'images': model.decode(z).mean()},
                    ('images',), max_batch)

  def reconstruct(images):
    return on_images(images, {'reconstructions': shape},
                     lambda x: {'reconstructions': model(x)})

  def sample(num_samples, seed):
    n, stateless = _sample_arguments(num_samples, seed)
    codes = model.prior_distribution().sample(n, seed=stateless)
    return {'codes': codes, 'images': model.decode(codes).mean()}

  def likelihood(images):
    return on_images(images, {'log_likelihood': []},
                     lambda x: {'log_likelihood': log_likelihood(model, x)})

  scalar = lambda name: tf.TensorSpec(None, tf.int64, name=name)
  return {
      'serving_default': (encode, [image_spec]),
      'encode': (encode, [image_spec]),
      'decode': (decode, [code_spec]),
      'reconstruct': (reconstruct, [image_spec]),
      'sample': (sample, [scalar('num_samples'), scalar('seed')]),
      'log_likelihood': (likelihood, [image_spec]),
  }


ENCODE_OUTPUTS = ('code_mean', 'code_stddev', 'code_sample')


def _fresh_seed() -> tf.Tensor:
  """A stateless seed pair that differs between calls and between server
  processes: the clock in microseconds and a stateful draw.  (A stateful
  op alone repeats its sequence in every newly loaded process.)"""
  micros = tf.cast(tf.timestamp() * 1e6, tf.int64)
  draw = tf.random.uniform([], 0, MAX_SEED, dtype=tf.int64)
  return tf.cast(tf.stack([tf.math.floormod(micros, MAX_SEED), draw]),
                 tf.int32)


def build_archive(model: models_lib.LatentVariableModel,
                  image_shape: tuple[int, int, int],
                  max_batch: int = config_lib.MAX_BATCH
                  ) -> keras.export.ExportArchive:
  """An ExportArchive tracking `model` with the signatures above."""
  archive = keras.export.ExportArchive()
  archive.track(model)
  for name, (fn, signature) in endpoints(model, image_shape,
                                         max_batch).items():
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


# What the version records of the weights it holds (TF Serving and the
# loaders ignore assets.extra/).
RECORD = os.path.join('assets.extra', 'tfp_vae.json')


def exported_epoch(version_dir: str) -> Optional[int]:
  """The training epoch a version was exported at, if it recorded one."""
  try:
    with open(os.path.join(version_dir, RECORD)) as f:
      return int(json.load(f)['epoch'])
  except (OSError, ValueError, KeyError, TypeError):
    return None


def export_savedmodel(model: models_lib.LatentVariableModel,
                      image_shape: tuple[int, int, int], export_dir: str,
                      model_name: Optional[str] = None,
                      serving_base_path: Optional[str] = None,
                      max_batch: int = config_lib.MAX_BATCH,
                      epoch: Optional[int] = None) -> str:
  """Writes a new version of `model` under export_dir; returns its path.

  Also writes export_dir/models.config naming `model_name` (default: the
  directory's name) at `serving_base_path` (default /models/<model_name>,
  where the TF Serving image looks, so mount export_dir there).  Versions
  are allocated atomically: concurrent exports get distinct versions.
  `max_batch` bounds the examples of one request; `epoch` (the weights'
  training epoch) is recorded in the version (`exported_epoch`).
  """
  # A version appears whole or not at all: written to a temporary folder
  # (which a server polling export_dir ignores), renamed into place.
  with storage.writing('export', f'a new SavedModel version in {export_dir}',
                       export_dir, inject=False):
    os.makedirs(export_dir, exist_ok=True)
    remove_leftovers(export_dir)
    tmp = tempfile.mkdtemp(prefix=f'.tmp-{os.getpid()}-', dir=export_dir)
    try:
      build_archive(model, image_shape, max_batch).write_out(tmp,
                                                            verbose=False)
      if epoch is not None:
        os.makedirs(os.path.dirname(os.path.join(tmp, RECORD)))
        files.write_json(os.path.join(tmp, RECORD), {'epoch': int(epoch)})
      faults.storage_point('export', tmp)  # a fault with the files written
      faults.point('export', 0)
      # Before the version: a version is never visible without it.
      name = model_name or os.path.basename(os.path.abspath(export_dir))
      files.write_text(os.path.join(export_dir, 'models.config'),
                       models_config(name,
                                     serving_base_path or f'/models/{name}'))
      final = _rename_to_next_version(tmp, export_dir)
    except BaseException:
      shutil.rmtree(tmp, ignore_errors=True)
      raise
  return final


def _rename_to_next_version(tmp: str, export_dir: str) -> str:
  """Renames `tmp` to the next free integer version; an export running at
  the same time that takes a number first makes this one take the next."""
  version = (layout.versions(export_dir) or [0])[-1] + 1
  while True:
    final = os.path.join(export_dir, str(version))
    try:
      os.rename(tmp, final)
      return final
    except OSError as e:
      if e.errno not in (errno.EEXIST, errno.ENOTEMPTY) and not (
          os.path.isdir(final)):
        raise
      version += 1


def remove_leftovers(export_dir: str) -> list[str]:
  """Removes the temporary directories and files of exports whose process
  is gone (`.tmp-PID-*`, `models.config.tmp-PID`: `tfp_vae.internal.files`)."""
  return files.remove_leftovers([export_dir])
