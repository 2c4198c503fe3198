"""Evaluating finished runs, and the VAE / MMD-VAE side-by-side comparison.

`evaluate_run` loads a run's latest checkpoint and adds the costly metrics
to its metrics.json (`evaluate_all`): the importance-weighted log-likelihood
(`tfp_vae.likelihood`), the latent probes (`tfp_vae.probes`), the classifier
Frechet distance (`tfp_vae.frechet`), on top of the cheap test metrics
(`tfp_vae.metrics`).  `compare` trains the VAE and the MMD-VAE with the same
architecture, data and seed, evaluates both in the same feature space, draws
their figures and writes DIR/metrics.json (one object per model) and the
self-contained DIR/report.html.  `EvalConfig` states every evaluation
default once.
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
from tfp_vae import family
from tfp_vae import frechet
from tfp_vae import likelihood
from tfp_vae import metrics as metrics_lib
from tfp_vae import plots
from tfp_vae import probes
from tfp_vae import progress as progress_lib
from tfp_vae import report
from tfp_vae import rundir
from tfp_vae import training

COMPARED_MODELS = ('vae', 'mmd_vae')


def default_cache_dir() -> str:
  """$TFP_VAE_CACHE, else $XDG_CACHE_HOME/tfp_vae, else ~/.cache/tfp_vae."""
  if os.environ.get('TFP_VAE_CACHE'):
    return os.environ['TFP_VAE_CACHE']
  base = os.environ.get('XDG_CACHE_HOME') or os.path.join(
      os.path.expanduser('~'), '.cache')
  return os.path.join(base, 'tfp_vae')


EvalConfig = config_lib.EvalConfig


@dataclasses.dataclass
class Evaluation:
  """What `evaluate_run` computed, for figures beyond metrics.json."""
  metrics: dict[str, Any]
  model: Any
  config: config_lib.TrainConfig
  data: data_lib.ImageData
  test_x: np.ndarray
  arrays: dict[str, np.ndarray]


def evaluate_all(model, train_images: np.ndarray, train_labels: np.ndarray,
                 test_images: np.ndarray, test_labels: np.ndarray,
                 num_classes: int, eval_config: EvalConfig = EvalConfig(),
                 seed: int = 0, classifier: Optional[keras.Model] = None
                 ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Every test metric of a trained model.

  Args:
    model: the trained model.
    train_images, test_images: float32 [N, H, W, C] in [0, 1] (as trained).
    train_labels, test_labels: int [N] (probes and classifier only).
    num_classes: number of labels.
    eval_config: how (IWAE k, proposal, cache).
    seed: seed of every Monte-Carlo draw.
    classifier: the Frechet feature network (trained, or read from the
      cache, if None).

  Returns:
    (metrics, arrays): the flat metrics dict, and per-image arrays
    ('code_mean', 'code_sample', 'distortion', 'iwae', 'train_code_mean',
    'generated').
  """
  out, terms = metrics_lib.evaluate(model, test_images, seed=seed)
  if eval_config.iwae_samples:
    iwae = likelihood.iwae_log_likelihood(
        model, test_images, eval_config.iwae_samples, seed=seed,
        proposal_scale=eval_config.proposal_scale,
        images_per_call=eval_config.images_per_call)
    terms['iwae'] = iwae
    out['test_iwae_log_likelihood'] = float(iwae.mean())
    out['test_iwae_samples'] = int(eval_config.iwae_samples)
    if model.member.encoder == 'point_mass':  # the proposal matters
      out['test_iwae_proposal_scale'] = float(eval_config.proposal_scale)
  train_codes = metrics_lib.encode_all(
      model, train_images, seed=seed,
      progress='encoding the training images')['code_mean']
  terms['train_code_mean'] = train_codes
  out['test_knn_accuracy'] = probes.knn_accuracy(
      train_codes, train_labels, terms['code_mean'], test_labels)
  out['test_logreg_accuracy'] = probes.logistic_regression_accuracy(
      train_codes, train_labels, terms['code_mean'], test_labels)
  if classifier is None:
    classifier = frechet.feature_classifier(
        train_images, train_labels, num_classes,
        cache_dir=eval_config.cache_dir, seed=seed)
  quality, terms['generated'] = frechet.sample_quality(
      model, classifier, train_images, test_images, test_labels, seed=seed)
  out.update(quality)
  return out, terms


