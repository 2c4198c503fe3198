"""The deployment paths run as containers of the project's image (marker
`deploy`, given to every test under tests/containers/; the unit tests of
deploy/'s code are in tests/deploy/ and run with the suite): `make
deploy-test` builds the image and runs these with TFP_VAE_DEPLOY_TESTS=1;
anywhere else they skip, so `make test` leaves them out.
TFP_VAE_DEPLOY_IMAGE names the image (deploy/local/deploy-test.sh's tag);
TFP_VAE_DEPLOY_SKIP says why Docker could not run, when it could not.

The manifests and pipelines name the published image
(ghcr.io/tfp-vae/tfp-vae:...); the local image is tagged with that name for
the session (and untagged after), so the runs use the manifests' own image
field."""

import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'deploy: the project\'s image run as containers (KFP local '
      'runs, the jobs\' pods, the model server); `make deploy-test` runs them, '
      '`make test` skips them')


def pytest_collection_modifyitems(config, items):
  skip = None
  if os.environ.get('TFP_VAE_DEPLOY_TESTS') != '1':
    skip = ('needs the image and a Docker daemon: run `make deploy-test` '
            '(TFP_VAE_DEPLOY_TESTS=1)')
  elif os.environ.get('TFP_VAE_DEPLOY_SKIP'):
    skip = os.environ['TFP_VAE_DEPLOY_SKIP']
  for item in items:
    if str(item.fspath).startswith(HERE + os.sep):
      item.add_marker(pytest.mark.deploy)
      if skip:
        item.add_marker(pytest.mark.skip(reason=skip))


def docker(*args: str, timeout: float = 600,
           check: bool = True) -> subprocess.CompletedProcess:
  r = subprocess.run(['docker', *args], capture_output=True, text=True,
                     timeout=timeout, stdin=subprocess.DEVNULL)
  if check:
    assert r.returncode == 0, f'docker {" ".join(args)}:\n{r.stderr[-3000:]}'
  return r


@pytest.fixture(scope='session')
def run_docker():
  """The docker CLI, for the containers the tests start themselves."""
  return docker


@pytest.fixture(scope='session')
def image():
  return os.environ.get('TFP_VAE_DEPLOY_IMAGE', 'tfp-vae:deploy-test')


@pytest.fixture(scope='session')
def tag_as(image):
  """tag_as(name): the local image under `name` until the session ends."""
  added = []

  def tag(name):
    if name != image and name not in added:
      if docker('image', 'inspect', name, check=False).returncode == 0:
        pytest.fail(f'{name} exists here already: it would be used instead '
                    f'of {image}')
      docker('tag', image, name)
      added.append(name)
    return name

  yield tag
  for name in added:
    docker('rmi', name, check=False)


@pytest.fixture
def runs_dir(tmp_path):
  """A host folder bound where the manifests mount the PVC (/runs), writable
  by the image's uid 1000."""
  path = tmp_path / 'runs'
  path.mkdir()
  os.chmod(path, 0o777)
  return path
