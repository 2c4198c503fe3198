"""Shared fixtures: quiet TensorFlow, the embedded data, a CLI runner."""

import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import pytest  # pylint: disable=g-import-not-at-top

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def mnist_5k():
  from tfp_vae import data  # pylint: disable=g-import-not-at-top
  return data.load_mnist_5k()


def run_cli(module: str, *args: str, timeout: float = 600,
            env: dict | None = None) -> subprocess.CompletedProcess:
  """Runs `python -m module args` from the repository root."""
  full_env = dict(os.environ)
  full_env.update(env or {})
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                        capture_output=True, text=True, timeout=timeout,
                        env=full_env)
