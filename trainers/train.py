"""Trains a model of the family (VAE, MMD-VAE, InfoVAE, IWAE).

  python -m trainers.train --model=vae --model_dir=runs/vae \
      --export_dir=runs/export/vae

Running the same command again resumes from the last checkpoint; a finished
run is not retrained.  See README.md for every flag.
"""

from absl import app
from absl import logging

from trainers import common

common.define_train_flags()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  config = common.exit_on_user_error(common.train_config_from_flags)
  from tfp_vae import training  # pylint: disable=g-import-not-at-top
  metrics = common.exit_on_user_error(training.run, config)
  logging.info('metrics: %s', metrics)
  print(' '.join(f'{k}={v:.4g}' for k, v in sorted(metrics.items())))


def run():
  app.run(main)


if __name__ == '__main__':
  run()
