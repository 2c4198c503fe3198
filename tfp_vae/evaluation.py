"""Evaluating finished runs, and the VAE / MMD-VAE side-by-side comparison.

`evaluate_run` loads a run's latest checkpoint and adds the costly metrics of
`tfp_vae.metrics.evaluate_all` to its metrics.json.  `compare` trains the VAE
and the MMD-VAE with the same architecture, data and seed, evaluates both in
the same feature space, draws their figures and writes DIR/metrics.json (one
object per model) and the self-contained DIR/report.html.
"""

import dataclasses
import os
from typing import Any, Callable, Optional

from absl import logging
import keras
import numpy as np

from tfp_vae import config as config_lib
from tfp_vae import data as data_lib
from tfp_vae import errors
from tfp_vae import metrics as metrics_lib
from tfp_vae import plots
from tfp_vae import report
from tfp_vae import training

COMPARED_MODELS = ('vae', 'mmd_vae')


def default_cache_dir() -> str:
  """$TFP_VAE_CACHE, else $XDG_CACHE_HOME/tfp_vae, else ~/.cache/tfp_vae."""
  if os.environ.get('TFP_VAE_CACHE'):
    return os.environ['TFP_VAE_CACHE']
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'tfp_vae')


@dataclasses.dataclass
class Evaluation:
  """What `evaluate_run` computed, for figures beyond metrics.json."""
  metrics: dict[str, Any]
  model: Any
  config: config_lib.TrainConfig
  data: data_lib.ImageData
  test_x: np.ndarray
  arrays: dict[str, np.ndarray]


def evaluate_run(model_dir: str, iwae_samples: int = 100,
                 proposal_scale: float = metrics_lib.DEFAULT_PROPOSAL_SCALE,
                 cache_dir: Optional[str] = None,
                 data_dir: Optional[str] = None,
                 download: Optional[bool] = None,
                 idx_dir: Optional[str] = None) -> Evaluation:
  """Evaluates model_dir's latest checkpoint; updates its metrics.json.

  Args:
    model_dir: a trainers.train run.
    iwae_samples: k of the importance-weighted likelihood (0: skip).
    proposal_scale: IWAE proposal scale for point-mass encoders.
    cache_dir: where the Frechet feature classifier is cached ('' or None:
      `default_cache_dir()`).
    data_dir, download, idx_dir: override the run's data settings (None:
      keep).

  Raises:
    CheckpointError: no run or unreadable checkpoint in model_dir.
    DataError, ConfigError: the run's data cannot be loaded.
  """
  if iwae_samples < 0:
    raise errors.ConfigError('eval_iwae_samples', iwae_samples,
                             'must be >= 0 (0 skips the IWAE estimate)')
  if not proposal_scale > 0:
    raise errors.ConfigError('proposal_scale', proposal_scale,
                             'must be a positive number')
  model, config, _ = training.load_trained_model(model_dir)
  data, _ = training.prepare_data(dataclasses.replace(
      config, data_dir=config.data_dir if data_dir is None else data_dir,
      download=config.download if download is None else download,
      idx_dir=config.idx_dir if idx_dir is None else idx_dir))
  test_x = data_lib.eval_images(data.test_images, config.binarize,
                                config.seed)
  train_x = data_lib.eval_images(data.train_images, config.binarize,
                                 config.seed)
  cache_dir = cache_dir or default_cache_dir()
  try:
    os.makedirs(cache_dir, exist_ok=True)
  except OSError as e:
    logging.warning('cannot cache the feature classifier in %s (%s); '
                    'training it without a cache', cache_dir, e)
    cache_dir = None
  results, arrays = metrics_lib.evaluate_all(
      model, train_x, data.train_labels, test_x, data.test_labels,
      data.num_classes, iwae_samples=iwae_samples, seed=config.seed,
      proposal_scale=proposal_scale, classifier_cache_dir=cache_dir)
  path = os.path.join(model_dir, training.METRICS_FILE)
  merged = training.read_metrics(model_dir)
  merged.update(results)
  training.write_json(path, merged)
  return Evaluation(merged, model, config, data, test_x, arrays)


