"""The self-contained HTML report of a comparison
(`tfp_vae.experiment.comparison`).

Images are embedded as base64 data URIs, so report.html can be mailed or
archived alone; the PNGs also stay beside it in figures/.
"""

import base64
import html
import os
from typing import Any, Optional

from tfp_vae.family import members as family
from tfp_vae.internal import files
from tfp_vae.internal import storage

# (key, description, better): better is 'lower', 'higher' or '' (neither).
METRICS = (
    ('test_iwae_log_likelihood', 'log p(x), importance-weighted bound '
     '(nats/image)', 'higher'),
    ('test_neg_elbo', '-ELBO (nats/image; not defined for a point-mass '
     'encoder)', 'lower'),
    ('test_reconstruction_nll', 'reconstruction -log p(x|z) (nats/image)',
     'lower'),
    ('test_rate', 'rate KL(q(z|x) || p(z)) (nats/image)', ''),
    ('test_mutual_information', 'mutual information I_q(x; z), aggregate '
     'posterior (nats; a lower bound, at most log N; Gaussian encoders)',
     'higher'),
    ('test_marginal_kl', 'KL(q(z) || p(z)) of the aggregate posterior (nats; '
     'Gaussian encoders)', 'lower'),
    ('test_code_gain', "nats/image the decoder gains from the image's own "
     "code over another image's", 'higher'),
    ('test_code_variance', "q(z)'s variance per unit, averaged (the standard "
     'normal prior: 1)', ''),
    ('test_mmd_to_prior', 'MMD^2 between q(z) and p(z)', 'lower'),
    ('test_active_units', 'active units (Cov_x E[z_u] > 0.01)', 'higher'),
    ('test_knn_accuracy', 'latent probe: 5-NN accuracy', 'higher'),
    ('test_logreg_accuracy', 'latent probe: logistic-regression accuracy',
     'higher'),
    ('test_classifier_frechet_distance', 'Frechet distance of samples to '
     'test images, small-classifier features (not Inception FID)', 'lower'),
    ('train_test_classifier_frechet_distance', 'same, train images vs test '
     'images (the floor)', ''),
    ('feature_classifier_test_accuracy', 'accuracy of that feature '
     'classifier', ''),
    ('test_iwae_samples', 'k of the IWAE bound', ''),
    ('test_iwae_proposal_scale', 'IWAE proposal scale (point-mass encoder)',
     ''),
    ('train_images_per_second', 'training throughput (images/s; speed, '
     'not quality)', ''),
    ('epochs_completed', 'epochs', ''),
    ('num_parameters', 'parameters', ''),
)

FIGURES = (
    ('samples', 'Samples: decoder means at z ~ p(z)'),
    ('latent', 'Test set in latent space, by class'),
    ('grid', 'Decoded grid over latent space ("morphing")'),
    ('traversals', 'Latent traversals: one row per unit across its prior '
     'range, the others held at a test image\'s code'),
    ('reconstructions', 'Reconstructions (odd rows inputs, even rows '
     'outputs)'),
    ('interpolations', 'Interpolations between test images'),
)


def _img(path: str, css_class: str = '') -> str:
  with open(path, 'rb') as f:
    data = base64.b64encode(f.read()).decode('ascii')
  name = html.escape(os.path.basename(path))
  klass = f' class="{css_class}"' if css_class else ''
  return (f'<img alt="{name}" title="{name}"{klass} '
          f'src="data:image/png;base64,{data}">')


def _fmt(value: Any) -> str:
  if value is None:
    return '&ndash;'
  if isinstance(value, int) or float(value).is_integer() and abs(value) > 9:
    return f'{int(value):,}'
  return f'{value:.4g}'


def _cell(summary: Optional[dict]) -> str:
  """'mean [low, high]' over seeds, or the one seed's value."""
  if not summary:
    return '&ndash;'
  if summary.get('low') is None:
    return _fmt(summary['mean'])
  return (f'{_fmt(summary["mean"])}<br><small>[{_fmt(summary["low"])}, '
          f'{_fmt(summary["high"])}]</small>')


def best_of(results: dict[str, Any], key: str) -> tuple[str, str]:
  """(the model better than every other on `key`, or '', and what to say):
  a model is best only where each of its paired differences excludes zero
  in its favour (`tfp_vae.experiment.stats.verdict`)."""
  labels = list(results['order'])
  pairs = [(p['a'], p['b'], p['metrics'][key])
           for p in results['differences'] if key in p['metrics']]
  if len(labels) < 2 or not pairs:
    return '', ''
  for label in labels:
    mine = [d for a, b, d in pairs if label in (a, b)]
    if len(mine) == len(labels) - 1 and all(d['better'] == label
                                            for d in mine):
      return label, f'{label} better at {len(results["seeds"])} seeds'
  words = {d['verdict'] for _, _, d in pairs} - {''}
  if not words:
    return '', ''
  return '', words.pop() if len(words) == 1 else (
      'mixed: see the paired differences')


