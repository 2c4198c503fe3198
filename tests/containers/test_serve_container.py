"""The image as its README runs it: `docker run IMAGE --flags` trains and
exports (the entrypoint with flags), and `--entrypoint tfp-vae-serve`
serves the export, on the host's loopback only, answering TF Serving's
REST API."""

import json
import os
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.helpers import free_port, http_call

LATENT = 2


def _wait_ready(url, container, run_docker, timeout=240):
  deadline = time.time() + timeout
  while time.time() < deadline:
    try:
      status, reply = http_call(f'{url}/v1/models/vae', timeout=5)
      states = [v['state'] for v in reply.get('model_version_status', [])]
      if status == 200 and 'AVAILABLE' in states:
        return reply
    except (urllib.error.URLError, ConnectionError, OSError):
      pass
    state = run_docker('inspect', '-f', '{{.State.Running}}', container,
                       check=False).stdout.strip()
    if state != 'true':
      break
    time.sleep(1)
  logs = run_docker('logs', container, check=False)
  pytest.fail(f'the server did not come up:\n{logs.stderr[-3000:]}'
              f'{logs.stdout[-2000:]}')


def _listening(port):
  """The IPv4 addresses listening on `port` (the host's /proc/net/tcp)."""
  found = []
  with open('/proc/net/tcp') as f:
    for line in f.readlines()[1:]:
      local, state = line.split()[1], line.split()[3]
      address, hex_port = local.split(':')
      if state == '0A' and int(hex_port, 16) == port:
        found.append('.'.join(str(int(address[i:i + 2], 16))
                              for i in (6, 4, 2, 0)))
  return found


@pytest.fixture
def exported(image, runs_dir, run_docker):
  """A model trained and exported by `docker run IMAGE --flags` as uid
  1000, without a network."""
  run_docker('run', '--rm', '--network=none', '-v', f'{runs_dir}:/runs',
             image, '--model=vae', '--dataset=mnist_5k',
             '--train_examples=200', '--batch_size=50', '--epochs=1',
             '--plot_every=0', f'--latent_dim={LATENT}',
             '--model_dir=/runs/vae', '--export_dir=/runs/export/vae',
             '--noverbose', timeout=900)
  assert sorted(os.listdir(runs_dir / 'export' / 'vae')) == [
      '1', 'models.config']
  assert os.stat(runs_dir / 'vae' / 'metrics.json').st_uid == 1000
  return runs_dir / 'export' / 'vae'


def test_served_container_answers_rest_on_loopback(image, exported,
                                                  runs_dir, run_docker):
  rest, grpc = free_port(), free_port()
  name = f'tfp-vae-serve-test-{os.getpid()}'
  run_docker('run', '-d', '--rm', '--name', name, '--network=host',
             '-v', f'{runs_dir}:/runs:ro', '--entrypoint', 'tfp-vae-serve',
             image, '--export_dir=/runs/export/vae', '--host=127.0.0.1',
             f'--rest_api_port={rest}', f'--grpc_port={grpc}')
  try:
    url = f'http://127.0.0.1:{rest}'
    status = _wait_ready(url, name, run_docker)
    assert status['model_version_status'][0]['version'] == '1'
    code, reply = http_call(f'{url}/v1/models/vae:predict', {
        'signature_name': 'decode',
        'instances': np.zeros((3, LATENT)).tolist()})
    assert code == 200, reply
    images = np.asarray(reply['predictions'], np.float32)
    assert images.shape[:1] == (3,) and np.all(np.isfinite(images)), (
        images.shape)
    code, reply = http_call(f'{url}/v1/models/vae:predict', {
        'signature_name': 'decode', 'instances': [[0.0] * (LATENT + 1)]})
    assert code == 400 and 'codes must have shape' in json.dumps(reply)
    # Loopback only: on the host network it listens on 127.0.0.1 alone.
    assert _listening(rest) == ['127.0.0.1']
  finally:
    run_docker('rm', '-f', name, check=False)
