"""report.html in a real headless browser (Debian's Chromium through
Selenium and chromedriver): every figure loads, nothing is logged to the
console, the settings and metrics tables are there.  .ci/run installs
Chromium where apt-get exists; elsewhere the test skips and says why."""

import os
import shutil

import pytest

from tests.helpers import run_cli

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
# One worker runs this file: its module fixtures (trained runs, servers)
# are built once, not once per worker (`make test` uses --dist loadgroup).
pytestmark = [pytest.mark.xdist_group('report_browser'), pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and chromedriver (apt-get install chromium '
           'chromium-driver; .ci/run does it where apt-get exists)')]


MODELS = ('vae', 'mmd_vae', 'vae:beta=4')


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  """Three members, two seeds, two at a time: the fan-out a researcher
  runs, on tiny data."""
  out = str(tmp_path_factory.mktemp('browser') / 'compare')
  r = run_cli('trainers.compare', f'--output_dir={out}', '--epochs=2',
              '--plot_every=1', '--train_examples=200', '--batch_size=50',
              '--eval_iwae_samples=2', f'--models={",".join(MODELS)}',
              '--seeds=2', '--parallel=2', '--latent_dim=3', timeout=1200)
  assert r.returncode == 0, r.stderr[-3000:]
  return out


@pytest.mark.slow
def test_report_renders_with_every_figure_and_no_console_errors(
    report, tmp_path):
  from selenium import webdriver  # pylint: disable=g-import-not-at-top
  from selenium.webdriver.chrome.service import Service  # pylint: disable=g-import-not-at-top
  options = webdriver.ChromeOptions()
  options.binary_location = CHROMIUM
  # Headless, as root in a container, and without reaching for the
  # network (the page is self-contained).
  for arg in ('--headless=new', '--no-sandbox', '--disable-gpu',
              '--disable-dev-shm-usage', '--no-first-run',
              '--disable-background-networking', '--disable-component-update',
              '--disable-sync', f'--user-data-dir={tmp_path / "profile"}'):
    options.add_argument(arg)
  options.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
  driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
  try:
    driver.set_window_size(1400, 1000)
    driver.get('file://' + os.path.join(report, 'report.html'))
    images = driver.execute_script(
        'return Array.from(document.images).map(i => [i.alt, i.complete, '
        'i.naturalWidth, i.naturalHeight]);')
    problems = driver.get_log('browser')
    headings = driver.execute_script(
        'return Array.from(document.querySelectorAll("h2")).map('
        'h => h.textContent);')
    settings = driver.execute_script(
        'return document.querySelector("table.settings").innerText;')
    driver.save_screenshot(str(tmp_path / 'report.png'))
  finally:
    driver.quit()
  # At latent 3: samples, latent (PCA), traversals, reconstructions and
  # interpolations per model, the curves, and samples and latent x 2
  # epochs per model (no grid beyond 2-d).
  assert len(images) == 3 * 5 + 1 + 2 * 2 * 3, [i[0] for i in images]
  assert {i[0] for i in images} >= {f'{m.replace(":", "_")}_traversals.png'
                                    for m in MODELS}
  broken = [alt for alt, complete, w, h in images
            if not complete or w < 100 or h < 100]
  assert not broken, broken
  assert not [p for p in problems if p['level'] in ('SEVERE', 'WARNING')], (
      problems)
  assert headings[:3] == ['Settings', 'Metrics', 'Training curves']
  assert 'Over training' in headings
  assert 'mmd_weight=784' in settings and 'beta=4' in settings
  assert os.path.getsize(tmp_path / 'report.png') > 10000


def test_the_fanned_out_runs_are_paired_over_the_same_seeds(report):
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(report, 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['seeds'] == [0, 1]
  assert metrics['order'] == list(MODELS)
  for label, model in metrics['models'].items():
    assert set(model['seeds']) == {'0', '1'}
    for seed, run_dir in model['runs'].items():
      with open(os.path.join(run_dir, 'config.json')) as f:
        config = json.load(f)
      assert config['trainer']['seed'] == int(seed)
      assert config['model']['name'] == label.split(':')[0]
    knn = model['summary']['test_knn_accuracy']
    assert knn['n'] == 2 and knn['low'] <= knn['mean'] <= knn['high']
  assert len(metrics['differences']) == 3
  with open(os.path.join(report, 'vae-seed1', 'compare.log')) as f:
    assert '-m trainers.train' in f.read()
