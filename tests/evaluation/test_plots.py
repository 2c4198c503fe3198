"""tfp_vae.plots (tfp_vae/evaluation/plots.py): each figure a notebook
draws."""

import os

from matplotlib import figure as figure_lib

import tfp_vae
from tfp_vae.evaluation import plots


def test_plots_return_figures(digits, tmp_path):
  _, labels, x_test = digits
  model = tfp_vae.VAE(latent_dim=2)
  codes = model.encode(x_test).mean().numpy()
  figures = [plots.samples(model, n=4), plots.latent_grid(model, n=3),
             plots.traversals(model, codes[0], n=3),
             plots.reconstructions(model, x_test[:10]),
             plots.interpolations(model, x_test[:2], x_test[2:4], steps=3),
             plots.latent_scatter(codes, labels[:40], 'codes'),
             plots.training_curves({'a': [{'epoch': 1, 'test_loss': 2.0,
                                            'train_loss': 2.5}]})]
  assert all(isinstance(f, figure_lib.Figure) for f in figures)
  # traversals at latent 2: one row per unit.
  assert figures[2].axes[0].images[0].get_array().shape[0] == 2 * 28
  path = str(tmp_path / 'samples.png')
  plots.samples(model, path, n=4)
  assert os.path.getsize(path) > 1000
