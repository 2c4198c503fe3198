"""deploy/kubernetes_internals.py: the one use of the Kubernetes client's
internals, exercised against the installed version, so that an upgrade that
moves or changes it fails here, by name."""

import os
import sys

from tests.helpers import REPO

sys.path.insert(0, os.path.join(REPO, 'deploy'))
import kubernetes_internals  # pylint: disable=g-import-not-at-top,wrong-import-position


def test_the_kubernetes_client_builds_and_refuses_its_models_from_dicts():
  from kubernetes import client  # pylint: disable=g-import-not-at-top
  api = client.ApiClient()
  job = kubernetes_internals.deserialize(
      api, {'metadata': {'name': 'x'}, 'spec': {'template': {}}}, 'V1Job')
  assert isinstance(job, client.V1Job) and job.metadata.name == 'x'
  try:
    kubernetes_internals.deserialize(api, {'spec': {}}, 'V1Job')
  except (ValueError, TypeError) as e:
    assert 'template' in str(e)
  else:
    raise AssertionError('a JobSpec without its template was accepted')
