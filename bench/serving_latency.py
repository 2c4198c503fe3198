"""Latency of every SavedModel signature, as a serving process sees it.

Exports a model (trained for --epochs on mnist_5k, the numbers do not depend
on the weights), loads it with `tf.saved_model.load` as TF Serving's TF2
path does, and times each signature at batch 1 and batch 256: p50 and p99
over repeated calls after warm-up, plus images per second for encode and
decode at batch 256.

  python bench/serving_latency.py
"""

import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np
import tensorflow as tf

from tfp_vae.config import settings as config_lib
from tfp_vae.data import inputs
from tfp_vae.data import loaders
from tfp_vae.model import export
from tfp_vae.model import models

flags.DEFINE_string('model', 'vae', 'vae or mmd_vae.')
flags.DEFINE_integer('repeats', 200, 'Timed calls at batch 1.')
flags.DEFINE_integer('repeats_large', 30, 'Timed calls at batch 256.')
FLAGS = flags.FLAGS


def _time(fn, repeats: int) -> np.ndarray:
  for _ in range(3):
    fn()
  out = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    out.append(time.perf_counter() - start)
  return np.array(out) * 1000.0


def main(_):
  d = loaders.load('mnist_5k')
  cfg = config_lib.TrainConfig.create(model=FLAGS.model).validate()
  model = models.build_model(cfg, d.image_shape)
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export_savedmodel(model, d.image_shape, tmp)
    sigs = tf.saved_model.load(path).signatures
    images = inputs.eval_images(d.test_images)
    rows = []
    for batch in (1, 256):
      x = tf.constant(images[:batch])
      z = tf.random.normal([batch, cfg.latent_dim])
      calls = {
          'encode': lambda: sigs['encode'](images=x),
          'decode': lambda: sigs['decode'](codes=z),
          'reconstruct': lambda: sigs['reconstruct'](images=x),
          'sample': lambda: sigs['sample'](
              num_samples=tf.constant(batch, tf.int64),
              seed=tf.constant(0, tf.int64)),
          'log_likelihood': lambda: sigs['log_likelihood'](images=x),
      }
      repeats = FLAGS.repeats if batch == 1 else FLAGS.repeats_large
      for name, fn in calls.items():
        ms = _time(fn, repeats)
        p50, p99 = np.percentile(ms, [50, 99])
        rows.append((name, batch, p50, p99, batch / (np.median(ms) / 1e3)))
  print(f'\n{FLAGS.model} SavedModel, mnist_5k shapes, latent '
        f'{cfg.latent_dim}, {os.cpu_count()} CPU cores, TF {tf.__version__}; '
        f'log_likelihood uses {export.LOG_LIKELIHOOD_SAMPLES} samples/image')
  print('| signature | batch | p50 ms | p99 ms | images/s (at p50) |')
  print('|---|---|---|---|---|')
  for name, batch, p50, p99, ips in rows:
    print(f'| {name} | {batch} | {p50:.2f} | {p99:.2f} | {ips:.0f} |')


if __name__ == '__main__':
  app.run(main)
