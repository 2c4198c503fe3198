"""Training throughput: trainers.train's loop vs a plain tf.function loop.

Runs, in one process and on the same data, network, batch and optimizer:
  * `tfp_vae.training.run` (what `python -m trainers.train` calls: Keras fit
    with the model's train_step, checkpoints, TensorBoard, NaN guard), and
  * a plain loop: `tf.function` step with `tf.GradientTape` over the same
    model's objective, iterating the same tf.data pipeline,
for the VAE and the MMD-VAE, and prints one table.  Images per second exclude
the first epoch of each (tracing and warm-up).

  python bench/train_throughput.py --epochs=30
"""

import os
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import keras
import numpy as np
import tensorflow as tf

from tfp_vae import config as config_lib
from tfp_vae import data as data_lib
from tfp_vae import metrics as metrics_lib
from tfp_vae import models as models_lib
from tfp_vae import training

flags.DEFINE_integer('epochs', 30, 'Epochs per run (first one not timed).')
flags.DEFINE_integer('batch_size', 100, 'Global batch.')
flags.DEFINE_float('learning_rate', 1e-3, 'Adam learning rate.')
flags.DEFINE_integer('latent_dim', 2, 'Latent size.')
flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to measure.')
flags.DEFINE_integer('repeats', 3, 'Runs of each loop, interleaved (the '
                     'machine is noisy: +-15% between back-to-back runs).')
flags.DEFINE_list('steps_per_execution', ['1', '10'],
                  'trainers.train is measured once per value.')
FLAGS = flags.FLAGS


def plain_loop(config: config_lib.TrainConfig, data: data_lib.ImageData):
  """Images/s and test metrics of a plain GradientTape loop."""
  model = models_lib.build_model(config, data.image_shape)
  optimizer = keras.optimizers.Adam(config.learning_rate)
  step_var = tf.Variable(0, dtype=tf.int32)

  @tf.function
  def step(images):
    seed = tf.stack([tf.constant(config.seed, tf.int32), step_var])
    with tf.GradientTape() as tape:
      loss, _ = model.objective(images, seed)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    step_var.assign_add(1)
    return loss

  ds = data_lib.train_dataset(data.train_images, config.batch_size,
                              config.seed)
  seconds = []
  images = 0
  for _ in range(config.epochs):
    start = time.perf_counter()
    n = 0
    for x in ds:
      loss = step(x)
      n += 1
    float(loss)  # wait for the last step
    seconds.append(time.perf_counter() - start)
    images = n * config.batch_size
  timed = seconds[1:] or seconds
  results, _ = metrics_lib.evaluate(model, data_lib.eval_images(
      data.test_images), seed=config.seed)
  results['train_images_per_second'] = images * len(timed) / sum(timed)
  return results


def main(_):
  data = data_lib.load('mnist_5k')
  runs = {}  # (model, loop) -> list of results
  for repeat in range(FLAGS.repeats):
    for name in FLAGS.models:
      config = config_lib.TrainConfig(
          model=name, epochs=FLAGS.epochs, batch_size=FLAGS.batch_size,
          learning_rate=FLAGS.learning_rate, latent_dim=FLAGS.latent_dim,
          plot_every=0, verbose=False)
      order = [f'trainers.train, steps_per_execution={n}'
               for n in FLAGS.steps_per_execution] + ['plain tf.function loop']
      if repeat % 2:
        order.reverse()
      for loop in order:
        start = time.perf_counter()
        if loop.startswith('trainers.train'):
          with tempfile.TemporaryDirectory() as tmp:
            config.model_dir = os.path.join(tmp, name)
            config.steps_per_execution = int(loop.rsplit('=', 1)[1])
            r = training.run(config)
        else:
          r = plain_loop(config, data)
        r['wall'] = time.perf_counter() - start
        runs.setdefault((name, loop), []).append(r)
  print(f'\nmnist_5k, conv, latent {FLAGS.latent_dim}, batch '
        f'{FLAGS.batch_size}, lr {FLAGS.learning_rate}, {FLAGS.epochs} '
        f'epochs, {FLAGS.repeats} interleaved runs each (mean; each run in '
        f'brackets), {os.cpu_count()} CPU cores, TF {tf.__version__}')
  header = ('model', 'loop', 'train img/s', 'test -ELBO', 'test recon NLL',
            'test MMD', 'wall s')
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  mean = lambda rs, k: sum(r.get(k, float('nan')) for r in rs) / len(rs)
  median = lambda rs, k: float(np.median([r[k] for r in rs]))
  for (name, loop), rs in runs.items():
    each = ', '.join(f"{r['train_images_per_second']:.0f}" for r in rs)
    print(f"| {name} | {loop} | {mean(rs, 'train_images_per_second'):.0f} "
          f"[{each}] | {mean(rs, 'test_neg_elbo'):.2f} | "
          f"{mean(rs, 'test_reconstruction_nll'):.2f} | "
          f"{mean(rs, 'test_mmd_to_prior'):.4f} | {mean(rs, 'wall'):.0f} |")
  key = 'train_images_per_second'
  for name in FLAGS.models:
    plain = runs[(name, 'plain tf.function loop')]
    for n in FLAGS.steps_per_execution:
      ours = runs[(name, f'trainers.train, steps_per_execution={n}')]
      # Runs of one repeat are back to back: their ratio cancels most of the
      # machine's drift between repeats.
      paired = [o[key] / p[key] for o, p in zip(ours, plain)]
      print(f'{name}: trainers.train (steps_per_execution={n}) / plain '
            f'loop = {mean(ours, key) / mean(plain, key):.3f} (means), '
            f'{median(ours, key) / median(plain, key):.3f} (medians), '
            f'per repeat ' + ', '.join(f'{r:.3f}' for r in paired))

if __name__ == '__main__':
  app.run(main)
