"""Matplotlib figures of a trained model: the articles' plots and a few more.

* samples: images decoded from z ~ p(z) (the articles' "generated" figure);
* latent: the test set in latent space coloured by class (for latent_dim > 2,
  the first two principal components of the code means, and the title says
  so);
* grid: decoded images over a grid of latent values (the articles' "morphing"
  figure, latent_dim = 2 only), spaced at standard-normal quantiles;
* traversals: for latent_dim > 2, one row per unit decoded across its prior
  range with the others held at a test image's code;
* reconstructions: test inputs (top rows) above their reconstructions;
* interpolations: decoded straight lines in latent space between the codes
  of pairs of test images;
* training_curves: per-epoch train and test terms of one or more runs.

Figure functions return a `matplotlib.figure.Figure` (a notebook shows
it), and write it to `path` when one is given, as the command line does
(`draw_all`); the grid returns None beyond 2 latent dimensions.  Figures
are made without pyplot, so importing this module chooses no backend and
a notebook's stays as it was.
"""

import os
from typing import Optional, Sequence

import matplotlib
from matplotlib import figure as figure_lib
import matplotlib.ticker
import numpy as np
import tensorflow as tf

Figure = figure_lib.Figure


def _figure(figsize) -> Figure:
  """A figure outside pyplot: nothing to close, no backend needed."""
  return Figure(figsize=figsize)


def _save(fig: Figure, path: Optional[str]) -> Figure:
  if path is not None:
    fig.savefig(path, dpi=100)
  return fig