def _figures(ev: Evaluation, out_dir: str) -> dict[str, str]:
  """Each model's figures for the report, named by figure kind."""
  name = ev.config.model
  labels = ev.data.test_labels
  paths = plots.draw_all(ev.model, ev.test_x, labels, ev.arrays['code_mean'],
                         out_dir, seed=ev.config.seed, prefix=f'{name}_',
                         class_names=ev.data.class_names)
  paths['interpolations'] = os.path.join(out_dir, f'{name}_interpolations.png')
  pairs = plots.interpolation_pairs(labels)
  plots.interpolations(ev.model, ev.test_x[pairs[:, 0]],
                       ev.test_x[pairs[:, 1]], paths['interpolations'])
  return paths


def epoch_figures(model_dir: str) -> dict[int, dict[str, str]]:
  """{epoch: {figure kind: png path}} of the plots a run drew every
  `plot_every` epochs (model_dir/plots/epoch_NNNN/)."""
  root = os.path.join(model_dir, 'plots')
  out = {}
  for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    if entry.startswith('epoch_') and entry[6:].isdigit():
      folder = os.path.join(root, entry)
      out[int(entry[6:])] = {
          name[:-4]: os.path.join(folder, name)
          for name in sorted(os.listdir(folder)) if name.endswith('.png')}
  return out


def compare(base: config_lib.TrainConfig, output_dir: str,
            iwae_samples: int = 100,
            proposal_scale: float = metrics_lib.DEFAULT_PROPOSAL_SCALE,
            progress: bool = True,
            log: Callable[[str], None] = logging.info) -> dict[str, Any]:
  """Trains, evaluates and reports the VAE and the MMD-VAE side by side.

  Both runs take every setting from `base` except `model`; they go to
  output_dir/vae and output_dir/mmd_vae (rerunning resumes or reuses them).
  They draw their figures every `base.plot_every` epochs; the report shows
  those side by side.

  Returns:
    {model name: metrics} as written to output_dir/metrics.json.
  """
  for name in COMPARED_MODELS:
    base.for_model(name).validate()
  os.makedirs(output_dir, exist_ok=True)
  figures_dir = os.path.join(output_dir, 'figures')
  os.makedirs(figures_dir, exist_ok=True)
  cache_dir = os.path.join(output_dir, 'feature_classifier')
  # Units of the progress bar: every epoch of both models, then each model's
  # evaluation counts as 2 epochs' worth.
  total = len(COMPARED_MODELS) * (base.epochs + 2)
  bar = (keras.utils.Progbar(total, unit_name='epoch', stateful_metrics=[
      f'{m}_loss' for m in COMPARED_MODELS]) if progress else None)
  done = 0
  evaluations = {}
  for name in COMPARED_MODELS:
    config = dataclasses.replace(
        base.for_model(name), model_dir=os.path.join(output_dir, name),
        export_dir=None, verbose=False)
    offset = done

    def on_epoch(epoch, logs, offset=offset, name=name):
      if bar is not None:
        bar.update(offset + epoch, [(f'{name}_loss', logs.get('loss', 0.0))])

    log(f'training {name} for {base.epochs} epochs in {config.model_dir}')
    training.run(config, on_epoch=on_epoch)
    done += base.epochs
    if bar is not None:
      bar.update(done)
    log(f'evaluating {name} (IWAE k={iwae_samples}, probes, Frechet)')
    evaluations[name] = evaluate_run(config.model_dir, iwae_samples,
                                     proposal_scale, cache_dir=cache_dir)
    done += 2
    if bar is not None:
      bar.update(done)
  figures = {name: _figures(ev, figures_dir)
             for name, ev in evaluations.items()}
  over_training = {name: epoch_figures(ev.config.model_dir)
                   for name, ev in evaluations.items()}
  curves = os.path.join(figures_dir, 'training_curves.png')
  plots.training_curves({name: training.read_history(ev.config.model_dir)
                         for name, ev in evaluations.items()}, curves)
  results = {name: ev.metrics for name, ev in evaluations.items()}
  training.write_json(os.path.join(output_dir, 'metrics.json'), results)
  path = report.write_report(
      os.path.join(output_dir, 'report.html'), results, figures,
      {'training_curves': curves}, base, over_training)
  log(f'wrote {path}')
  return results
