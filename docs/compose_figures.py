"""Composes the README's figures from a trainers.compare output directory.

  .venv/bin/python docs/compose_figures.py runs/fashion_mnist docs/fashion_mnist

Writes PREFIX_latent.png, PREFIX_grid.png and PREFIX_samples.png: the VAE's
figure beside the MMD-VAE's, scaled to a README-friendly width.
"""

import os
import sys

from PIL import Image

WIDTH = 1000


def side_by_side(left: str, right: str, out: str) -> None:
  a, b = Image.open(left).convert('RGB'), Image.open(right).convert('RGB')
  canvas = Image.new('RGB', (a.width + b.width, max(a.height, b.height)),
                     'white')
  canvas.paste(a, (0, 0))
  canvas.paste(b, (a.width, 0))
  scale = WIDTH / canvas.width
  canvas = canvas.resize((WIDTH, round(canvas.height * scale)),
                         Image.LANCZOS)
  # A 256-colour palette keeps the files small (the figures have few).
  canvas.quantize(256).save(out, optimize=True)


def main(compare_dir: str, prefix: str) -> None:
  figures = os.path.join(compare_dir, 'figures')
  os.makedirs(os.path.dirname(prefix) or '.', exist_ok=True)
  for kind in ('latent', 'grid', 'samples'):
    left = os.path.join(figures, f'vae_{kind}.png')
    if os.path.exists(left):
      side_by_side(left, os.path.join(figures, f'mmd_vae_{kind}.png'),
                   f'{prefix}_{kind}.png')
      print(f'{prefix}_{kind}.png')


if __name__ == '__main__':
  main(*sys.argv[1:3])