def member_metrics(results: dict[str, Any],
                   members: dict[str, Any]) -> list[tuple[str, str, str]]:
  """Rows for the members' own terms (`Member.terms`) that reached the test
  metrics as test_<term> (`tfp_vae.evaluation.metrics`) and are not in METRICS:
  parts of each one's own objective, so no direction across members."""
  known = {key for key, _, _ in METRICS}
  users: dict[str, list[str]] = {}
  for label in results['order']:
    summary = results['models'][label]['summary']
    for term in getattr(members.get(label), 'terms', ())[1:]:
      key = f'test_{term}'
      if key not in known and key in summary:
        users.setdefault(key, []).append(label)
  return [(key, f'own objective term {key[5:]} of {", ".join(labels)} '
           f'(as weighted in its loss; test split)', '')
          for key, labels in users.items()]


def _metric_rows(results: dict[str, Any],
                 own: tuple[tuple[str, str, str], ...] = ()) -> str:
  rows = []
  models = results['models']
  for key, description, better in (*METRICS, *own):
    summaries = {m: models[m]['summary'].get(key) for m in results['order']}
    if all(v is None for v in summaries.values()):
      continue
    winner, words = best_of(results, key)
    cells = ''.join(
        f'<td class="{"best" if m == winner else ""}">{_cell(v)}</td>'
        for m, v in summaries.items())
    rows.append(f'<tr><td><code>{key}</code><br><small>'
                f'{html.escape(description)}</small></td>{cells}'
                f'<td>{html.escape(better)}</td><td>{html.escape(words)}'
                f'</td></tr>')
  return ''.join(rows)


def _notes(results: dict[str, Any]) -> str:
  """Why rows are missing (data without labels has no probes)."""
  return ''.join(f'<p class="note">Latent probes {html.escape(n)}.</p>'
                 for n in results.get('notes', ()))


def _difference_rows(results: dict[str, Any]) -> str:
  rows = []
  for key, description, better in METRICS:
    if not better:
      continue
    for pair in results['differences']:
      d = pair['metrics'].get(key)
      if d is None:
        continue
      klass = ' class="best"' if d['better'] else ''
      rows.append(f'<tr><td><code>{key}</code><br><small>'
                  f'{html.escape(description)}</small></td><td>'
                  f'{html.escape(pair["b"])} - {html.escape(pair["a"])}'
                  f'</td><td{klass}>{_cell(d)}</td><td>'
                  f'{html.escape(better)}</td><td>'
                  f'{html.escape(d["verdict"])}</td></tr>')
  return ''.join(rows)


# The articles' three figures, shown over training.
OVER_TRAINING = ('samples', 'latent', 'grid')


def _over_training(epoch_figures: dict[str, dict[int, dict[str, str]]],
                   head: str) -> str:
  """For each of the articles' figures, a row per plotted epoch with the
  models side by side."""
  models = list(epoch_figures)
  epochs = sorted({e for by_epoch in epoch_figures.values()
                   for e in by_epoch})
  sections = []
  for kind, caption in FIGURES:
    if kind not in OVER_TRAINING:
      continue
    rows = []
    for epoch in epochs:
      if not any(kind in epoch_figures[m].get(epoch, {}) for m in models):
        continue
      cells = ''.join(
          f'<td>{_img(epoch_figures[m][epoch][kind])}</td>'
          if kind in epoch_figures[m].get(epoch, {}) else '<td></td>'
          for m in models)
      rows.append(f'<tr><th>epoch {epoch}</th>{cells}</tr>')
    if rows:
      sections.append(f'<h3>{html.escape(caption)}</h3><table class="figs">'
                      f'<tr><th></th>{head}</tr>{"".join(rows)}</table>')
  return ''.join(sections)


def _settings_table(config, results: dict[str, Any],
                    members: dict[str, Any]) -> str:
  """The shared settings, then each member's own at their resolved values
  (an MMD weight left at its default shows the number it resolved to)."""
  rows = []
  _, likelihood, prior, _ = config.model.parts()
  shown = {'model': ('likelihood', 'architecture', 'latent_dim', 'prior',
                     'prior_components', 'gaussian_scale'),
           'data': ('dataset', 'train_examples', 'validation_examples',
                    'binarize'),
           'trainer': ('batch_size', 'epochs', 'learning_rate',
                       'lr_schedule', 'seed', 'precision')}
  # Settings of parts that do not read them are not shown.
  unused = {'prior_components': not prior.uses_components,
            'gaussian_scale': not likelihood.uses_scale}
  for group, names in shown.items():
    for name in names:
      if unused.get(name):
        continue
      value = getattr(getattr(config, group), name)
      rows.append(f'<tr><td><code>{name}</code></td><td colspan="2">'
                  f'{html.escape(family.setting_text(value))}</td></tr>')
  for label in results['order']:
    member = members[label]
    listed = ', '.join(f'{k}={family.setting_text(v)}'
                       for k, v in member.settings().items())
    rows.append(f'<tr><td><code>{html.escape(label)}</code></td>'
                f'<td colspan="2">{html.escape(listed) or "&ndash;"}</td>'
                f'</tr>')
  return f'<table class="settings">{"".join(rows)}</table>'


