"""Family members side by side over seeds: trained with the same
architecture, data and budget, evaluated in the same feature space,
summarised with intervals and reported together.

`compare` takes any registered members, each with its own settings
(`tfp_vae.family.specs`: `vae`, `mmd_vae`, `vae:beta=4`, ...), and N seeds (the
same seeds for every member, so differences are paired).  Each (member,
seed) is one run in OUTPUT_DIR/<run name>[-seed<S>] (the first seed's runs
keep the names they had before seeds; rerunning resumes or reuses runs, and
reuses evaluations of the same epoch and settings).  Runs go one after
another in this process, or `parallel` at a time as `trainers.train` and
`trainers.evaluate` children (`tfp_vae.internal.fanout`).  It writes
OUTPUT_DIR/metrics.json (every seed's values, means, intervals and paired
differences: `summarise`) and the self-contained OUTPUT_DIR/report.html
(`tfp_vae.experiment.report`), whose figures are the first seed's.
"""

import dataclasses
import itertools
import os
import time
from typing import Any, Callable

from absl import logging

from tfp_vae.config import settings as config_lib
from tfp_vae.data import images as images_lib
from tfp_vae.data import inputs
from tfp_vae.experiment import evaluate as evaluation
from tfp_vae.family import members as family
from tfp_vae.internal import fanout
from tfp_vae.evaluation import frechet
from tfp_vae.runtime import hardware
from tfp_vae.evaluation import metrics as metrics_lib
from tfp_vae.evaluation import plots
from tfp_vae.internal import progress as progress_lib
from tfp_vae.experiment import report
from tfp_vae.training import rundir
from tfp_vae.family import specs
from tfp_vae.experiment import stats
from tfp_vae.internal import storage
from tfp_vae.training import run as training
from tfp_vae.training import trained

SCHEMA = 2


@dataclasses.dataclass(frozen=True)
class ComparedRun:
  """One (member, seed) of a comparison."""
  label: str
  seed: int
  config: config_lib.TrainConfig

  @property
  def model_dir(self) -> str:
    return self.config.runtime.model_dir


def plan_runs(base: config_lib.TrainConfig,
              members: list[tuple[str, family.Member]], output_dir: str,
              seeds: int) -> list[ComparedRun]:
  """Every (member, seed) run, validated: seeds base.seed .. + seeds - 1.

  Raises:
    ConfigError: a member's settings are invalid with the shared ones, or
      the seeds go past the largest seed.
  """
  first = base.trainer.seed
  # One precision for every member, so that they compare like with like:
  # under auto, bfloat16 only where every compared member's rows pass the
  # guard.  Every run carries the compared members (compared_models) and
  # decides auto for all of them itself, as the compare pipeline's pods,
  # which train the runs apart, do with the same flag; precision stays
  # auto, so that a run already started resumes in the precision it
  # recorded (the pipeline's compare step may run on another machine class
  # than its training pods) instead of being refused.
  names = [member.name for _, member in members]
  base = base.replace(compared_models=','.join(dict.fromkeys(names)))
  if base.trainer.precision == 'auto':
    precision, why = hardware.resolve_precision('auto', models=names)
    logging.info('--precision=auto for every compared member: %s (%s)',
                 precision, why)
  runs = []
  for (label, member), seed in itertools.product(
      members, range(first, first + seeds)):
    config = base.with_member(member).replace(seed=seed)
    config = dataclasses.replace(config, runtime=dataclasses.replace(
        config.runtime, model_dir=specs.run_dir(output_dir, label, seed, first),
        export_dir=None, verbose=False)).validate()
    runs.append(ComparedRun(label, seed, config))
  return runs


