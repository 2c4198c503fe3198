"""report.html in a real headless browser (Debian's Chromium through
Selenium and chromedriver): every figure loads, nothing is logged to the
console, the settings and metrics tables are there.  .ci/run installs
Chromium where apt-get exists; elsewhere the test skips and says why."""

import os
import shutil

import pytest

from tests.helpers import FANNED_OUT_MODELS as MODELS

CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')
CHROMEDRIVER = shutil.which('chromedriver')
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason='needs Chromium and chromedriver (apt-get install chromium '
           'chromium-driver; .ci/run does it where apt-get exists)')


@pytest.mark.slow
def test_report_renders_with_every_figure_and_no_console_errors(
    compared_fanned_out, tmp_path):
  report = compared_fanned_out
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
  # + the training curves and the rate-distortion plane
  assert len(images) == len(MODELS) * (5 + 2 * 2) + 2, [i[0] for i in images]
  assert {i[0] for i in images} >= {f'{m.replace(":", "_")}_traversals.png'
                                    for m in MODELS}
  broken = [alt for alt, complete, w, h in images
            if not complete or w < 100 or h < 100]
  assert not broken, broken
  assert not [p for p in problems if p['level'] in ('SEVERE', 'WARNING')], (
      problems)
  assert headings[:4] == ['Settings', 'Metrics', 'Rate and distortion',
                          'Training curves']
  assert 'Over training' in headings
  assert 'mmd_weight=784' in settings and 'beta=4' in settings
  assert os.path.getsize(tmp_path / 'report.png') > 10000
