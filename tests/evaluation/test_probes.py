"""The linear probes (tfp_vae/evaluation/probes.py) on codes with known
answers."""

import numpy as np
import pytest

from tfp_vae.evaluation import probes


def _clustered_codes(n, rng, centres):
  labels = rng.integers(0, len(centres), size=n)
  return centres[labels] + 0.1 * rng.normal(size=centres[labels].shape), labels


@pytest.mark.parametrize('probe', [probes.knn_accuracy,
                                   probes.logistic_regression_accuracy])
def test_probes_are_perfect_on_separable_codes_and_chance_on_shuffled(probe):
  rng = np.random.default_rng(0)
  centres = 10 * rng.normal(size=(10, 3))
  train, train_y = _clustered_codes(2000, rng, centres)
  test, test_y = _clustered_codes(1000, rng, centres)
  assert probe(train, train_y, test, test_y) == 1.0
  shuffled = rng.permutation(train_y)
  chance = probe(train, shuffled, test, rng.permutation(test_y))
  assert 0.05 < chance < 0.16
