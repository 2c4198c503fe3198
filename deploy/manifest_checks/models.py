"""Check 2: every object against the Python models of its API, walked
strictly."""

import re
from typing import Any

import kubernetes_internals  # in deploy/, on the path beside validate.py

from .documents import Document, Problem, field

# (apiVersion, kind) -> (python module, model class name).
MODELS = {
    ('v1', 'PersistentVolumeClaim'): ('kubernetes.client', 
                                      'V1PersistentVolumeClaim'),
    ('v1', 'Service'): ('kubernetes.client', 'V1Service'),
    ('v1', 'ConfigMap'): ('kubernetes.client', 'V1ConfigMap'),
    ('apps/v1', 'Deployment'): ('kubernetes.client', 'V1Deployment'),
    ('kubeflow.org/v1', 'TFJob'): ('kubeflow.training.models',
                                   'KubeflowOrgV1TFJob'),
    ('serving.kserve.io/v1beta1', 'InferenceService'): (
        'kserve.models', 'V1beta1InferenceService'),
    ('trainer.kubeflow.org/v1alpha1', 'TrainJob'): (
        'kubeflow_trainer_api.models', 'TrainerV1alpha1TrainJob'),
    ('trainer.kubeflow.org/v1alpha1', 'ClusterTrainingRuntime'): (
        'kubeflow_trainer_api.models', 'TrainerV1alpha1ClusterTrainingRuntime'),
}


def _model_class(name: str):
  import importlib  # pylint: disable=g-import-not-at-top
  for module in ('kubernetes.client', 'kubeflow.training.models',
                 'kserve.models'):
    cls = getattr(importlib.import_module(module), name, None)
    if cls is not None and hasattr(cls, 'openapi_types'):
      return cls
  return None


_SCALARS = {'str': str, 'int': int, 'bool': bool, 'float': (int, float),
            'datetime': str, 'date': str}


def _walk(data: Any, type_name: str, path: list, problems: list,
          file: str) -> None:
  """Strict structural check of `data` against an OpenAPI-generated model."""
  if data is None:
    return
  list_match = re.fullmatch(r'list\[(.+)\]', type_name)
  dict_match = re.fullmatch(r'dict\((\w+), (.+)\)', type_name)
  if list_match:
    if not isinstance(data, list):
      problems.append(Problem(file, field(path), f'must be a list, got '
                              f'{type(data).__name__}'))
      return
    for i, item in enumerate(data):
      _walk(item, list_match.group(1), path + [i], problems, file)
  elif dict_match:
    if not isinstance(data, dict):
      problems.append(Problem(file, field(path), f'must be a mapping, got '
                              f'{type(data).__name__}'))
      return
    for key, value in data.items():
      _walk(value, dict_match.group(2), path + [key], problems, file)
  elif type_name in _SCALARS:
    if isinstance(data, (dict, list)):
      problems.append(Problem(file, field(path), f'must be a {type_name}, '
                              f'got {type(data).__name__}'))
    elif type_name == 'bool' and not isinstance(data, bool):
      problems.append(Problem(file, field(path), f'must be true or false, '
                              f'got {data!r}'))
  elif type_name == 'object':
    return
  else:
    cls = _model_class(type_name)
    if cls is None:
      problems.append(Problem(file, field(path),
                              f'no model class {type_name} to check against'))
      return
    if not isinstance(data, dict):
      problems.append(Problem(file, field(path), f'must be a mapping '
                              f'({type_name}), got {type(data).__name__}'))
      return
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    for key, value in data.items():
      if key not in by_key:
        problems.append(Problem(
            file, field(path + [key]), f'unknown key {key!r} in {type_name} '
            f'(allowed: {", ".join(sorted(by_key))})'))
        continue
      _walk(value, cls.openapi_types[by_key[key]], path + [key], problems,
            file)


def _required_fields(data: dict, module: str, name: str, file: str
                     ) -> list[Problem]:
  """Deserialises with the package's own ApiClient: required fields."""
  if module == 'kubernetes.client':
    from kubernetes import client  # pylint: disable=g-import-not-at-top
    api = client.ApiClient()
  elif module == 'kubeflow.training.models':
    from kubeflow.training import api_client  # pylint: disable=g-import-not-at-top
    api = api_client.ApiClient()
  else:
    return []
  try:
    kubernetes_internals.deserialize(api, data, name)
  except (ValueError, TypeError) as e:
    return [Problem(file, '(model)', f'{name}: {e}')]
  return []


def check(doc: Document) -> list[Problem]:
  if doc.key not in MODELS:
    return [Problem(doc.file, 'kind', f'no validator for apiVersion '
                    f'{doc.key[0]!r} kind {doc.key[1]!r}')]
  module, name = MODELS[doc.key]
  if module == 'kubeflow_trainer_api.models':
    import importlib  # pylint: disable=g-import-not-at-top
    import pydantic  # pylint: disable=g-import-not-at-top
    cls = getattr(importlib.import_module(module), name)
    try:
      cls.from_dict(doc.body)
    except pydantic.ValidationError as e:
      return [Problem(doc.file, field(err['loc']), err['msg'])
              for err in e.errors()]
    # The embedded pod templates are plain Kubernetes: walk them strictly.
    problems = []
    for path, pod in _pod_specs(doc):
      _walk(pod, 'V1PodSpec', path, problems, doc.file)
    return problems
  problems = []
  _walk(doc.body, name, [], problems, doc.file)
  if not problems:
    problems += _required_fields(doc.body, module, name, doc.file)
  return problems


def _pod_specs(doc: Document) -> list[tuple[list, dict]]:
  """(path, PodSpec) of every pod template in a Trainer v2 object."""
  out = []
  spec = doc.body.get('spec') or {}
  if doc.key[1] == 'ClusterTrainingRuntime':
    jobs = (((spec.get('template') or {}).get('spec') or {})
            .get('replicatedJobs') or [])
    for i, job in enumerate(jobs):
      pod = (((job.get('template') or {}).get('spec') or {})
             .get('template') or {}).get('spec')
      if isinstance(pod, dict):
        out.append((['spec', 'template', 'spec', 'replicatedJobs', i,
                     'template', 'spec', 'template', 'spec'], pod))
  return out
