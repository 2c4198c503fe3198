"""The trainer against a plain PyTorch loop on the same network and data.

The peer is the network of the MMD-VAE article's VAE (conv 32 and 64, 3x3
stride 2, valid padding, dense 2 x latent; dense 7x7x32, deconv 64 and 32,
deconv 1) trained on the same negative ELBO (Bernoulli logits, analytic
KL), batch, optimizer and epochs, in PyTorch's usual loop on the CPU.  Both
run in fresh processes, interleaved, on the same machine; the first epoch is
not timed.  Reported: train images/s, the ratio, peak RSS, test -ELBO.

Needs PyTorch's CPU build, an optional extra: pip install -e '.[peers]'
(on these machines it installs torch 2.13.0 from a wheel on disk).

  .venv/bin/python bench/torch_peer.py --dataset=mnist_5k --epochs=5
"""

import json
import statistics
import time

from absl import app
from absl import flags

import benchlib

flags.DEFINE_string('dataset', 'mnist_5k', 'mnist_5k or fashion_mnist.')
flags.DEFINE_integer('epochs', 5, 'Epochs per run (the first not timed).')
flags.DEFINE_integer('latent_dim', 2, 'Latent size.')
flags.DEFINE_integer('repeats', 2, 'Interleaved runs of each loop.')
flags.DEFINE_string('child', None, 'Internal: run one measurement.')
FLAGS = flags.FLAGS
BATCH = 100


def _torch_run(spec):
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  from torch import nn  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  torch.manual_seed(0)
  d = loaders.load(spec['dataset'])
  train = torch.from_numpy(d.train_images.astype(np.float32) / 255).permute(
      0, 3, 1, 2).contiguous()
  test = torch.from_numpy(d.test_images.astype(np.float32) / 255).permute(
      0, 3, 1, 2).contiguous()
  latent = spec['latent_dim']
  encoder = nn.Sequential(
      nn.Conv2d(1, 32, 3, 2), nn.ReLU(), nn.Conv2d(32, 64, 3, 2), nn.ReLU(),
      nn.Flatten(), nn.Linear(64 * 6 * 6, 2 * latent))
  decoder = nn.Sequential(
      nn.Linear(latent, 7 * 7 * 32), nn.ReLU(), nn.Unflatten(1, (32, 7, 7)),
      nn.ConvTranspose2d(32, 64, 3, 2, padding=1, output_padding=1),
      nn.ReLU(),
      nn.ConvTranspose2d(64, 32, 3, 2, padding=1, output_padding=1),
      nn.ReLU(), nn.ConvTranspose2d(32, 1, 3, 1, padding=1))
  params = list(encoder.parameters()) + list(decoder.parameters())
  optimizer = torch.optim.Adam(params, lr=1e-3)

  def neg_elbo(x):
    loc, raw = encoder(x).chunk(2, dim=1)
    scale = nn.functional.softplus(raw) + 1e-5
    z = loc + scale * torch.randn_like(loc)
    logits = decoder(z)
    distortion = nn.functional.binary_cross_entropy_with_logits(
        logits, x, reduction='none').sum((1, 2, 3))
    rate = 0.5 * (loc**2 + scale**2 - 1 - 2 * torch.log(scale)).sum(1)
    return distortion + rate

  seconds = []
  for _ in range(spec['epochs']):
    start = time.perf_counter()
    order = torch.randperm(len(train))
    for i in range(0, len(train) - BATCH + 1, BATCH):
      optimizer.zero_grad()
      loss = neg_elbo(train[order[i:i + BATCH]]).mean()
      loss.backward()
      optimizer.step()
    seconds.append(time.perf_counter() - start)
  with torch.no_grad():
    test_loss = float(torch.cat([neg_elbo(test[i:i + 500])
                                 for i in range(0, len(test), 500)]).mean())
  images = len(train) // BATCH * BATCH
  return {'images_per_second': images * len(seconds[1:]) / sum(seconds[1:]),
          'test_neg_elbo': test_loss, 'threads': torch.get_num_threads()}


def _trainer_run(spec):
  import os  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  from trainers import common  # pylint: disable=g-import-not-at-top
  common.start()  # what `python -m trainers.train` does before TensorFlow
  from tfp_vae.config import settings as config_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  with tempfile.TemporaryDirectory() as tmp:
    results = training.run(config_lib.TrainConfig.create(
        dataset=spec['dataset'], latent_dim=spec['latent_dim'],
        epochs=spec['epochs'], batch_size=BATCH, plot_every=0,
        verbose=False, model_dir=os.path.join(tmp, 'run')))
  return {'images_per_second': results['train_images_per_second'],
          'test_neg_elbo': results['test_neg_elbo']}


def main(argv):
  del argv
  if FLAGS.child:
    spec = json.loads(FLAGS.child)
    benchlib.report(_torch_run(spec) if spec['loop'] == 'torch'
                    else _trainer_run(spec))
    return
  runs = {'torch': [], 'trainer': []}
  for repeat in range(FLAGS.repeats):
    for loop in (('torch', 'trainer') if repeat % 2 == 0
                 else ('trainer', 'torch')):
      runs[loop].append(benchlib.run_child(__file__, {
          'loop': loop, 'dataset': FLAGS.dataset, 'epochs': FLAGS.epochs,
          'latent_dim': FLAGS.latent_dim}))
  print('\n' + benchlib.machine_line())
  print(f'{FLAGS.dataset}, conv, latent {FLAGS.latent_dim}, batch {BATCH}, '
        f'Adam 1e-3, {FLAGS.epochs} epochs (first not timed), '
        f'{FLAGS.repeats} interleaved runs')
  ratios = [t['images_per_second'] / p['images_per_second']
            for t, p in zip(runs['trainer'], runs['torch'])]
  rows = []
  for loop, rs in runs.items():
    ips = [r['images_per_second'] for r in rs]
    rows.append([loop, f'{statistics.median(ips):.0f} [' + ', '.join(
        f'{v:.0f}' for v in ips) + ']',
                 f"{max(r['peak_rss_mb'] for r in rs):.0f}",
                 f"{statistics.median([r['test_neg_elbo'] for r in rs]):.2f}"])
  benchlib.print_table(['loop', 'train img/s median [runs]', 'peak RSS MB',
                        'test -ELBO'], rows)
  print(f'trainer / PyTorch: {statistics.median(ratios):.2f} [' + ', '.join(
      f'{r:.2f}' for r in ratios) + ']')


if __name__ == '__main__':
  app.run(main)
