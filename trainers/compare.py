r"""Trains family members side by side and writes a report.

  python -m trainers.compare --dataset=mnist_5k --epochs=30 \
      --output_dir=runs/compare

compares the articles' pair, the VAE and the MMD-VAE.  --models takes any
registered members, each with its own settings after ':' (`name:key=value`,
several ':'-separated; a tuple setting's values '/'-separated):

  python -m trainers.compare --models=vae,mmd_vae,vae:beta=4,\
info_vae:alpha=0.5 --output_dir=runs/family

Every member gets the same architecture, data, seed and budget (every flag
below applies to all of them; a member setting given as a flag, such as
--mmd_weight, to every compared member that has it).  Writes
OUTPUT_DIR/report.html (self-contained), OUTPUT_DIR/metrics.json ({"vae":
{...}, "mmd_vae": {...}}), the figures in OUTPUT_DIR/figures/ and each run
in OUTPUT_DIR/<spec, ':' written '_'> (running the command again resumes or
reuses them).

The small-data experiment of the InfoVAE tutorial:

  python -m trainers.compare --train_examples=500 --epochs=300 \
      --output_dir=runs/compare_500
"""

from absl import flags

from tfp_vae.family import members as family
from trainers import common

common.define('string', 'output_dir', None,
              'Where the report, metrics and the runs go (required).')
common.define('list', 'models', list(family.COMPARED_PAIR),
              'The compared members: registered --model names, each with '
              'its own settings as name:key=value[:key=value]; default the '
              "articles' pair.")
common.define('integer', 'seeds', 1,
              'Seeds per member: --seed and the next ones, the same for every '
              'member, so that differences are paired; metrics get 95% t '
              'intervals from 2 seeds on.')
common.define('integer', 'parallel', 1,
              'Runs at once: 1 trains them one after another in this '
              'process; k > 1 runs k trainers.train and trainers.evaluate '
              'processes at once, each with cores/k threads.')
common.define('bool', 'progress', True,
              'Log progress lines for the whole comparison.')
common.define_config_flags(exclude=('model_dir', 'export_dir', 'verbose',
                                     'compared_models'))
common.define_eval_flags()
flags.mark_flags_as_required(['output_dir'])
FLAGS = flags.FLAGS

SHOWN = ('test_iwae_log_likelihood', 'test_reconstruction_nll',
         'test_mutual_information', 'test_code_gain', 'test_mmd_to_prior',
         'test_active_units', 'test_knn_accuracy',
         'test_logreg_accuracy', 'test_classifier_frechet_distance')


def main(argv):  # pylint: disable=unused-argument
  base, members, eval_config = common.exit_on_user_error(
      common.compare_configs_from_flags, FLAGS.models, FLAGS.seeds,
      FLAGS.parallel)
  common.import_tensorflow()
  from tfp_vae.experiment import comparison  # pylint: disable=g-import-not-at-top
  results = common.exit_on_user_error(
      comparison.compare, base, members, FLAGS.output_dir, eval_config,
      FLAGS.progress, seeds=FLAGS.seeds, parallel=FLAGS.parallel)
  models = {m: results['models'][m] for m in results['order']}
  width = max(12, *(len(m) + 1 for m in models))
  print(f'{len(results["seeds"])} seed(s); mean over seeds')
  print(f"{'metric':34s}" + ''.join(f'{m:>{width}s}' for m in models))
  for key in SHOWN:
    means = [models[m]['summary'].get(key, {}).get('mean', float('nan'))
             for m in models]
    print(f'{key:34s}' + ''.join(f'{v:{width}.4g}' for v in means))
  print(f'report: {FLAGS.output_dir}/report.html')


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