def _evaluated(model_dir: str, eval_config: config_lib.EvalConfig) -> bool:
  """Whether metrics.json already holds an evaluation of the run's current
  epoch with these settings."""
  metrics = rundir.read_metrics(model_dir)
  if metrics.get(rundir.EVALUATED_EPOCH_KEY) != metrics.get(
      'epochs_completed') or 'test_knn_accuracy' not in metrics:
    return False
  if metrics.get(rundir.EVALUATED_TEST_EXAMPLES_KEY,
                 0) != eval_config.test_examples:
    return False
  if not eval_config.iwae_samples:
    return True
  return metrics.get('test_iwae_samples') == eval_config.iwae_samples and (
      metrics.get('test_iwae_proposal_scale', eval_config.proposal_scale)
      == eval_config.proposal_scale)


def _in_process(runs: list[ComparedRun],
                eval_config: config_lib.EvalConfig, bar,
                log: Callable[[str], None]) -> dict[tuple[str, int], float]:
  """Trains and evaluates every run here, one after another; returns each
  one's wall seconds."""
  seconds = {}
  for run in runs:
    start_time = time.perf_counter()
    epochs = run.config.trainer.epochs
    start = bar.done if bar else 0

    def on_epoch(epoch, logs, start=start):
      del logs
      if bar is not None:
        bar.update(start + epoch - bar.done)

    log(f'training {run.label} seed {run.seed} for {epochs} epochs in '
        f'{run.model_dir}')
    training.run(run.config, on_epoch=on_epoch)
    if bar is not None:  # epochs a resumed run did not train here
      bar.skip(start + epochs - bar.done)
    if not _evaluated(run.model_dir, eval_config):
      log(f'evaluating {run.label} seed {run.seed} (IWAE '
          f'k={eval_config.iwae_samples}, probes, Frechet)')
      evaluation.evaluate_run(run.model_dir, eval_config)
    if bar is not None:
      bar.update(1)
    seconds[(run.label, run.seed)] = time.perf_counter() - start_time
  return seconds


def _eval_flags(eval_config: config_lib.EvalConfig) -> list[str]:
  return [f'--eval_iwae_samples={eval_config.iwae_samples}',
          f'--proposal_scale={eval_config.proposal_scale}',
          f'--images_per_call={eval_config.images_per_call}',
          f'--cache_dir={eval_config.cache_dir}',
          f'--test_examples={eval_config.test_examples}']


def _in_children(runs: list[ComparedRun], eval_config: config_lib.EvalConfig,
                 parallel: int, log: Callable[[str], None]
                 ) -> dict[tuple[str, int], float]:
  """Trains and evaluates the runs `parallel` at a time, each as the
  command lines a user would run; returns each one's wall seconds."""
  # The feature classifier first, once, so that evaluations running at
  # once read it from the cache instead of each training it.
  data, _ = training.prepare_data(runs[0].config)
  first = runs[0].config
  train_images, train_labels = images_lib.train_sample(data)
  frechet.feature_classifier(
      inputs.eval_images(train_images, first.data.binarize,
                         first.trainer.seed),
      train_labels, data.num_classes, cache_dir=eval_config.cache_dir,
      seed=frechet.CLASSIFIER_SEED)
  jobs = []
  for run in runs:
    os.makedirs(run.model_dir, exist_ok=True)
    commands = [fanout.module_command('trainers.train', run.config.to_flags(
        exclude=('verbose',)) + ['--noverbose'])]
    if not _evaluated(run.model_dir, eval_config):
      commands.append(fanout.module_command(
          'trainers.evaluate', [f'--model_dir={run.model_dir}',
                                *_eval_flags(eval_config)]))
    jobs.append(fanout.Job(f'{run.label} seed {run.seed}', commands,
                           os.path.join(run.model_dir, 'compare.log')))
  log(f'{len(jobs)} runs, {parallel} at a time')
  fanout.run(jobs, parallel, on_done=lambda job: log(
      f'{job.name}: {"done" if not job.returncode else "failed"} in '
      f'{job.seconds:.0f} s'))
  return {(r.label, r.seed): job.seconds for r, job in zip(runs, jobs)}