def tile(images: np.ndarray, cols: int) -> np.ndarray:
  """[N, H, W, C] -> one [rows * H, cols * W, C] mosaic (blank-padded)."""
  n, h, w, c = images.shape
  rows = -(-n // cols)
  out = np.ones((rows * h, cols * w, c), dtype=np.float32)
  for i in range(n):
    r, k = divmod(i, cols)
    out[r * h:(r + 1) * h, k * w:(k + 1) * w] = images[i]
  return out


def _show(mosaic: np.ndarray, title: str, path: Optional[str],
          size: float = 6.0) -> Figure:
  fig = _figure((size, size * mosaic.shape[0] / mosaic.shape[1] + 0.4))
  ax = fig.subplots()
  if mosaic.shape[-1] == 1:
    ax.imshow(mosaic[..., 0], cmap='gray', vmin=0, vmax=1)
  else:
    ax.imshow(np.clip(mosaic, 0, 1))
  ax.set_title(title)
  ax.axis('off')
  fig.tight_layout()
  return _save(fig, path)


def _decode_mean(model, codes: np.ndarray) -> np.ndarray:
  return model.decode(tf.constant(codes, tf.float32)).mean().numpy()


def samples(model, path: Optional[str] = None, n: int = 100,
            seed: int = 0) -> Figure:
  """Decoder means at n codes drawn from the prior, tiled."""
  codes = model.prior_distribution().sample(n, seed=(seed, 1)).numpy()
  images = _decode_mean(model, codes)
  return _show(tile(images, int(np.ceil(np.sqrt(n)))),
               f'{model.name}: decoded samples z ~ p(z)', path)


def project_2d(codes: np.ndarray) -> tuple[np.ndarray, str]:
  """Codes -> 2-D points and an axis description (PCA for dim > 2)."""
  if codes.shape[1] == 1:
    return np.stack([codes[:, 0], np.zeros(len(codes))], 1), 'z1 (1-D code)'
  if codes.shape[1] == 2:
    return codes, 'z'
  centred = codes - codes.mean(0)
  _, s, vt = np.linalg.svd(centred, full_matrices=False)
  explained = (s[:2]**2).sum() / max((s**2).sum(), 1e-12)
  return centred @ vt[:2].T, (f'PCA projection of E[q(z|x)] '
                              f'({explained:.0%} of variance)')


def latent_scatter(codes: np.ndarray, labels: Optional[np.ndarray],
                   title: str, path: Optional[str] = None,
                   class_names: Sequence[str] = ()) -> Figure:
  """Test codes (means) in 2-D, coloured by class, with a legend that names
  each class (`class_names[label]`, else the label number)."""
  points, how = project_2d(codes)
  fig = _figure((7.5, 5.5))
  ax = fig.subplots()
  if labels is None:  # data without labels: one colour, no legend
    labels, class_names = np.zeros(len(points), np.int64), ('no labels',)
  classes = np.unique(labels)
  colours = matplotlib.colormaps['tab10' if len(classes) <= 10 else 'tab20']
  names = []
  for i, c in enumerate(classes):
    at = labels == c
    names.append(class_names[c] if c < len(class_names) else str(c))
    ax.scatter(points[at, 0], points[at, 1], s=4, color=colours(i % 20),
               label=names[-1], rasterized=True)
  ax.legend(title='class', loc='center left', bbox_to_anchor=(1.01, 0.5),
            markerscale=3, fontsize=8, frameon=False)
  ax.set_title(f'{title}\n{how}')
  ax.set_xlabel('dimension 1')
  ax.set_ylabel('dimension 2')
  fig.tight_layout()
  return _save(fig, path)


def latent_grid(model, path: Optional[str] = None,
                n: int = 15) -> Optional[Figure]:
  """Decoded images on an n x n grid of z (latent_dim == 2 only).

  Grid values are standard-normal quantiles of 0.05 .. 0.95, so the grid
  covers where the prior puts 90% of its mass in each coordinate.
  """
  if model.latent_dim != 2:
    return None
  q = tf.math.ndtri(tf.linspace(0.05, 0.95, n)).numpy()
  # Rows top-down are decreasing z2, as on a plot's y axis.
  z1, z2 = np.meshgrid(q, q[::-1])
  codes = np.stack([z1.ravel(), z2.ravel()], 1)
  images = _decode_mean(model, codes)
  return _show(tile(images, n), f'{model.name}: decoded grid over z in '
               f'[{q[0]:.2f}, {q[-1]:.2f}]^2', path, size=7.0)


def traversals(model, code: np.ndarray, path: Optional[str] = None,
               n: int = 11, max_units: int = 32, seed: int = 0) -> Figure:
  """Per-unit latent traversals, as disentanglement_lib draws them: row u
  decodes `code` (a test image's code) with unit u swept over its prior
  range (the 5% to 95% quantiles of that unit under p(z), from 2,000 prior
  samples) and the other units held.  At most `max_units` rows.  (The
  command line draws them beyond 2 latent dimensions, where there is no
  grid.)"""
  latent = model.latent_dim
  draws = model.prior_distribution().sample(2000, seed=(seed, 5)).numpy()
  low, high = np.quantile(draws, [0.05, 0.95], axis=0)
  units = min(latent, max_units)
  codes = np.repeat(np.asarray(code, np.float32)[None, None], units * n,
                    0).reshape(units, n, latent)
  for u in range(units):
    codes[u, :, u] = np.linspace(low[u], high[u], n)
  images = _decode_mean(model, codes.reshape(-1, latent))
  return _show(tile(images, n), f'{model.name}: traversals, row u sweeps '
               f'z_u over its prior 5%-95% range\n(others at a test '
               f'image\'s code; rows 1-{units} of {latent} units)', path,
               size=7.0)


def reconstructions(model, images: np.ndarray,
                    path: Optional[str] = None) -> Figure:
  """Inputs and their mean reconstructions, in alternating rows of 10."""
  recon = model(tf.constant(images)).numpy()
  rows = []
  for start in range(0, len(images), 10):
    rows.append(images[start:start + 10])
    rows.append(recon[start:start + 10])
  return _show(tile(np.concatenate(rows), 10),
               f'{model.name}: inputs (odd rows) and reconstructions (even '
               f'rows)', path)


def interpolation_pairs(labels: Optional[np.ndarray], n: int = 8,
                        num_images: int = 0) -> np.ndarray:
  """n pairs (i, j) of test indices with different classes, [n, 2]
  (deterministic: the first example of class c with the first of c + 1).
  Without labels (None): pairs of images spread over the `num_images` test
  images, each with the one half the set away."""
  if labels is None:
    first = np.linspace(0, num_images // 2 - 1, n).astype(int)
    return np.stack([first, first + num_images // 2], axis=1)
  classes = np.unique(labels)
  firsts = {c: np.flatnonzero(labels == c) for c in classes}
  pairs = []
  for k in range(n):
    a = classes[k % len(classes)]
    b = classes[(k + 1 + k // len(classes)) % len(classes)]
    rank = k // len(classes)
    ia = firsts[a][min(rank, len(firsts[a]) - 1)]
    ib = firsts[b][min(rank + 1, len(firsts[b]) - 1)]
    pairs.append((ia, ib))
  return np.array(pairs)


def interpolations(model, start: np.ndarray, end: np.ndarray,
                   path: Optional[str] = None, steps: int = 10) -> Figure:
  """One row per pair: start image, decoded E[q(z|x)] interpolated linearly
  from start to end in `steps` points, end image."""
  za = model.encode(tf.constant(start)).mean().numpy()
  zb = model.encode(tf.constant(end)).mean().numpy()
  t = np.linspace(0.0, 1.0, steps)[None, :, None]
  codes = (za[:, None] * (1 - t) + zb[:, None] * t).reshape(-1, za.shape[1])
  decoded = _decode_mean(model, codes).reshape(len(start), steps,
                                               *start.shape[1:])
  rows = np.concatenate([start[:, None], decoded, end[:, None]], axis=1)
  rows = rows.reshape(-1, *start.shape[1:])
  return _show(tile(rows, steps + 2), f'{model.name}: interpolations '
               f'(outer columns: the inputs)', path)


CURVES = (
    ('reconstruction NLL (nats)', 'train_distortion',
     'test_reconstruction_nll'),
    ('training objective', 'train_loss', 'test_loss'),
    ('MMD(q(z), p(z)) on the test set', None, 'test_mmd_to_prior'),
    ('active units', None, 'test_active_units'),
)


def training_curves(histories: dict[str, list[dict]],
                    path: Optional[str] = None) -> Figure:
  """Per-epoch curves (history.jsonl records) of each named run: train
  (dashed) and test (solid) reconstruction NLL, objective, test MMD to the
  prior and active units."""
  fig = _figure((14, 9.5))
  axes = fig.subplots(2, 2)
  colours = matplotlib.rcParams['axes.prop_cycle'].by_key()['color']
  for ax, (title, train_key, test_key) in zip(axes.ravel(), CURVES):
    for colour, (name, history) in zip(colours, histories.items()):
      epochs = [r['epoch'] for r in history]
      if train_key and any(train_key in r for r in history):
        ax.plot(epochs, [r.get(train_key, np.nan) for r in history], '--',
                color=colour, label=f'{name} train')
      if any(test_key in r for r in history):
        ax.plot(epochs, [r.get(test_key, np.nan) for r in history], '-',
                color=colour, label=f'{name} test')
    ax.set_title(title, fontsize=13)
    ax.set_xlabel('epoch', fontsize=11)
    ax.tick_params(labelsize=10)
    # Epochs are whole numbers (no 1.25, 1.5 ticks on short runs).
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(fontsize=10)
  axes[1, 1].set_ylim(bottom=0)
  axes[1, 1].yaxis.get_major_locator().set_params(integer=True)
  fig.tight_layout()
  return _save(fig, path)


def rate_distortion(runs: dict[str, list[dict]],
                    path: Optional[str] = None) -> Figure:
  """Every run of each named member (its metrics.json) on the
  rate-distortion plane (Alemi et al. 2018): test rate against test
  reconstruction NLL, each point labelled with its mutual information
  where it has one; a point-mass encoder has no rate, so its runs are
  drawn as horizontal lines at their distortion.  Beside it, each member's
  per-unit rates (first seed, sorted), where the runs report them."""
  fig = _figure((14, 5.5))
  plane, units = fig.subplots(1, 2)
  colours = matplotlib.rcParams['axes.prop_cycle'].by_key()['color']
  for colour, (name, metrics) in zip(colours * 4, runs.items()):
    placed = [m for m in metrics if 'test_rate' in m]
    if placed:
      plane.scatter([m['test_rate'] for m in placed],
                    [m['test_reconstruction_nll'] for m in placed],
                    color=colour, label=name)
      for m in placed:
        if 'test_mutual_information' in m:
          plane.annotate(f"I={m['test_mutual_information']:.2f}",
                         (m['test_rate'], m['test_reconstruction_nll']),
                         fontsize=8, xytext=(4, 4),
                         textcoords='offset points')
    for i, m in enumerate(m for m in metrics if 'test_rate' not in m):
      plane.axhline(m['test_reconstruction_nll'], color=colour,
                    linestyle=':', label=None if i else
                    f'{name} (point mass: no rate)')
    per_unit = next((m['test_kl_per_unit'] for m in metrics
                     if 'test_kl_per_unit' in m), None)
    if per_unit is not None:
      units.plot(sorted(per_unit, reverse=True), 'o-', color=colour,
                 label=name)
  plane.set_xlabel('rate: KL(q(z|x) || p(z)), nats/image', fontsize=11)
  plane.set_ylabel('distortion: -log p(x|z), nats/image', fontsize=11)
  plane.set_title('Rate and distortion (every seed; I = mutual '
                  'information)', fontsize=12)
  units.set_xlabel('latent unit, by its rate', fontsize=11)
  units.set_ylabel('KL(q(z_u|x) || N(0, 1)), nats', fontsize=11)
  units.set_title('Rate of each unit (first seed)', fontsize=12)
  units.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
  for ax in (plane, units):
    if ax.get_legend_handles_labels()[0]:
      ax.legend(fontsize=9)
  fig.tight_layout()
  return _save(fig, path)


def draw_all(model, test_images: np.ndarray, test_labels: np.ndarray,
             codes: np.ndarray, out_dir: str, seed: int = 0,
             prefix: str = '', class_names: Sequence[str] = ()
             ) -> dict[str, str]:
  """Writes every figure into out_dir as <prefix><kind>.png; returns
  {kind: path} for the kinds written ('grid' only for latent_dim 2,
  'traversals' only beyond 2).
  `class_names` label the latent plot's legend."""
  os.makedirs(out_dir, exist_ok=True)
  paths = {name: os.path.join(out_dir, f'{prefix}{name}.png')
           for name in ('samples', 'latent', 'grid', 'traversals',
                        'reconstructions')}
  samples(model, paths['samples'], seed=seed)
  latent_scatter(codes, test_labels,
                 f'{model.name}: test set in latent space', paths['latent'],
                 class_names)
  if latent_grid(model, paths['grid']) is None:
    del paths['grid']
  if model.latent_dim > 2:  # at 2 the grid shows what traversals would
    traversals(model, codes[0], paths['traversals'], seed=seed)
  else:
    del paths['traversals']
  # Spread over the test set, which may be ordered by class.
  picks = np.linspace(0, len(test_images) - 1, min(50, len(test_images)))
  reconstructions(model, test_images[picks.astype(int)],
                  paths['reconstructions'])
  return paths
