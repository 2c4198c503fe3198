"""Exports a trained run's latest checkpoint as a SavedModel, no retraining.

  python -m trainers.export --model_dir=runs/vae --export_dir=runs/export/vae

Writes EXPORT_DIR/<next version>/ and EXPORT_DIR/models.config (see
tfp_vae/export.py for the signatures).
"""

import os

from absl import app
from absl import flags
from absl import logging

from trainers import common

flags.DEFINE_string('model_dir', None, 'Directory of a trainers.train run.')
flags.DEFINE_string('export_dir', None,
                    'TF Serving model base path: versions go in '
                    'EXPORT_DIR/<version>/.')
flags.DEFINE_string('model_name', None,
                    'Name in models.config (default: export_dir\'s name).')
flags.DEFINE_string('serving_base_path', None,
                    'base_path in models.config, as the server sees it '
                    '(default: /models/<model_name>).')
flags.mark_flags_as_required(['model_dir', 'export_dir'])
FLAGS = flags.FLAGS


def export_run(model_dir: str, export_dir: str, model_name=None,
               serving_base_path=None) -> str:
  from tfp_vae import export as export_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae import rundir  # pylint: disable=g-import-not-at-top
  model, _, info = rundir.load_trained_model(model_dir)
  return export_lib.export_savedmodel(model, tuple(info['image_shape']),
                                      export_dir, model_name,
                                      serving_base_path)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  path = common.exit_on_user_error(export_run, FLAGS.model_dir,
                                   FLAGS.export_dir, FLAGS.model_name,
                                   FLAGS.serving_base_path)
  logging.info('exported %s', path)
  print(os.path.abspath(path))


def run():
  app.run(main)


if __name__ == '__main__':
  run()
