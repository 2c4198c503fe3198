r"""Trains the VAE and the MMD-VAE side by side and writes a report.

  python -m trainers.compare --dataset=mnist_5k --epochs=30 \
      --output_dir=runs/compare

Both models get the same architecture, data, seed and budget (every flag
below applies to both; a model's own settings, such as --mmd_weight, to the
model that uses them).  Writes OUTPUT_DIR/report.html (self-contained),
OUTPUT_DIR/metrics.json ({"vae": {...}, "mmd_vae": {...}}), the figures in
OUTPUT_DIR/figures/ and the two runs in OUTPUT_DIR/vae and
OUTPUT_DIR/mmd_vae (running the command again resumes or reuses them).

The small-data experiment of the InfoVAE tutorial:

  python -m trainers.compare --train_examples=500 --epochs=300 \
      --output_dir=runs/compare_500
"""

from absl import app
from absl import flags

from trainers import common

common.define('string', 'output_dir', None,
              'Where the report, metrics and both runs go (required).')
common.define('bool', 'progress', True,
              'Log progress lines for the whole comparison.')
common.define_config_flags(members=('vae', 'mmd_vae'),
                           exclude=('model_dir', 'export_dir', 'verbose'))
common.define_eval_flags()
flags.mark_flags_as_required(['output_dir'])
FLAGS = flags.FLAGS


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  base, settings, eval_config = common.exit_on_user_error(
      common.compare_configs_from_flags)
  common.import_tensorflow()
  from tfp_vae import evaluation  # pylint: disable=g-import-not-at-top
  results = common.exit_on_user_error(
      evaluation.compare, base, FLAGS.output_dir, eval_config, FLAGS.progress,
      member_settings=settings)
  keys = ('test_iwae_log_likelihood', 'test_reconstruction_nll',
          'test_mmd_to_prior', 'test_active_units', 'test_knn_accuracy',
          'test_logreg_accuracy', 'test_classifier_frechet_distance')
  print(f"{'metric':34s}" + ''.join(f'{m:>12s}' for m in results))
  for key in keys:
    print(f'{key:34s}' + ''.join(
        f"{results[m].get(key, float('nan')):12.4g}" for m in results))
  print(f'report: {FLAGS.output_dir}/report.html')


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
