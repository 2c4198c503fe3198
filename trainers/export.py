"""Exports a trained run's latest checkpoint as a SavedModel, no retraining.

  python -m trainers.export --model_dir=runs/vae --export_dir=runs/export/vae

Writes EXPORT_DIR/<next version>/ and EXPORT_DIR/models.config (the
signatures are listed in docs/serving.md).
"""

import os
import time

from absl import flags
from absl import logging

from trainers import common

from tfp_vae.internal import checks  # pylint: disable=g-bad-import-order
from tfp_vae.config import settings as config_lib

common.define_run_dir_flag()
common.define('string', 'export_dir', None,
              'TF Serving model base path: versions go in '
              'EXPORT_DIR/<version>/ (required).')
common.define('string', 'model_name', None,
              'Name in models.config (default: export_dir\'s name).')
common.define('string', 'serving_base_path', None,
              'base_path in models.config, as the server sees it (default: '
              '/models/<model_name>).')
common.define('integer', 'max_batch', config_lib.MAX_BATCH,
              'Largest batch one request may carry (encode, decode, '
              'reconstruct, log_likelihood); larger requests are refused.')
flags.mark_flags_as_required(['model_dir', 'export_dir'])
FLAGS = flags.FLAGS


def export_run(model_dir: str, export_dir: str, model_name=None,
               serving_base_path=None,
               max_batch: int = config_lib.MAX_BATCH) -> str:
  """Exports model_dir's latest checkpoint; returns the version's path."""
  from tfp_vae.model import export as export_lib  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import trained  # pylint: disable=g-import-not-at-top
  model, _, info = trained.load_trained_model(model_dir)
  start = time.perf_counter()
  logging.info('writing the SavedModel (a few seconds)')
  path = export_lib.export_savedmodel(model, tuple(info['image_shape']),
                                      export_dir, model_name,
                                      serving_base_path, max_batch)
  logging.info('exported %s in %.1f s', path, time.perf_counter() - start)
  return path


def main(argv):  # pylint: disable=unused-argument
  common.exit_on_user_error(checks.positive_int, 'max_batch',
                            FLAGS.max_batch)
  common.import_tensorflow()
  path = common.exit_on_user_error(export_run, FLAGS.model_dir,
                                   FLAGS.export_dir, FLAGS.model_name,
                                   FLAGS.serving_base_path, FLAGS.max_batch)
  print(os.path.abspath(path))


def run():
  common.run(main, __doc__)


if __name__ == '__main__':
  run()
