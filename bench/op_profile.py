"""Where the time of a training step and of the IWAE estimate goes, by op:
TensorFlow's profiler traced over a run of calls, its per-op statistics
grouped into kinds (convolutions forward and backward, dense matmuls,
bias and activations, the MMD term, the rest), against the step's wall time
and the machine's float32 matmul peak measured in the same run.

  python bench/op_profile.py                         # both models, both jobs
  python bench/op_profile.py --models=mmd_vae --jobs=train

Each (model, job) runs in a fresh process (benchlib), with oneDNN set as the
trainers set it.  `train` is a training step (the model's objective, its
gradient and Adam: `benchlib.plain_train_step`) on one fixed batch, so the
input pipeline is not in it; `iwae` is one call of the log-weight function the IWAE estimate runs
(`--iwae_images` images x `--iwae_k` samples decoded per call; 1 x 1000 is
how `likelihood.iwae_log_likelihood` batches k = 1000 by default).

A second table per row splits the same op time by network layer (forward
and gradient ops of the layer together, everything outside the two networks
as one row), with each layer's FLOPs (TensorFlow's per-op FLOP statistics of
the traced graph) and so its own GFLOP/s against the matmul peak: which
layers run near the machine's peak and which do not.

Kinds are shares of the ops' self time as the profiler records it on the
thread that runs each op (oneDNN's kernels split their work over the other
cores without showing there, so the profiler's idle time is not a measure
of how busy the cores were; one thread instead of two made a step 1.7x
slower).  Ops inside `tf.name_scope('mmd')` (the MMD
term, its prior draws and its gradient) count as "MMD term".
"""

import collections
import glob
import json
import os
import re
import tempfile
import time

from absl import app
from absl import flags

import benchlib

flags.DEFINE_list('models', ['vae', 'mmd_vae'], 'Models to profile.')
flags.DEFINE_list('jobs', ['train', 'iwae'], 'train and/or iwae.')
flags.DEFINE_integer('calls', 100, 'Profiled calls (after 20 not profiled).')
flags.DEFINE_integer('batch_size', 100, 'Training batch.')
flags.DEFINE_integer('iwae_k', 1000, 'Samples per image of the IWAE call.')
flags.DEFINE_integer('iwae_images', 1, 'Images per IWAE call (1: what '
                     'likelihood.iwae_log_likelihood does at k = 1000 with '
                     'its default 1,000 samples per call).')
flags.DEFINE_string('child', None, 'Internal: run one measurement.')
FLAGS = flags.FLAGS

KINDS = (
    ('MMD term', lambda t, name: name.startswith(('mmd/', 'gradient_tape/mmd/'))
     or '/mmd/' in name),
    ('conv forward', lambda t, _: t.endswith(('Conv2D', 'FusedConv2D'))),
    ('conv backprop input (and transposed conv)',
     lambda t, _: 'Conv2DBackpropInput' in t),
    ('conv backprop filter', lambda t, _: 'Conv2DBackpropFilter' in t),
    ('dense matmul', lambda t, _: 'MatMul' in t),
    ('bias and activations',
     lambda t, _: t in ('BiasAdd', 'BiasAddGrad', 'Relu', 'ReluGrad',
                        'Softplus', 'SoftplusGrad', 'Sigmoid', 'SigmoidGrad',
                        'Exp', 'Log1p')),
    ('data movement (reshape, tile, transpose, gather, cast)',
     lambda t, _: t in ('Reshape', 'Tile', 'Transpose', 'GatherV2',
                        'Cast', 'ConcatV2', 'BroadcastTo', 'StridedSlice',
                        'Pack', 'Slice', 'Identity', '_MklToTf')),
    ('optimizer and variables',
     lambda t, _: 'Variable' in t or t.startswith(('Assign', 'ResourceApply'))),
)


def _kind(op_type: str, name: str) -> str:
  for kind, match in KINDS:
    if match(op_type, name):
      return kind
  return 'other element-wise and reductions'


OUTSIDE = 'outside the networks (likelihood, KL/MMD, optimizer)'


