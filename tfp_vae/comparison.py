"""Family members side by side: trained with the same architecture, data,
seed and budget, evaluated in the same feature space, reported together.

`compare` takes any registered members, each with its own settings
(`tfp_vae.specs`: `vae`, `mmd_vae`, `vae:beta=4`, ...), trains each in
OUTPUT_DIR/<run name> (rerunning resumes or reuses the runs), evaluates it
(`evaluation.evaluate_run`), draws its figures and writes
OUTPUT_DIR/metrics.json (one object per member) and the self-contained
OUTPUT_DIR/report.html (`tfp_vae.report`).
"""

import dataclasses
import os
from typing import Any, Callable

from absl import logging

from tfp_vae import config as config_lib
from tfp_vae import evaluation
from tfp_vae import family
from tfp_vae import plots
from tfp_vae import progress as progress_lib
from tfp_vae import report
from tfp_vae import rundir
from tfp_vae import specs
from tfp_vae import training

def _figures(ev: evaluation.Evaluation, out_dir: str,
             prefix: str) -> dict[str, str]:
  """A run's figures for the report, named by figure kind."""
  labels = ev.data.test_labels
  paths = plots.draw_all(ev.model, ev.test_x, labels, ev.arrays['code_mean'],
                         out_dir, seed=ev.config.trainer.seed,
                         prefix=prefix, class_names=ev.data.class_names)
  paths['interpolations'] = os.path.join(out_dir,
                                         f'{prefix}interpolations.png')
  pairs = plots.interpolation_pairs(labels)
  plots.interpolations(ev.model, ev.test_x[pairs[:, 0]],
                       ev.test_x[pairs[:, 1]], paths['interpolations'])
  return paths


def run_configs(base: config_lib.TrainConfig,
                members: list[tuple[str, family.Member]], output_dir: str
                ) -> dict[str, config_lib.TrainConfig]:
  """{label: the validated config of its run} (module doc)."""
  out = {}
  for label, member in members:
    config = base.with_member(member).validate()
    out[label] = dataclasses.replace(config, runtime=dataclasses.replace(
        config.runtime, model_dir=os.path.join(output_dir,
                                               specs.run_name(label)),
        export_dir=None, verbose=False))
  return out


def _train_and_evaluate(configs: dict[str, config_lib.TrainConfig],
                        eval_config: config_lib.EvalConfig, bar,
                        log: Callable[[str], None]
                        ) -> dict[str, evaluation.Evaluation]:
  evaluations = {}
  for label, config in configs.items():
    epochs = config.trainer.epochs
    start = bar.done if bar else 0

    def on_epoch(epoch, logs, start=start):
      del logs
      if bar is not None:
        bar.update(start + epoch - bar.done)

    log(f'training {label} for {epochs} epochs in '
        f'{config.runtime.model_dir}')
    training.run(config, on_epoch=on_epoch)
    if bar is not None:  # epochs a resumed run did not train here
      bar.skip(start + epochs - bar.done)
    log(f'evaluating {label} (IWAE k={eval_config.iwae_samples}, probes, '
        f'Frechet)')
    evaluations[label] = evaluation.evaluate_run(config.runtime.model_dir,
                                                 eval_config)
    if bar is not None:
      bar.update(1)
  return evaluations


def compare(base: config_lib.TrainConfig,
            members: list[tuple[str, family.Member]], output_dir: str,
            eval_config: config_lib.EvalConfig = config_lib.EvalConfig(),
            progress: bool = True,
            log: Callable[[str], None] = logging.info) -> dict[str, Any]:
  """Trains, evaluates and reports `members` side by side.

  Args:
    base: the shared settings (its member is replaced by each of
      `members`).
    members: [(label, member)], e.g. from `specs.parse_all`.
    output_dir: where the runs, figures, metrics.json and report.html go.
    eval_config: how every run is evaluated.
    progress: log progress lines for the whole comparison.
    log: where progress and stage lines go.

  Returns:
    {label: metrics} as written to output_dir/metrics.json.

  Raises:
    ConfigError: a member's settings are invalid with the shared ones.
  """
  configs = run_configs(base, members, output_dir)
  eval_config.validate()
  figures_dir = os.path.join(output_dir, 'figures')
  os.makedirs(figures_dir, exist_ok=True)
  eval_config = dataclasses.replace(
      eval_config, cache_dir=os.path.join(output_dir, 'feature_classifier'))
  # Units: every epoch of every run, then each run's evaluation.
  bar = progress_lib.Progress(
      'compare', len(configs) * (base.trainer.epochs + 1), unit='steps',
      log=log) if progress else None
  evaluations = _train_and_evaluate(configs, eval_config, bar, log)
  figures = {label: _figures(ev, figures_dir,
                             f'{specs.run_name(label)}_')
             for label, ev in evaluations.items()}
  over_training = {label: evaluation.epoch_figures(
      ev.config.runtime.model_dir) for label, ev in evaluations.items()}
  curves = os.path.join(figures_dir, 'training_curves.png')
  plots.training_curves({label: rundir.read_history(
      ev.config.runtime.model_dir) for label, ev in evaluations.items()},
                        curves)
  results = {label: ev.metrics for label, ev in evaluations.items()}
  rundir.write_json(os.path.join(output_dir, 'metrics.json'), results)
  resolved = {label: rundir.resolved_member(ev.config.runtime.model_dir)
              for label, ev in evaluations.items()}
  path = report.write_report(
      os.path.join(output_dir, 'report.html'), results, figures,
      {'training_curves': curves}, base, over_training, resolved)
  log(f'wrote {path}')
  return results
