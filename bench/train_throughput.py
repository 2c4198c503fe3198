"""Training throughput, peak memory and share of the machine's compute:
trainers.train's loop against a plain tf.function loop, side by side.

Every variant trains the same network on the same data, batch, optimizer and
seed, each run in a fresh process (see benchlib), repeats interleaved with
the order reversed every other repeat (this VM's speed drifts by +-15% from
minute to minute; a run and the plain-loop run next to it share the drift,
so their ratio is the figure to trust):

  plain              a `tf.function` step with `tf.GradientTape` over the
                     model's objective, iterating the same tf.data pipeline,
                     TensorFlow's default settings: the baseline;
  trainer            `tfp_vae.training.run.run`, what `python -m trainers.train`
                     runs (Keras fit with the model's train_step, per-epoch
                     checkpoint, test metrics, TensorBoard, NaN guard), with
                     the settings the trainer command uses;
  before             the trainer of an earlier checkout (--before_tree).

A variant is `loop[:key=value...]` with keys spe (steps per execution),
onednn (TF_ENABLE_ONEDNN_OPTS for that process; unset: the trainer
command's choice for trainer, TensorFlow's default for plain), precision,
for the trainer xla=on|off|auto (its --xla; `trainer,trainer:xla=on` is how
to measure a machine class for `measurements.XLA`), seed (weights, data order
and noise: another seed shows how far the test loss moves by chance, the
yardstick for precision's), and for plain jit=1 (the step compiled by
XLA), keep (for the trainer: the parts of tfp_vae/nn/precision.py kept in
float32 under a 16-bit precision, e.g. keep=distributions against the
policy's keep=outputs+distributions), likelihood (its --likelihood: the
cost per image of `pixel_cnn` against the conv decoder's `bernoulli`).

Images/s exclude the first epoch (tracing).  "whole run" is images trained
over the process's wall time from the start of training, including per-epoch
evaluation and checkpoints.  GFLOP/s = FLOPs per training image (the traced
train step, counted by TensorFlow's profiler) x images/s, against a float32
2048x2048 matmul measured in the same run.

  python bench/train_throughput.py
  git worktree add /tmp/before <commit>
  python bench/train_throughput.py --before_tree=/tmp/before \\
      --variants=plain,before:spe=10,trainer
"""

import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

from absl import app
from absl import flags

import benchlib

flags.DEFINE_integer('epochs', 8, 'Epochs per run (the first is not timed).')
flags.DEFINE_integer('batch_size', 100, 'Global batch.')
flags.DEFINE_integer('latent_dim', 2, 'Latent size.')
flags.DEFINE_string('dataset', 'mnist_5k',
                    'Dataset (fashion_mnist: the 60,000 images of the '
                    'sources, found as trainers.train finds it).')
flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to measure.')
flags.DEFINE_integer('repeats', 3, 'Interleaved runs of each variant.')
flags.DEFINE_list('variants', None,
                  'What to measure (see the module doc); the first is the '
                  'baseline of the ratio column.  Default: '
                  'benchlib.default_train_variants for this machine (plain, '
                  'the trainer at 1 and 10 steps per call and with XLA, and '
                  'float32 against 16-bit where it has 16-bit units).')
flags.DEFINE_string('before_tree', None, 'Checkout of an earlier commit for '
                    'the `before` variants.')
flags.DEFINE_string('child', None, 'Internal: run one measurement.')
FLAGS = flags.FLAGS


def _parse_variant(text: str) -> dict:
  loop, *options = text.split(':')
  if loop not in ('plain', 'trainer', 'before'):
    raise app.UsageError(f'--variants: {text!r} does not start with plain, '
                         f'trainer or before')
  variant = {'loop': loop}
  for option in options:
    key, _, value = option.partition('=')
    if key not in ('spe', 'onednn', 'precision', 'jit', 'xla', 'seed',
                   'keep', 'likelihood') or (
        not value) or (key == 'jit' and loop != 'plain') or (
            key in ('xla', 'keep') and loop == 'plain') or (
                key == 'keep' and loop == 'before'):
      raise app.UsageError(f'--variants: {text!r}: unknown option {option!r} '
                           f'(spe=N, onednn=0|1, precision=NAME, seed=N, '
                           f'likelihood=NAME, '
                           f'for the trainer xla=on|off|auto and (not '
                           f'before) keep=PART+PART, for plain jit=0|1)')
    if key == 'keep':
      from tfp_vae.nn import precision  # pylint: disable=g-import-not-at-top
      try:
        precision.checked(value.split('+'))
      except ValueError as e:
        raise app.UsageError(f'--variants: {text!r}: {e}') from None
    if key == 'likelihood':
      from tfp_vae.family import components  # pylint: disable=g-import-not-at-top
      if value not in components.LIKELIHOODS.names():
        raise app.UsageError(
            f'--variants: {text!r}: likelihood must be one of '
            f'{", ".join(components.LIKELIHOODS.names())}')
    variant[key] = value
  return variant