def _layer_scope(op_name: str) -> str:
  """'encoder/conv2d_1' for an op of that network layer (forward or
  gradient), else OUTSIDE.  Op names carry the Keras layer names with a
  `_N` suffix that makes them unique in the graph:
  '[gradient_tape/]encoder_1/conv_encoder_1/conv2d_1_2/...' is the layer
  'conv2d_1' of the encoder's network."""
  found = re.match(r'(encoder|decoder)(?:_\d+)?/[^/]+/([^/]+?)_\d+/',
                   op_name.removeprefix('gradient_tape/'))
  return f'{found.group(1)}/{found.group(2)}' if found else OUTSIDE


def _layer_labels(model) -> dict[str, str]:
  """'encoder/conv2d_1' -> a readable description, networks' layers in
  order."""
  labels = {}
  for part, net in (('encoder', model.encoder.network),
                    ('decoder', model.decoder.network)):
    for layer in net.layers:
      if not layer.weights:
        continue
      config = layer.get_config()
      kind = type(layer).__name__
      if 'kernel_size' in config:
        kind += (f' {config["filters"]} ({"x".join(map(str, config["kernel_size"]))}'
                 f', stride {config["strides"][0]})')
      elif 'units' in config:
        kind += f' {config["units"]}'
      shape = 'x'.join(str(d) for d in layer.output.shape[1:])
      labels[f'{part}/{layer.name}'] = f'{part} {kind} -> {shape}'
  return labels


def _op_flops(graph) -> dict[str, float]:
  """FLOPs of each op of a traced graph that has FLOP statistics."""
  from tensorflow.python.framework import ops  # pylint: disable=g-import-not-at-top
  flops = {}
  for op in graph.get_operations():
    try:
      value = ops.get_stats_for_node_def(graph, op.node_def, 'flops').value
    except ValueError:  # a shape the statistics cannot use
      value = None
    if value:
      flops[op.name] = float(value)
  return flops


def _op_rows(logdir: str) -> list[dict]:
  """The profiler's framework op statistics (the table TensorBoard's
  profile plugin shows), as dicts."""
  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin  # pylint: disable=g-import-not-at-top
  paths = glob.glob(os.path.join(logdir, '**', '*.xplane.pb'),
                    recursive=True)
  data, ok = _pywrap_profiler_plugin.xspace_to_tools_data(
      paths, 'framework_op_stats', {})
  if not ok:
    raise RuntimeError(f'the profiler could not convert {paths}')
  table = json.loads(data)
  table = table[0] if isinstance(table, list) else table
  columns = [c['id'] for c in table['cols']]
  return [{c: (cell or {}).get('v') for c, cell in zip(columns, row['c'])}
          for row in table['rows']]


def _child(spec: dict) -> None:
  from trainers import common  # pylint: disable=g-import-not-at-top
  common.start()  # what `python -m trainers.train` does before TensorFlow
  import keras  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import likelihood  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import models as models_lib  # pylint: disable=g-import-not-at-top

  if spec['job'] == 'matmul':
    benchlib.report({'flops_per_second': benchlib.matmul_flops_per_second()})
    return
  shape = (28, 28, 1)
  config = config_lib.TrainConfig.create(model=spec['model'], latent_dim=2)
  model = models_lib.build_model(config, shape)
  rng = np.random.default_rng(0)
  if spec['job'] == 'train':
    x = tf.constant(rng.uniform(size=(spec['batch_size'],) + shape),
                    tf.float32)
    call = benchlib.plain_train_step(model, keras.optimizers.Adam(1e-4))
    traced = call.get_concrete_function(tf.TensorSpec(x.shape, tf.float32))
    images = spec['batch_size']
    args = (x,)
  else:
    x = tf.constant(rng.uniform(size=(spec['iwae_images'],) + shape),
                    tf.float32)
    # k as a Python number, so that the profiler's FLOP count sees the
    # shapes (the estimate itself passes it as a tensor: same kernels).
    k = spec['iwae_k']
    call = tf.function(lambda x: likelihood.log_importance_weights(
        model, x, k, tf.constant([0, 0])), autograph=False)
    traced = call.get_concrete_function(tf.TensorSpec(x.shape, tf.float32))
    images = spec['iwae_images']
    args = (x,)
  flops = benchlib.flops_of(traced)
  for _ in range(20):
    out = call(*args)
  np.asarray(out)
  start = time.perf_counter()
  for _ in range(spec['calls']):
    out = call(*args)
  np.asarray(out)
  wall = (time.perf_counter() - start) / spec['calls']
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    for _ in range(spec['calls']):
      out = call(*args)
    np.asarray(out)
    tf.profiler.experimental.stop()
    rows = _op_rows(logdir)
  busy = collections.Counter()
  layer_us = collections.Counter()
  for row in rows:
    us = float(row['total_self_time'] or 0.0) / spec['calls']
    if row['type'] != 'IDLE':
      busy[_kind(row['type'], row['operation'] or '')] += us
      layer_us[_layer_scope(row['operation'] or '')] += us
  layer_flops = collections.Counter()
  for name, value in _op_flops(traced.graph).items():
    layer_flops[_layer_scope(name)] += value
  labels = _layer_labels(model)
  layers = [{'layer': labels.get(scope, scope), 'us': layer_us[scope],
             'flops': layer_flops[scope]}
            for scope in list(labels) + [OUTSIDE] if layer_us[scope]]
  benchlib.report({'wall_ms': 1e3 * wall, 'flops': flops, 'images': images,
                   'busy_us': dict(busy), 'layers': layers})


