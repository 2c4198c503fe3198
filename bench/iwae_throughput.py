"""Cost of the IWAE log-likelihood estimate (`likelihood.iwae_log_likelihood`),
the costliest metric of trainers.evaluate and trainers.compare.

For each model, k and --images_per_call (latent samples decoded per call),
one fresh process (see benchlib) times the estimate on --num_images test
images of mnist_5k: seconds, images/s, milliseconds per image, decoded
samples per second, GFLOP/s (the traced estimate's FLOPs, counted by
TensorFlow's profiler) against a float32 2048x2048 matmul measured in the
same run, and peak RSS.  Weights are the untrained initialisation: the cost
does not depend on them.

  python bench/iwae_throughput.py                 # k = 100 and 1000
  python bench/iwae_throughput.py --ks=1000 --images_per_call=500,2000,8000
"""

import json
import os
import time

from absl import app
from absl import flags

import benchlib

flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to measure.')
flags.DEFINE_list('ks', ['100', '1000'], 'Importance samples per image.')
flags.DEFINE_list('images_per_call', ['1000'],
                  'Latent samples decoded per call (memory/speed knob).')
flags.DEFINE_integer('num_images', 1000, 'Test images per estimate.')
flags.DEFINE_string('child', None, 'Internal: run one measurement.')
FLAGS = flags.FLAGS


def _child(spec: dict) -> None:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import inputs  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import likelihood  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import models  # pylint: disable=g-import-not-at-top

  if spec['what'] == 'matmul':
    benchlib.report({'flops_per_second': benchlib.matmul_flops_per_second()})
    return
  data = loaders.load('mnist_5k')
  config = config_lib.TrainConfig.create(model=spec['model']).validate()
  model = models.build_model(config, data.image_shape)
  images = inputs.eval_images(data.test_images)[:spec['num_images']]
  k, per_call = spec['k'], spec['images_per_call']
  # FLOPs of one image with k samples, the way the estimate traces it.
  traced = tf.function(
      lambda x: likelihood.log_importance_weights(model, x, k, tf.constant(
          [0, 0]))).get_concrete_function(
              tf.TensorSpec((1,) + tuple(data.image_shape), tf.float32))
  flops_per_image = benchlib.flops_of(traced)
  likelihood.iwae_log_likelihood(model, images[:2], k,
                                 images_per_call=per_call)  # trace
  start = time.perf_counter()
  estimate = likelihood.iwae_log_likelihood(model, images, k,
                                            images_per_call=per_call)
  seconds = time.perf_counter() - start
  benchlib.report({'seconds': seconds, 'flops_per_image': flops_per_image,
                   'mean_estimate': float(estimate.mean())})


def main(argv):
  del argv
  if FLAGS.child:
    _child(json.loads(FLAGS.child))
    return
  peak = benchlib.run_child(__file__, {'what': 'matmul'})['flops_per_second']
  rows = []
  n = FLAGS.num_images
  for model in FLAGS.models:
    for k in map(int, FLAGS.ks):
      for per_call in map(int, FLAGS.images_per_call):
        r = benchlib.run_child(__file__, {
            'what': 'iwae', 'model': model, 'k': k, 'num_images': n,
            'images_per_call': per_call})
        flops = r['flops_per_image'] * n / r['seconds']
        rows.append([model, k, per_call, f"{r['seconds']:.1f}",
                     f"{n / r['seconds']:.1f}",
                     f"{1000 * r['seconds'] / n:.1f}",
                     f"{n * k / r['seconds']:.0f}", f'{flops / 1e9:.1f}',
                     f'{100 * flops / peak:.0f}%',
                     f"{r['peak_rss_mb']:.0f}"])
  print('\n' + benchlib.machine_line())
  print(f'IWAE estimate on {n} mnist_5k test images, conv, latent 2, '
        f'{os.cpu_count()} CPU cores.  Float32 2048^2 matmul: '
        f'{peak / 1e9:.1f} GFLOP/s.')
  benchlib.print_table(
      ['model', 'k', 'samples per call', 'seconds', 'images/s', 'ms/image',
       'decoded samples/s', 'GFLOP/s', 'of matmul peak', 'peak RSS MB'],
      rows)


if __name__ == '__main__':
  app.run(main)