def _figure_rows(models: list[str], figures: dict[str, dict[str, str]],
                 head: str) -> str:
  out = []
  for kind, caption in FIGURES:
    if not any(kind in figures.get(m, {}) for m in models):
      continue
    cells = ''.join(
        f'<td>{_img(figures[m][kind]) if kind in figures.get(m, {}) else ""}'
        f'</td>' for m in models)
    out.append(f'<h3>{html.escape(caption)}</h3><table class="figs"><tr>'
               f'{head}</tr><tr>{cells}</tr></table>')
  return ''.join(out)


_STYLE = """
body { font-family: sans-serif; max-width: 1400px; margin: 2em auto;
       padding: 0 2em; line-height: 1.4; }
table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: 4px 8px; vertical-align: top; }
td.best { background: #d8f0d8; font-weight: bold; }
table.figs td { border: none; }
img { max-width: 640px; }
img.wide { max-width: 100%; }
"""


def _progress(epoch_figures, head: str, plot_every: int) -> str:
  """The figures drawn during training, by epoch, if there are any."""
  progress = _over_training(epoch_figures, head) if epoch_figures else ''
  if progress:
    progress = ('<h2>Over training</h2><p>The same figures drawn every '
                f'{plot_every} epochs.</p>' + progress)
  return progress


def _plane(path: Optional[str]) -> str:
  """The rate-distortion section, if its figure was drawn."""
  if not path:
    return ''
  return (f'<h2>Rate and distortion</h2><p>Every run on the plane of '
          f'Alemi et al. (2018), "Fixing a Broken ELBO": its test rate '
          f'and distortion, labelled with its mutual information '
          f'(<code>tfp_vae/nn/information.py</code>: a lower bound, at most '
          f'log N); a point-mass encoder has no rate and shows as a line '
          f'at its distortion. Beside it, each latent unit\'s rate: '
          f'collapsed units read 0.</p><p>{_img(path, "wide")}</p>')


def write_report(path: str, results: dict[str, Any],
                 figures: dict[str, dict[str, str]],
                 shared_figures: dict[str, str], config,
                 epoch_figures: Optional[
                     dict[str, dict[int, dict[str, str]]]] = None,
                 members: Optional[dict[str, Any]] = None) -> str:
  """Writes the report; returns its path.

  Args:
    path: output HTML file.
    results: a comparison's summary (`comparison.summarise`): per-seed
      metrics, means with intervals, paired differences.
    figures: {label: {figure kind: png path}} (kinds as in FIGURES).
    shared_figures: {'training_curves': png path, 'rate_distortion': png
      path (optional)}.
    config: the TrainConfig the runs share (member aside).
    epoch_figures: {label: {epoch: {figure kind: png path}}}, the figures
      drawn during training, shown side by side by epoch.
    members: {label: its resolved `family.Member`}, for each one's own
      settings (default: config's member for every label).
  """
  models = list(results['order'])
  members = members or {m: config.model.member for m in models}
  seeds = results['seeds']
  head = ''.join(f'<th>{html.escape(m)}</th>' for m in models)
  curves = ''.join(f'<p>{_img(p, "wide")}</p>'
                   for k, p in shared_figures.items() if k != 'rate_distortion')
  plane = _plane(shared_figures.get('rate_distortion'))
  progress = _progress(epoch_figures, head, config.runtime.plot_every)
  dataset = html.escape(config.data.dataset)
  page = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>tfp-vae comparison: {dataset}</title>
<style>{_STYLE}</style></head><body>
<h1>{html.escape(", ".join(models))} on {dataset}</h1>
<p>Same architecture, data and budget; {len(seeds)} seed(s)
({", ".join(map(str, seeds))}), the same for every model. All metrics are
on the held-out test split: the mean over seeds and its {html.escape(
    results["interval"])} interval in brackets. A model is highlighted as
better only where its paired difference to every other model (same seeds)
excludes zero; elsewhere the row says so. Throughput and counts have no
direction. Estimators are documented in <code>tfp_vae/experiment/evaluate.py</code>
and the modules it names.</p>
<h2>Settings</h2>
{_settings_table(config, results, members)}
<h2>Metrics</h2>
<table class="metrics"><tr><th>metric</th>{head}<th>better</th>
<th>verdict</th></tr>
{_metric_rows(results, tuple(member_metrics(results, members)))}
</table>
{_notes(results)}
<h3>Paired differences</h3>
<p>B - A on the same seeds, mean and interval; the verdict names a model
only where the interval excludes zero.</p>
<table class="differences"><tr><th>metric</th><th>B - A</th>
<th>difference</th><th>better</th><th>verdict</th></tr>
{_difference_rows(results)}
</table>
{plane}
<h2>Training curves</h2>
<p>Dashed: training batches (epoch mean); solid: test split after each
epoch. A test curve rising while the training curve falls is overfitting.</p>
{curves}
<h2>Figures</h2>
{_figure_rows(models, figures, head)}
{progress}
</body></html>
"""
  with storage.writing('report', 'the report', path):
    files.write_text(path, page)
  return path
