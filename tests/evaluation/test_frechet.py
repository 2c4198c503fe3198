"""The Fréchet distance and its feature classifier
(tfp_vae/evaluation/frechet.py)."""

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from tfp_vae.evaluation import frechet


def test_frechet_distance_matches_scipy_and_closed_form():
  rng = np.random.default_rng(0)
  a = rng.normal(size=(400, 6))
  b = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 1.0
  mu_a, mu_b = a.mean(0), b.mean(0)
  ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
  reference = (np.sum((mu_a - mu_b)**2) + np.trace(ca + cb) -
               2 * np.trace(scipy.linalg.sqrtm(ca @ cb).real))
  assert frechet.frechet_distance(a, b) == pytest.approx(reference, rel=1e-6)
  # N(0, I) vs N(m, 4 I) in F dims: |m|^2 + F (1 + 4 - 2 * 2) = |m|^2 + F.
  big_a = rng.normal(size=(100000, 4))
  big_b = 2 * rng.normal(size=(100000, 4)) + 1.0
  assert frechet.frechet_distance(big_a, big_b) == pytest.approx(8.0,
                                                                 rel=0.02)
  assert abs(frechet.frechet_distance(a, a)) < 1e-6


def test_feature_classifier_is_cached_by_data(tmp_path):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(200, 8, 8, 1)).astype(np.float32)
  y = rng.integers(0, 3, size=200)
  first = frechet.feature_classifier(x, y, 3, cache_dir=str(tmp_path),
                                     epochs=1)
  files = list(tmp_path.iterdir())
  assert len(files) == 1
  again = frechet.feature_classifier(x, y, 3, cache_dir=str(tmp_path),
                                     epochs=1)
  np.testing.assert_array_equal(first(x[:4])[0], again(x[:4])[0])
  frechet.feature_classifier(x[::-1], y[::-1], 3, cache_dir=str(tmp_path),
                             epochs=1)
  assert len(list(tmp_path.iterdir())) == 2
