"""Evaluating finished runs.

`evaluate_run` loads a run's latest checkpoint and adds the costly metrics to
its metrics.json (`all_test_metrics`): the importance-weighted log-likelihood
(`tfp_vae.model.likelihood`), the latent probes (`tfp_vae.evaluation.probes`),
the classifier Frechet distance (`tfp_vae.evaluation.frechet`), on top of the
cheap test metrics (`tfp_vae.evaluation.metrics`).  `config.EvalConfig` states
every evaluation default once; `tfp_vae.experiment.comparison` evaluates several
runs side by side.
"""

import dataclasses
import os
from typing import Any, Optional

from absl import logging
import keras
import numpy as np

from tfp_vae.family import components
from tfp_vae.config import settings as config_lib
from tfp_vae.data import images as images_lib
from tfp_vae.data import inputs
from tfp_vae.evaluation import frechet
from tfp_vae.model import likelihood
from tfp_vae.evaluation import metrics as metrics_lib
from tfp_vae.evaluation import probes
from tfp_vae.training import lock
from tfp_vae.training import rundir
from tfp_vae.training import run as training
from tfp_vae.training import trained

_EVAL_DEFAULTS = config_lib.EvalConfig()
NO_LABELS = ('skipped: the data has no labels (the Frechet features come '
             'from a flip-recognition network instead of a classifier)')

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
  data: images_lib.ImageData
  test_x: np.ndarray
  arrays: dict[str, np.ndarray]


def all_test_metrics(model, train_images: np.ndarray, train_labels: np.ndarray,
                 test_images: np.ndarray, test_labels: np.ndarray,
                 num_classes: int,
                 eval_config: config_lib.EvalConfig = _EVAL_DEFAULTS,
                 seed: int = 0, classifier: Optional[keras.Model] = None
                 ) -> tuple[dict[str, float], dict[str, np.ndarray]]:
  """Every test metric of a trained model.

  Args:
    model: the trained model.
    train_images, test_images: float32 [N, H, W, C] in [0, 1] (as trained).
    train_labels, test_labels: int [N] (probes and classifier only), or
      None for data without labels (probes skipped, `test_probes` says so).
    num_classes: number of labels (0 without).
    eval_config: how (IWAE k, proposal, cache).
    seed: seed of every Monte-Carlo draw.
    classifier: the Frechet feature network (trained, or read from the
      cache, if None).

  Returns:
    (metrics, arrays): the flat metrics dict, and per-image arrays
    ('code_mean', 'code_sample', 'distortion', 'log_likelihood' (the IWAE
    estimate), 'train_code_mean', 'generated').
  """
  out, terms = metrics_lib.test_set_metrics(model, test_images, seed=seed)
  if eval_config.iwae_samples:
    iwae = likelihood.iwae_log_likelihood(
        model, test_images, eval_config.iwae_samples, seed=seed,
        proposal_scale=eval_config.proposal_scale,
        images_per_call=eval_config.images_per_call)
    terms['log_likelihood'] = iwae
    out['test_iwae_log_likelihood'] = float(iwae.mean())
    out['test_iwae_samples'] = int(eval_config.iwae_samples)
    if not components.ENCODERS.get(model.member.encoder).has_density:
      # The proposal around a code without a density matters.
      out['test_iwae_proposal_scale'] = float(eval_config.proposal_scale)
  train_codes = metrics_lib.encode_all(
      model, train_images, seed=seed,
      progress='encoding the training images')['code_mean']
  terms['train_code_mean'] = train_codes
  if train_labels is None or test_labels is None:
    out['test_probes'] = NO_LABELS
  elif len(np.unique(train_labels)) < 2:
    out['test_probes'] = 'skipped: the training labels have one class'
  else:
    out['test_knn_accuracy'] = probes.knn_accuracy(
        train_codes, train_labels, terms['code_mean'], test_labels)
    out['test_logreg_accuracy'] = probes.logistic_regression_accuracy(
        train_codes, train_labels, terms['code_mean'], test_labels)
  if classifier is None:
    # One feature space for every run of the data, whatever its seed.
    classifier = frechet.feature_classifier(
        train_images, train_labels, num_classes,
        cache_dir=eval_config.cache_dir, seed=frechet.CLASSIFIER_SEED)
  quality, terms['generated'] = frechet.sample_quality(
      model, classifier, train_images, test_images, test_labels, seed=seed)
  out.update(quality)
  return out, terms


def evaluate_run(model_dir: str,
                 eval_config: config_lib.EvalConfig = _EVAL_DEFAULTS,
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
  model, config, _ = trained.load_trained_model(model_dir)
  runtime = config.runtime
  config = dataclasses.replace(config, runtime=dataclasses.replace(
      runtime, data_dir=runtime.data_dir if data_dir is None else data_dir,
      download=runtime.download if download is None else download,
      idx_dir=runtime.idx_dir if idx_dir is None else idx_dir))
  data, _ = training.prepare_data(config)
  data = images_lib.subset_test_split(data, eval_config.test_examples)
  seed, binarize = config.trainer.seed, config.data.binarize
  test_x = inputs.eval_images(data.test_images, binarize, seed)
  train_images, train_labels = images_lib.train_sample(data)
  train_x = inputs.eval_images(train_images, binarize, seed)
  cache_dir = eval_config.cache_dir or default_cache_dir()
  try:
    os.makedirs(cache_dir, exist_ok=True)
  except OSError as e:
    logging.warning('cannot cache the feature classifier in %s (%s); '
                    'training it without a cache', cache_dir, e)
    cache_dir = None
  results, arrays = all_test_metrics(
      model, train_x, train_labels, test_x, data.test_labels,
      data.num_classes, dataclasses.replace(eval_config, cache_dir=cache_dir),
      seed=seed)
  results[rundir.EVALUATED_EPOCH_KEY] = int(
      rundir.read_metrics(model_dir).get('epochs_completed', 0))
  results[rundir.EVALUATED_TEST_EXAMPLES_KEY] = eval_config.test_examples
  with lock.RunLock(model_dir, 'trainers.evaluate'):
    merged = rundir.update_metrics(model_dir, results)
  return Evaluation(merged, model, config, data, test_x, arrays)


def epoch_figures(model_dir: str) -> dict[int, dict[str, str]]:
  """{epoch: {figure kind: png path}} of the plots a run drew every
  `plot_every` epochs (model_dir/plots/epoch_NNNN/)."""
  root = os.path.join(model_dir, rundir.PLOTS_SUBDIR)
  out = {}
  for entry in sorted(os.listdir(root)) if os.path.isdir(root) else []:
    epoch = rundir.plotted_epoch(entry)
    if epoch is not None:
      folder = os.path.join(root, entry)
      out[epoch] = {
          name[:-4]: os.path.join(folder, name)
          for name in sorted(os.listdir(folder)) if name.endswith('.png')}
  return out