def summarise(runs: list[ComparedRun], per_run: dict[tuple[str, int], dict],
              members: dict[str, family.Member]) -> dict[str, Any]:
  """metrics.json of a comparison: every seed's metrics, each metric's mean and
  t interval over seeds, and each pair's paired difference with its verdict
  (`tfp_vae.experiment.stats`); `order` lists the members as compared (the
  file's keys are sorted)."""
  labels = list(dict.fromkeys(r.label for r in runs))
  seeds = sorted({r.seed for r in runs})
  out = {'schema': SCHEMA, 'seeds': seeds, 'order': labels,
         'interval': f'{stats.LEVEL:.0%} Student t over seeds',
         'models': {}, 'differences': [],
         # Why metrics are missing (data without labels: no probes).
         'notes': sorted({str(m['test_probes']) for m in per_run.values()
                          if 'test_probes' in m})}
  values = {}  # label -> metric -> {seed: value}
  for label in labels:
    by_seed = {str(s): per_run[(label, s)] for s in seeds}
    metric_values = {}
    for seed, metrics in zip(seeds, by_seed.values()):
      for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
          metric_values.setdefault(key, {})[seed] = float(value)
    values[label] = metric_values
    out['models'][label] = {
        'settings': members[label].settings(),
        'runs': {str(r.seed): r.model_dir for r in runs if r.label == label},
        'seeds': by_seed,
        'summary': {k: stats.t_interval(list(v.values())).to_dict()
                    for k, v in metric_values.items() if len(v) == len(seeds)}}
  directions = {key: better for key, _, better in report.METRICS}
  for a, b in itertools.combinations(labels, 2):
    pair = {}
    for key in sorted(set(values[a]) & set(values[b])):
      d = stats.paired_difference(values[a][key], values[b][key])
      winner, words = stats.verdict(d, directions.get(key, ''), a, b)
      pair[key] = {**d.to_dict(), 'better': winner, 'verdict': words}
    out['differences'].append({'a': a, 'b': b, 'metrics': pair})
  return out


def _figures(run: ComparedRun, figures_dir: str) -> dict[str, str]:
  """The first seed's figures of a member, named by kind."""
  model, config, info = trained.load_trained_model(run.model_dir)
  data, _ = training.prepare_data(config)
  test_x = inputs.eval_images(data.test_images, config.data.binarize,
                              config.trainer.seed)
  _, terms = metrics_lib.test_set_metrics(model, test_x,
                                          seed=config.trainer.seed)
  prefix = f'{specs.run_name(run.label)}_'
  with storage.writing('plots', f'the figures of {run.label}', figures_dir):
    paths = plots.draw_all(model, test_x, data.test_labels,
                           terms['code_mean'], figures_dir,
                           seed=config.trainer.seed, prefix=prefix,
                           class_names=tuple(info.get('class_names', ())))
  paths['interpolations'] = os.path.join(figures_dir,
                                         f'{prefix}interpolations.png')
  pairs = plots.interpolation_pairs(data.test_labels,
                                    num_images=len(test_x))
  with storage.writing('plots', f'the figures of {run.label}', figures_dir,
                       inject=False):
    plots.interpolations(model, test_x[pairs[:, 0]], test_x[pairs[:, 1]],
                         paths['interpolations'])
  return paths


def _shared_figures(runs: list[ComparedRun], labels: list[str],
                    firsts: dict[str, ComparedRun], figures_dir: str
                    ) -> dict[str, str]:
  """The figures drawn across members: the first seeds' training curves,
  and every run on the rate-distortion plane."""
  curves = os.path.join(figures_dir, 'training_curves.png')
  with storage.writing('plots', 'the training curves', curves, inject=False):
    plots.training_curves({label: rundir.read_history(run.model_dir)
                           for label, run in firsts.items()}, curves)
  plane = os.path.join(figures_dir, 'rate_distortion.png')
  with storage.writing('plots', 'the rate-distortion plane', plane,
                       inject=False):
    plots.rate_distortion({label: [rundir.read_metrics(r.model_dir)
                                   for r in runs if r.label == label]
                           for label in labels}, plane)
  return {'training_curves': curves, 'rate_distortion': plane}


