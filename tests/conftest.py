"""Shared fixtures: quiet TensorFlow and the embedded data (helpers that
are not fixtures live in tests/helpers.py)."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top


@pytest.fixture(scope='session')
def mnist_5k():
  from tfp_vae import data  # pylint: disable=g-import-not-at-top
  return data.load_mnist_5k()