def _child(spec: dict) -> None:
  """One measurement in this fresh process (see the module doc)."""
  if spec['loop'] == 'trainer':
    # What `python -m trainers.train` does before TensorFlow is imported.
    from trainers import common  # pylint: disable=g-import-not-at-top
    common.start()
  import keras  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import models as models_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top

  if spec['loop'] == 'matmul':
    benchlib.report({'flops_per_second': benchlib.matmul_flops_per_second()})
    return
  config = config_lib.TrainConfig.create(**spec['config'])
  data = loaders.load(config.data.dataset)
  if spec['loop'] == 'flops':
    model = models_lib.build_model(config, data.image_shape)
    step = benchlib.plain_train_step(
        model, keras.optimizers.Adam(config.trainer.learning_rate))
    traced = step.get_concrete_function(tf.TensorSpec(
        (config.trainer.batch_size,) + tuple(data.image_shape), tf.float32))
    benchlib.report({'train_flops_per_image': benchlib.flops_of(traced) /
                     config.trainer.batch_size})
    return
  start = time.perf_counter()
  if spec['loop'] == 'trainer':
    keeping = contextlib.nullcontext()
    if spec.get('keep'):  # never for `before`: it may have no precision
      from tfp_vae.nn import precision  # pylint: disable=g-import-not-at-top
      keeping = precision.keeping(spec['keep'].split('+'))
    with tempfile.TemporaryDirectory() as tmp, keeping:
      config = config.replace(model_dir=os.path.join(tmp, config.model.name))
      results = training.run(config)
  else:
    results = _plain_loop(config, data, spec.get('jit') == '1')
  wall = time.perf_counter() - start
  images = len(data.train_images) // config.trainer.batch_size * config.trainer.batch_size
  benchlib.report({
      'images_per_second': results['train_images_per_second'],
      'whole_run_images_per_second': images * config.trainer.epochs / wall,
      'test_loss': results['test_loss'],
      'onednn': os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'default')})


def _plain_loop(config, data, jit_compile: bool = False):
  """Images/s and test metrics of `benchlib.plain_train_step` iterating the
  trainer's tf.data pipeline in Python."""
  import keras  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import inputs  # pylint: disable=g-import-not-at-top
  from tfp_vae.evaluation import metrics as metrics_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import models as models_lib  # pylint: disable=g-import-not-at-top
  model = models_lib.build_model(config, data.image_shape)
  step = benchlib.plain_train_step(
      model, keras.optimizers.Adam(config.trainer.learning_rate),
      jit_compile=jit_compile)
  ds = inputs.train_dataset(data.train_images, config.trainer.batch_size,
                            config.trainer.seed)
  seconds = []
  images = 0
  for _ in range(config.trainer.epochs):
    start = time.perf_counter()
    images = 0
    for x in ds:
      loss = step(x)
      images += config.trainer.batch_size
    float(loss)  # wait for the last step
    seconds.append(time.perf_counter() - start)
  timed = seconds[1:] or seconds
  results, _ = metrics_lib.test_set_metrics(
      model, inputs.eval_images(data.test_images), seed=config.trainer.seed)
  results['train_images_per_second'] = images * len(timed) / sum(timed)
  return results


def _config(model: str, variant: dict) -> dict:
  config = {'model': model, 'epochs': FLAGS.epochs,
            'dataset': FLAGS.dataset,
            'batch_size': FLAGS.batch_size, 'latent_dim': FLAGS.latent_dim,
            'plot_every': 0, 'verbose': False}
  if 'spe' in variant:
    config['steps_per_execution'] = int(variant['spe'])
  if 'precision' in variant:
    config['precision'] = variant['precision']
  if 'xla' in variant:
    config['xla'] = variant['xla']
  if 'seed' in variant:
    config['seed'] = int(variant['seed'])
  if 'likelihood' in variant:
    config['likelihood'] = variant['likelihood']
  return config


