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
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and chromedriver (apt-get install chromium '
           'chromium-driver; .ci/run does it where apt-get exists)')


@pytest.fixture(scope='module')
def report(tmp_path_factory):
  out = str(tmp_path_factory.mktemp('browser') / 'compare')
  r = run_cli('trainers.compare', f'--output_dir={out}', '--epochs=2',
              '--plot_every=1', '--train_examples=200', '--batch_size=50',
              '--eval_iwae_samples=2')
  assert r.returncode == 0, r.stderr[-3000:]
  return os.path.join(out, 'report.html')


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
    driver.get('file://' + report)
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
  # 5 figures per model, the curves, and 3 figures x 2 epochs x 2 models.
  assert len(images) == 2 * 5 + 1 + 3 * 2 * 2, [i[0] for i in images]
  broken = [alt for alt, complete, w, h in images
            if not complete or w < 100 or h < 100]
  assert not broken, broken
  assert not [p for p in problems if p['level'] in ('SEVERE', 'WARNING')], (
      problems)
  assert headings[:3] == ['Settings', 'Metrics', 'Training curves']
  assert 'Over training' in headings
  assert 'mmd_weight=784 (resolved default)' in settings
  assert os.path.getsize(tmp_path / 'report.png') > 10000
