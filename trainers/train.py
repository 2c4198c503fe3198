r"""Trains a member of the model family (--model; --help lists every one).

  python -m trainers.train --model=vae --model_dir=runs/vae \
      --export_dir=runs/export/vae

Running the same command again resumes from the last checkpoint; a finished
run is not retrained.
"""

from absl import logging

from trainers import common

common.define_train_flags()


def main(argv):  # pylint: disable=unused-argument
  # Every flag is checked before TensorFlow loads.
  config = common.exit_on_user_error(
      lambda: common.train_config_from_flags().validate())
  common.import_tensorflow()
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  metrics = common.exit_on_user_error(training.run, config)
  logging.info('metrics: %s', ', '.join(
      f'{k}={common.format_metric(v)}' for k, v in sorted(metrics.items())))


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
