"""Evaluates a trained run's latest checkpoint and updates its metrics.json.

  python -m trainers.evaluate --model_dir=runs/vae --eval_iwae_samples=1000

Adds the importance-weighted log-likelihood, latent probes (k-NN, logistic
regression), active units and the classifier Frechet distance to the metrics the
trainer wrote (tfp_vae/experiment/evaluate.py lists every estimator).
"""

import json

from absl import flags
from absl import logging

from trainers import common

common.define_run_dir_flag()
common.define('string', 'data_dir', None,
              'TFDS data directory (default: the one the run used).')
common.define('string', 'idx_dir', None,
              'Directory with the IDX files (default: the one the run '
              'used).')
common.define_eval_flags()
flags.mark_flags_as_required(['model_dir'])
FLAGS = flags.FLAGS


def main(argv):  # pylint: disable=unused-argument
  eval_config = common.exit_on_user_error(common.eval_config_from_flags)
  common.import_tensorflow()
  from tfp_vae.experiment import evaluate as evaluation  # pylint: disable=g-import-not-at-top
  result = common.exit_on_user_error(
      evaluation.evaluate_run, FLAGS.model_dir, eval_config,
      data_dir=FLAGS.data_dir, idx_dir=FLAGS.idx_dir)
  logging.info('metrics: %s', result.metrics)
  print(json.dumps(result.metrics, indent=2, sort_keys=True))


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