def evaluate_run(model_dir: str, eval_config: EvalConfig = EvalConfig(),
                 data_dir: Optional[str] = None,
                 download: Optional[bool] = None,
                 idx_dir: Optional[str] = None) -> Evaluation:
  """Evaluates model_dir's latest checkpoint; merges into its metrics.json.

  Args:
    model_dir: a trainers.train run.
    eval_config: how to evaluate (its cache_dir None or '':
      `default_cache_dir()`).
    data_dir, download, idx_dir: override the run's data settings (None:
      keep).

  Raises:
    CheckpointError: no run or unreadable checkpoint in model_dir.
    DataError, ConfigError: the run's data cannot be loaded.
  """
  eval_config.validate()
  model, config, _ = rundir.load_trained_model(model_dir)
  runtime = config.runtime
  config = dataclasses.replace(config, runtime=dataclasses.replace(
      runtime, data_dir=runtime.data_dir if data_dir is None else data_dir,
      download=runtime.download if download is None else download,
      idx_dir=runtime.idx_dir if idx_dir is None else idx_dir))
  data, _ = training.prepare_data(config)
  seed, binarize = config.trainer.seed, config.data.binarize
  test_x = data_lib.eval_images(data.test_images, binarize, seed)
  train_x = data_lib.eval_images(data.train_images, binarize, seed)
  cache_dir = eval_config.cache_dir or default_cache_dir()
  try:
    os.makedirs(cache_dir, exist_ok=True)
  except OSError as e:
    logging.warning('cannot cache the feature classifier in %s (%s); '
                    'training it without a cache', cache_dir, e)
    cache_dir = None
  results, arrays = evaluate_all(
      model, train_x, data.train_labels, test_x, data.test_labels,
      data.num_classes, dataclasses.replace(eval_config, cache_dir=cache_dir),
      seed=seed)
  results[rundir.EVALUATED_EPOCH_KEY] = int(
      rundir.read_metrics(model_dir).get('epochs_completed', 0))
  with rundir.RunLock(model_dir, 'trainers.evaluate'):
    merged = rundir.update_metrics(model_dir, results)
  return Evaluation(merged, model, config, data, test_x, arrays)


def _figures(ev: Evaluation, out_dir: str) -> dict[str, str]:
  """Each model's figures for the report, named by figure kind."""
  name = ev.config.model.name
  labels = ev.data.test_labels
  paths = plots.draw_all(ev.model, ev.test_x, labels, ev.arrays['code_mean'],
                         out_dir, seed=ev.config.trainer.seed,
                         prefix=f'{name}_',
                         class_names=ev.data.class_names)
  paths['interpolations'] = os.path.join(out_dir, f'{name}_interpolations.png')
  pairs = plots.interpolation_pairs(labels)
  plots.interpolations(ev.model, ev.test_x[pairs[:, 0]],
                       ev.test_x[pairs[:, 1]], paths['interpolations'])
  return paths


def epoch_figures(model_dir: str) -> dict[int, dict[str, str]]:
  """{epoch: {figure kind: png path}} of the plots a run drew every
  `plot_every` epochs (model_dir/plots/epoch_NNNN/)."""
  root = os.path.join(model_dir, rundir.PLOTS_SUBDIR)
  out = {}
  for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    if entry.startswith('epoch_') and entry[6:].isdigit():
      folder = os.path.join(root, entry)
      out[int(entry[6:])] = {
          name[:-4]: os.path.join(folder, name)
          for name in sorted(os.listdir(folder)) if name.endswith('.png')}
  return out