def _measure(variant_text: str, model: str) -> dict:
  variant = _parse_variant(variant_text)
  env = {}
  if 'onednn' in variant:
    env['TF_ENABLE_ONEDNN_OPTS'] = variant['onednn']
  pythonpath = None
  loop = variant['loop']
  if loop == 'before':
    if not FLAGS.before_tree:
      raise app.UsageError('--variants: `before` needs --before_tree')
    pythonpath, loop = os.path.abspath(FLAGS.before_tree), 'trainer'
  return benchlib.run_child(__file__, {'loop': loop,
                                       'config': _config(model, variant),
                                       'jit': variant.get('jit', '0'),
                                       'keep': variant.get('keep')},
                            env=env, pythonpath=pythonpath)


def main(argv):
  del argv
  if FLAGS.child:
    _child(json.loads(FLAGS.child))
    return
  if FLAGS.variants is None:
    from tfp_vae.runtime import hardware  # pylint: disable=g-import-not-at-top
    FLAGS.variants = benchlib.default_train_variants(hardware.this_machine())
  for text in FLAGS.variants:
    _parse_variant(text)  # fail on a typo before an hour of measuring
  runs = {}  # (model, variant) -> [result per repeat]
  peaks = []
  flops = {m: benchlib.run_child(__file__, {
      'loop': 'flops', 'config': _config(m, {})})['train_flops_per_image']
           for m in FLAGS.models}
  total = FLAGS.repeats * (1 + len(FLAGS.models) * len(FLAGS.variants))
  done = 0
  for repeat in range(FLAGS.repeats):
    peaks.append(benchlib.run_child(__file__, {'loop': 'matmul'})[
        'flops_per_second'])
    done += 1
    for model in FLAGS.models:
      order = list(FLAGS.variants)
      if repeat % 2:
        order.reverse()
      for variant in order:
        runs.setdefault((model, variant), []).append(_measure(variant, model))
        done += 1
        print(f'[{done}/{total}] {model} {variant}: '
              f"{runs[(model, variant)][-1]['images_per_second']:.0f} img/s",
              file=sys.stderr, flush=True)

  peak = statistics.median(peaks)
  print('\n' + benchlib.machine_line())
  print(f'{FLAGS.dataset}, conv, latent {FLAGS.latent_dim}, batch '
        f'{FLAGS.batch_size}, {FLAGS.epochs} epochs, {FLAGS.repeats} '
        f'interleaved runs per row, {os.cpu_count()} CPU cores.  Float32 '
        f'2048^2 matmul: {peak / 1e9:.1f} GFLOP/s (median; runs: '
        + ', '.join(f'{p / 1e9:.1f}' for p in peaks) + ').  Train step: '
        + ', '.join(f'{m} {flops[m] / 1e6:.1f} MFLOP/image'
                    for m in FLAGS.models) + '.')
  baseline = FLAGS.variants[0]
  rows = []
  for (model, variant), rs in runs.items():
    ips = [r['images_per_second'] for r in rs]
    base = [r['images_per_second'] for r in runs[(model, baseline)]]
    ratios = [a / b for a, b in zip(ips, base)]
    med = statistics.median(ips)
    rows.append([
        model, variant,
        f'{med:.0f} [' + ', '.join(f'{v:.0f}' for v in ips) + ']',
        f'{statistics.median(ratios):.3f} [' + ', '.join(
            f'{v:.2f}' for v in ratios) + ']',
        f"{statistics.median([r['whole_run_images_per_second'] for r in rs]):.0f}",
        f'{flops[model] * med / 1e9:.1f}',
        f'{100 * flops[model] * med / peak:.0f}%',
        f"{max(r['peak_rss_mb'] for r in rs):.0f}",
        f"{statistics.median([r['test_loss'] for r in rs]):.2f}",
    ])
  benchlib.print_table(
      ['model', 'variant', 'train img/s, median [runs]',
       f'/ {baseline}, median [per repeat]', 'whole run img/s', 'GFLOP/s',
       'of matmul peak', 'peak RSS MB', 'test loss'], rows)


if __name__ == '__main__':
  app.run(main)