def main(argv):
  del argv
  if FLAGS.child:
    _child(json.loads(FLAGS.child))
    return
  for job in FLAGS.jobs:
    if job not in ('train', 'iwae'):
      raise app.UsageError(f'--jobs: {job!r} is not train or iwae')
  for name in ('calls', 'batch_size', 'iwae_k', 'iwae_images'):
    if getattr(FLAGS, name) < 1:
      raise app.UsageError(f'--{name} must be at least 1')
  peak = benchlib.run_child(__file__, {'job': 'matmul'})['flops_per_second']
  print(benchlib.machine_line())
  print(f'Float32 2048^2 matmul: {peak / 1e9:.1f} GFLOP/s.  Profiled calls: '
        f'{FLAGS.calls} per row.')
  kinds = [k for k, _ in KINDS] + ['other element-wise and reductions']
  for job in FLAGS.jobs:
    for model in FLAGS.models:
      r = benchlib.run_child(__file__, {
          'job': job, 'model': model, 'calls': FLAGS.calls,
          'batch_size': FLAGS.batch_size, 'iwae_k': FLAGS.iwae_k,
          'iwae_images': FLAGS.iwae_images})
      busy = sum(r['busy_us'].values())
      rate = r['flops'] / (r['wall_ms'] / 1e3)
      what = (f'train step, batch {FLAGS.batch_size}' if job == 'train' else
              f'IWAE call, {FLAGS.iwae_images} images x {FLAGS.iwae_k} '
              f'samples')
      print(f'\n{model}, {what}: {r["wall_ms"]:.2f} ms per call, '
            f'{r["flops"] / 1e6:.0f} MFLOP per call, {rate / 1e9:.1f} GFLOP/s '
            f'= {100 * rate / peak:.0f}% of the matmul peak.')
      rows = [[kind, f'{r["busy_us"].get(kind, 0.0) / 1e3:.2f}',
               f'{100 * r["busy_us"].get(kind, 0.0) / busy:.1f}%']
              for kind in kinds if r['busy_us'].get(kind)]
      benchlib.print_table(['op kind', 'op time, ms per call', 'share'],
                           rows)
      print()
      rows = []
      for layer in r['layers']:
        rate = layer['flops'] / (layer['us'] / 1e6)
        rows.append([layer['layer'], f'{layer["us"] / 1e3:.2f}',
                     f'{100 * layer["us"] / busy:.1f}%',
                     f'{layer["flops"] / 1e6:.0f}', f'{rate / 1e9:.0f}',
                     f'{100 * rate / peak:.0f}%'])
      benchlib.print_table(['layer (forward and gradient ops)',
                            'op time, ms per call', 'share', 'MFLOP',
                            'GFLOP/s', 'of matmul peak'], rows)


if __name__ == '__main__':
  app.run(main)
