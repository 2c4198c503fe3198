"""The model family side by side: test IWAE log-likelihood and latent k-NN
accuracy of VAE, beta-VAE, MMD-VAE, IWAE and the VampPrior VAE, at each
latent size, with the same data, architecture, seed and budget.

  python bench/family.py --epochs=10 --latent_dims=2,16 --eval_iwae_samples=200

Runs go to --output_dir (rerunning reuses finished runs); prints one table.
"""

import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags

from tfp_vae.config import settings as config_lib
from tfp_vae.experiment import evaluate as evaluation
from tfp_vae.training import run as training

flags.DEFINE_integer('epochs', 10, 'Epochs per run.')
flags.DEFINE_list('latent_dims', ['2', '16'], 'Latent sizes.')
flags.DEFINE_integer('eval_iwae_samples', 200, 'k of the test IWAE bound.')
flags.DEFINE_float('beta', 4.0, 'beta of the beta-VAE.')
flags.DEFINE_integer('iwae_samples', 5, 'k of the IWAE training bound.')
flags.DEFINE_integer('prior_components', 50, 'VampPrior pseudo-inputs.')
flags.DEFINE_string('output_dir', '/tmp/tfp_vae_family', 'Where runs go.')
FLAGS = flags.FLAGS


def members():
  return [
      ('VAE', dict(model='vae')),
      (f'beta-VAE (beta={FLAGS.beta:g})', dict(model='vae', beta=FLAGS.beta)),
      ('MMD-VAE', dict(model='mmd_vae')),
      (f'IWAE (k={FLAGS.iwae_samples})',
       dict(model='iwae', iwae_samples=FLAGS.iwae_samples)),
      (f'VampPrior VAE ({FLAGS.prior_components} pseudo-inputs)',
       dict(model='vae', prior='vamp',
            prior_components=FLAGS.prior_components)),
  ]


def main(_):
  rows = []
  for latent in (int(d) for d in FLAGS.latent_dims):
    for name, kw in members():
      tag = '-'.join(f'{k}={v}' for k, v in kw.items())
      model_dir = os.path.join(FLAGS.output_dir, f'latent{latent}', tag)
      config = config_lib.TrainConfig.create(
          latent_dim=latent, epochs=FLAGS.epochs, model_dir=model_dir,
          plot_every=0, verbose=False, **kw)
      start = time.perf_counter()
      trained = training.run(config)
      result = evaluation.evaluate_run(model_dir, config_lib.EvalConfig(
          iwae_samples=FLAGS.eval_iwae_samples,
          cache_dir=os.path.join(FLAGS.output_dir, 'feature_classifier')))
      rows.append((latent, name, result.metrics,
                   trained['train_images_per_second'],
                   time.perf_counter() - start))
  print(f'\nmnist_5k, conv, batch 100, lr 1e-3, {FLAGS.epochs} epochs, '
        f'test IWAE with k = {FLAGS.eval_iwae_samples}, seed 0')
  header = ('latent', 'model', 'test IWAE log p(x)', 'test -ELBO',
            '5-NN acc', 'logreg acc', 'active units', 'MMD to prior',
            'train img/s', 'wall s')
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for latent, name, m, speed, wall in rows:
    elbo = m.get('test_neg_elbo')
    print(f"| {latent} | {name} | {m['test_iwae_log_likelihood']:.2f} | "
          f"{'-' if elbo is None else f'{elbo:.2f}'} | "
          f"{m['test_knn_accuracy']:.3f} | {m['test_logreg_accuracy']:.3f} | "
          f"{m['test_active_units']} | {m['test_mmd_to_prior']:.4f} | "
          f'{speed:.0f} | {wall:.0f} |')


if __name__ == '__main__':
  app.run(main)
