"""Check 1: custom resources against their CRD's schema, made strict."""

import copy
import functools
import os

import jsonschema
import yaml

from .documents import DEPLOY, Document, Problem, field

SCHEMAS = os.path.join(DEPLOY, 'schemas')
CRDS = {
    ('kubeflow.org/v1', 'TFJob'): 'kubeflow.org_tfjobs.yaml',
    ('trainer.kubeflow.org/v1alpha1', 'TrainJob'):
        'trainer.kubeflow.org_trainjobs.yaml',
    ('trainer.kubeflow.org/v1alpha1', 'ClusterTrainingRuntime'):
        'trainer.kubeflow.org_clustertrainingruntimes.yaml',
}


def make_strict(schema: dict) -> dict:
  """A copy of an OpenAPI v3 schema where objects reject unknown keys."""
  schema = copy.deepcopy(schema)

  def visit(node):
    if isinstance(node, dict):
      if (node.get('type') == 'object' and 'properties' in node and
          'additionalProperties' not in node and
          not node.get('x-kubernetes-preserve-unknown-fields')):
        node['additionalProperties'] = False
      for value in node.values():
        visit(value)
    elif isinstance(node, list):
      for value in node:
        visit(value)

  visit(schema)
  return schema


@functools.lru_cache(maxsize=None)
def crd_validator(api_version: str, kind: str) -> jsonschema.Draft7Validator:
  with open(os.path.join(SCHEMAS, CRDS[(api_version, kind)])) as f:
    crd = yaml.safe_load(f)
  version = api_version.split('/')[-1]
  for v in crd['spec']['versions']:
    if v['name'] == version:
      return jsonschema.Draft7Validator(
          make_strict(v['schema']['openAPIV3Schema']))
  raise KeyError(f'{CRDS[(api_version, kind)]} has no version {version}')


def check(doc: Document) -> list[Problem]:
  if doc.key not in CRDS:
    return []
  problems = []
  for error in crd_validator(*doc.key).iter_errors(doc.body):
    path = list(error.absolute_path)
    if error.validator == 'additionalProperties':
      allowed = set(error.schema.get('properties', {}))
      for extra in sorted(set(error.instance) - allowed):
        problems.append(Problem(doc.file, field(path + [extra]),
                                f'unknown key {extra!r} (allowed: '
                                f'{", ".join(sorted(allowed))})'))
    else:
      problems.append(Problem(doc.file, field(path), error.message))
  return problems