def compare(base: config_lib.TrainConfig, output_dir: str,
            eval_config: EvalConfig = EvalConfig(),
            progress: bool = True,
            log: Callable[[str], None] = logging.info,
            member_settings: Optional[dict[str, Any]] = None
            ) -> dict[str, Any]:
  """Trains, evaluates and reports the VAE and the MMD-VAE side by side.

  Both runs take every setting from `base` except the member; they go to
  output_dir/vae and output_dir/mmd_vae (rerunning resumes or reuses them).
  They draw their figures every `plot_every` epochs; the report shows those
  side by side.

  Args:
    base: the shared settings.
    output_dir: where the runs, figures, metrics.json and report.html go.
    eval_config: how both are evaluated.
    progress: log progress lines for the whole comparison.
    log: where progress and stage lines go.
    member_settings: member settings (`mmd_weight`, `kernel`, `beta`, ...),
      each applied to the compared member that uses it.

  Returns:
    {model name: metrics} as written to output_dir/metrics.json.

  Raises:
    ConfigError: a setting neither compared member uses.
  """
  configs = {}
  for name in COMPARED_MODELS:
    own = {f.name for f in dataclasses.fields(family.get(name))}
    settings = {k: v for k, v in (member_settings or {}).items() if k in own}
    configs[name] = base.for_model(name).replace(**settings).validate()
  unused = sorted(set(member_settings or {}) - {
      f.name for n in COMPARED_MODELS
      for f in dataclasses.fields(family.get(n))})
  if unused:
    raise errors.ConfigError(unused[0], member_settings[unused[0]],
                             f'is used by neither {" nor ".join(COMPARED_MODELS)}')
  eval_config.validate()
  os.makedirs(output_dir, exist_ok=True)
  figures_dir = os.path.join(output_dir, 'figures')
  os.makedirs(figures_dir, exist_ok=True)
  eval_config = dataclasses.replace(
      eval_config, cache_dir=os.path.join(output_dir, 'feature_classifier'))
  epochs = base.trainer.epochs
  # Units: every epoch of both models, then each model's evaluation.
  bar = progress_lib.Progress(
      'compare', len(COMPARED_MODELS) * (epochs + 1), unit='steps',
      log=log) if progress else None
  evaluations = {}
  for name in COMPARED_MODELS:
    config = configs[name]
    config = dataclasses.replace(config, runtime=dataclasses.replace(
        config.runtime, model_dir=os.path.join(output_dir, name),
        export_dir=None, verbose=False))
    start = bar.done if bar else 0

    def on_epoch(epoch, logs, start=start):
      del logs
      if bar is not None:
        bar.update(start + epoch - bar.done)

    log(f'training {name} for {epochs} epochs in '
        f'{config.runtime.model_dir}')
    training.run(config, on_epoch=on_epoch)
    if bar is not None:  # epochs a resumed run did not train here
      bar.skip(start + epochs - bar.done)
    log(f'evaluating {name} (IWAE k={eval_config.iwae_samples}, probes, '
        f'Frechet)')
    evaluations[name] = evaluate_run(config.runtime.model_dir, eval_config)
    if bar is not None:
      bar.update(1)
  figures = {name: _figures(ev, figures_dir)
             for name, ev in evaluations.items()}
  over_training = {name: epoch_figures(ev.config.runtime.model_dir)
                   for name, ev in evaluations.items()}
  curves = os.path.join(figures_dir, 'training_curves.png')
  plots.training_curves({name: rundir.read_history(ev.config.runtime.model_dir)
                         for name, ev in evaluations.items()}, curves)
  results = {name: ev.metrics for name, ev in evaluations.items()}
  rundir.write_json(os.path.join(output_dir, 'metrics.json'), results)
  path = report.write_report(
      os.path.join(output_dir, 'report.html'), results, figures,
      {'training_curves': curves}, base, over_training, configs)
  log(f'wrote {path}')
  return results
