"""One door per decision (#38): a run's start reads config.json once,
makes its plan once (which looks the model's parts up once) and builds its
model once, counted during real in-process runs, started and resumed."""

import builtins
import collections
import os

import pytest

from tfp_vae.config import groups as config_groups
from tfp_vae.config import settings as config_lib
from tfp_vae.model import models
from tfp_vae.runtime import plan
from tfp_vae.training import rundir
from tfp_vae.training import run as training


def _counting(monkeypatch) -> collections.Counter:
  """Counts config.json opened, `ModelConfig.parts()`, `plan.make` and
  models assembled, from now until the test ends."""
  counts = collections.Counter()
  real_open = builtins.open

  def counting_open(file, *args, **kwargs):
    if os.path.basename(str(file)) == rundir.CONFIG_FILE and 'r' in (
        args[0] if args else kwargs.get('mode', 'r')):
      counts['config.json read'] += 1
    return real_open(file, *args, **kwargs)

  def counted(owner, name, key):
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
      counts[key] += 1
      return real(*args, **kwargs)
    monkeypatch.setattr(owner, name, wrapper)

  monkeypatch.setattr(builtins, 'open', counting_open)
  counted(config_groups.ModelConfig, 'parts', 'parts()')
  counted(plan, 'make', 'plan.make')
  # Every model's layers are made here (`build_model`, the Python API).
  counted(models, 'assemble', 'models built')
  return counts


def _start(counts, config) -> dict:
  counts.clear()
  training.run(config)
  return dict(counts)


def _config(tmp_path, **settings) -> config_lib.TrainConfig:
  return config_lib.TrainConfig.create(
      epochs=1, train_examples=200, batch_size=50, plot_every=0,
      verbose=False, model_dir=str(tmp_path / 'run'), **settings)


ONCE = {'config.json read': 1, 'parts()': 1, 'plan.make': 1,
        'models built': 1}


def test_a_start_and_a_resume_read_plan_and_build_once(tmp_path,
                                                       monkeypatch):
  """Before #38 a resume read config.json three times and a start looked
  the parts up four times (five under 16 bits)."""
  counts = _counting(monkeypatch)
  config = _config(tmp_path, precision='float32')
  # A new run: the one read finds no config.json.
  assert _start(counts, config) == ONCE
  assert _start(counts, config.replace(epochs=2)) == ONCE


@pytest.mark.slow
def test_a_16_bit_run_builds_its_float32_copy_only(tmp_path, monkeypatch):
  """Under 16 bits the metrics, plots and export need the model in
  float32: built a second time, and only that (`models.in_float32` says
  why); the plan and its parts still once."""
  counts = _counting(monkeypatch)
  config = _config(tmp_path, precision='mixed_bfloat16')
  assert _start(counts, config) == {**ONCE, 'models built': 2}
  assert _start(counts, config.replace(epochs=2)) == {
      **ONCE, 'models built': 2}
