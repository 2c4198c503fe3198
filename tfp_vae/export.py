"""SavedModel export for TF Serving: plain-tensor signatures, versioned dirs.

The serving graph never returns distribution objects: endpoints build the
`tfd` objects inside and return dicts of named tensors, so the SavedModel
loads in a process that has not imported TFP (or this package).  Keras 3's
`keras.export.ExportArchive` is used because a Keras 3 model held by a plain
`tf.Module` fails under the TF1 session loader that TF Serving's path is
closest to (see CONVENTIONS.md).

Layout: `export_dir/<version>/` with integer versions (TF Serving's model base
path).  Each export is written to a temporary directory beside the versions
and renamed into place, so a polling server never sees half a model.
"""

import os
import re
import shutil
import tempfile

import keras
import tensorflow as tf

from tfp_vae import models as models_lib

_VERSION = re.compile(r'^\d+$')


def versions(export_dir: str) -> list[int]:
  """Integer version directories present in export_dir, ascending."""
  if not os.path.isdir(export_dir):
    return []
  return sorted(int(d) for d in os.listdir(export_dir)
                if _VERSION.match(d) and
                os.path.isdir(os.path.join(export_dir, d)))


def build_archive(model: models_lib.LatentVariableModel,
                  image_shape: tuple[int, int, int]
                  ) -> keras.export.ExportArchive:
  """An ExportArchive tracking `model` with its serving endpoints.

  Endpoints (each a dict of float32 tensors):
    encode(images [B, H, W, C] in [0, 1]) -> code_mean, code_stddev (zeros
      for the deterministic encoder), code_sample [B, latent].
    decode(codes [B, latent]) -> images [B, H, W, C] (pixel means:
      probabilities for the Bernoulli likelihood).
    reconstruct(images) -> reconstructions [B, H, W, C] (decoded code mean).
  The first endpoint, encode, is also `serving_default`.
  """
  latent = model.latent_dim
  image_spec = tf.TensorSpec([None, *image_shape], tf.float32, name='images')
  code_spec = tf.TensorSpec([None, latent], tf.float32, name='codes')

  def encode(images):
    posterior = model.encode(images)
    return {'code_mean': posterior.mean(),
            'code_stddev': posterior.stddev(),
            'code_sample': posterior.sample()}

  def decode(codes):
    return {'images': model.decode(codes).mean()}

  def reconstruct(images):
    return {'reconstructions': model(images)}

  archive = keras.export.ExportArchive()
  archive.track(model)
  archive.add_endpoint('encode', encode, input_signature=[image_spec])
  archive.add_endpoint('decode', decode, input_signature=[code_spec])
  archive.add_endpoint('reconstruct', reconstruct, input_signature=[image_spec])
  return archive


def export_savedmodel(model: models_lib.LatentVariableModel,
                      image_shape: tuple[int, int, int],
                      export_dir: str) -> str:
  """Writes a new version of `model` under export_dir; returns its path."""
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
  return final