def _warn_unlike_precisions(runs: list[ComparedRun]) -> dict[str, list[str]]:
  """{precision: [run]} as the runs recorded them; a warning when they
  differ (runs started before they carried compared_models, or trained on
  machine classes that decide auto differently)."""
  found: dict[str, list[str]] = {}
  for run in runs:
    recorded = (rundir.read_records(run.model_dir).plan or {}).get(
        'runtime', {}).get('precision')
    if recorded:
      found.setdefault(recorded, []).append(f'{run.label} seed {run.seed}')
  if len(found) > 1:
    logging.warning(
        'the compared runs trained in different precisions (%s): they do '
        'not compare like with like; train them again, in another '
        '--output_dir, in one precision',
        '; '.join(f'{p}: {", ".join(r)}' for p, r in found.items()))
  return found


def compare(base: config_lib.TrainConfig,
            members: list[tuple[str, family.Member]], output_dir: str,
            eval_config: config_lib.EvalConfig = config_lib.EvalConfig(),
            progress: bool = True,
            log: Callable[[str], None] = logging.info,
            seeds: int = 1, parallel: int = 1) -> dict[str, Any]:
  """Trains, evaluates and reports `members` side by side over `seeds`.

  Args:
    base: the shared settings (its member and seed are replaced per run).
    members: [(label, member)], e.g. from `specs.parse_all`.
    output_dir: where the runs, figures, metrics.json and report.html go.
    eval_config: how every run is evaluated.
    progress: log progress lines for the whole comparison.
    log: where progress and stage lines go.
    seeds: seeds per member: base's seed and the next ones.
    parallel: runs at once (1: one after another in this process).

  Returns:
    What is written to output_dir/metrics.json (`summarise`).

  Raises:
    ConfigError: a member's settings are invalid with the shared ones.
    TfpVaeError: a run failed (from the training or evaluation errors).
  """
  runs = plan_runs(base, members, output_dir, seeds)
  eval_config = dataclasses.replace(
      eval_config.validate(),
      cache_dir=os.path.join(output_dir, 'feature_classifier'))
  figures_dir = os.path.join(output_dir, 'figures')
  os.makedirs(figures_dir, exist_ok=True)
  start = time.perf_counter()
  if parallel > 1:
    seconds = _in_children(runs, eval_config, parallel, log)
  else:
    bar = progress_lib.Progress(
        'compare', len(runs) * (base.trainer.epochs + 1), unit='steps',
        log=log) if progress else None
    seconds = _in_process(runs, eval_config, bar, log)
  # Wall time of this invocation (reused runs take next to none).
  with storage.writing('metrics', 'timing.json', output_dir):
    rundir.write_json(os.path.join(output_dir, 'timing.json'), {
        'parallel': parallel, 'seconds': time.perf_counter() - start,
        'runs': {label: {str(s): t for (l, s), t in seconds.items()
                         if l == label} for label, _ in members}})
  _warn_unlike_precisions(runs)
  resolved = {label: trained.resolved_member(run.model_dir)
              for label, run in {r.label: r for r in runs[::-1]}.items()}
  results = summarise(runs, {(r.label, r.seed): rundir.read_metrics(
      r.model_dir) for r in runs}, resolved)
  with storage.writing('metrics', 'metrics.json', output_dir):
    rundir.write_json(os.path.join(output_dir, 'metrics.json'), results)
  firsts = {r.label: r for r in runs[::-1]}  # the first seed of each
  firsts = {label: firsts[label] for label, _ in members}
  shared = _shared_figures(runs, [label for label, _ in members], firsts,
                           figures_dir)
  path = report.write_report(
      os.path.join(output_dir, 'report.html'), results,
      {label: _figures(run, figures_dir) for label, run in firsts.items()},
      shared, base,
      {label: evaluation.epoch_figures(run.model_dir)
       for label, run in firsts.items()}, resolved)
  log(f'wrote {path}')
  return results
