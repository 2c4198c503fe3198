"""docs/tutorial.ipynb runs from top to bottom in a Jupyter kernel, on tiny
settings (1 epoch, 300 training images), so it cannot drift from the code:
every cell's assertions hold, the figures reach the notebook as images,
and the runs, exports and saved model it promises are written."""

import json
import os

# The test extra's (setup.cfg): missing, the test fails rather than skips.
import nbclient
import nbformat
import pytest

from tests.helpers import REPO

NOTEBOOK = os.path.join(REPO, 'docs', 'tutorial.ipynb')
# A cell (two runs of one epoch, their exports) takes seconds; the first
# imports TensorFlow.
CELL_TIMEOUT = 600


@pytest.mark.slow
def test_the_tutorial_runs_on_tiny_settings(tmp_path, monkeypatch):
  monkeypatch.setenv('TFP_VAE_TUTORIAL_EPOCHS', '1')
  monkeypatch.setenv('TFP_VAE_TUTORIAL_IMAGES', '300')
  monkeypatch.setenv('TFP_VAE_TUTORIAL_DIR', str(tmp_path))
  monkeypatch.setenv('TF_CPP_MIN_LOG_LEVEL', '2')
  notebook = nbformat.read(NOTEBOOK, as_version=4)
  # Kept without outputs: what is committed is the code.
  assert all(not c.get('outputs') for c in notebook.cells
             if c.cell_type == 'code')
  nbclient.NotebookClient(
      notebook, timeout=CELL_TIMEOUT, kernel_name='python3',
      resources={'metadata': {'path': REPO}}).execute()
  outputs = [o for c in notebook.cells if c.cell_type == 'code'
             for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  images = [o for o in outputs if 'image/png' in o.get('data', {})]
  assert len(images) >= 4  # two latent scatters, two sample grids
  for name in ('vae', 'mmd_vae'):
    with open(tmp_path / name / 'metrics.json') as f:
      metrics = json.load(f)
    assert metrics['epochs_completed'] == 1
    assert os.path.isdir(tmp_path / 'export' / name / '1')
  assert os.path.getsize(tmp_path / 'mmd_vae.keras') > 0
  # The comparison printed both columns.
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'test_mmd_to_prior' in text and 'mmd_vae' in text
