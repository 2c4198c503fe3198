"""Validates every Kubernetes manifest in deploy/, strictly.

  python deploy/validate.py            # all of deploy/; exit 1 on problems
  python deploy/validate.py FILE ...   # the given files (cross-file rules
                                       # still see all of deploy/)

Checks, each problem reported as `file: field: message`:

1. Custom resources (TFJob, TrainJob, ClusterTrainingRuntime) against their
   CRD's openAPIV3Schema (deploy/schemas/, copied from training-operator
   v1.9 and Kubeflow Trainer) made strict: every object schema that lists
   its properties rejects unknown keys, so a misspelled optional key fails
   instead of being silently dropped by the API server.
2. Every object against the Python models of its API from PyPI, walked
   strictly (unknown keys and wrong shapes are errors; required fields are
   checked by the models' own deserialisation): `kubernetes` for core and
   apps objects and every embedded PodSpec, `kubeflow-training` for TFJob,
   `kubeflow-trainer-api` for TrainJob and ClusterTrainingRuntime, `kserve`
   for InferenceService.
3. What the admission webhooks enforce: DNS-1035 names; in a TFJob, only
   Chief/Worker/PS/Evaluator replicas (no Master: TensorFlow 2.21's
   MultiWorkerMirroredStrategy rejects it), at most one Chief, a container
   named `tensorflow` in every replica; in a Trainer v2 runtime, the
   `node` replicated job with a container `node` that Trainer overrides.
4. Cross-file consistency: one image repository everywhere, the TrainJob
   and the TFJob train the same thing, every volume is the PVC that
   pvc.yaml declares, the export path the trainers write is the one TF
   Serving, KServe and tfp-vae-serve read, tfp-vae-serve's probes and
   container port are its --rest_api_port and ask for the model it serves,
   TFP_VAE_NUM_WORKERS equals numNodes, the TrainJob's runtime exists, and
   the deployment docs (docs/kubeflow.md) name the image, the claim and
   every manifest.
5. A container's `--dataset=PATH` is on a volume it mounts or a bucket
   path (`check_dataset_paths`).
"""

import copy
import functools
import os
import re
import sys
from typing import Any, Iterable, NamedTuple, Optional

import jsonschema
import yaml

import kubernetes_internals  # beside this script, in deploy/

DEPLOY = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(DEPLOY)
SCHEMAS = os.path.join(DEPLOY, 'schemas')
# The page that says how to deploy: it names the image, the claim and every
# manifest (`_check_docs`).
DOCS_PAGE = os.path.join('docs', 'kubeflow.md')
CRDS = {
    ('kubeflow.org/v1', 'TFJob'): 'kubeflow.org_tfjobs.yaml',
    ('trainer.kubeflow.org/v1alpha1', 'TrainJob'):
        'trainer.kubeflow.org_trainjobs.yaml',
    ('trainer.kubeflow.org/v1alpha1', 'ClusterTrainingRuntime'):
        'trainer.kubeflow.org_clustertrainingruntimes.yaml',
}
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
TFJOB_REPLICA_TYPES = ('Chief', 'Worker', 'PS', 'Evaluator')
TFJOB_RESTART_POLICIES = ('Always', 'OnFailure', 'Never', 'ExitCode')
# The model server's console script (setup.cfg) and its --rest_api_port.
SERVE_COMMAND = 'tfp-vae-serve'
SERVE_DEFAULT_PORT = 8501
DNS_1035 = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')
IGNORED_DIRS = ('schemas',)


class Problem(NamedTuple):
  file: str
  field: str
  message: str

  def __str__(self):
    return f'{self.file}: {self.field}: {self.message}'


class Document(NamedTuple):
  file: str  # relative to the repository
  body: dict

  @property
  def key(self):
    return (self.body.get('apiVersion'), self.body.get('kind'))


def _field(path: Iterable[Any]) -> str:
  out = ''
  for part in path:
    out += f'[{part}]' if isinstance(part, int) else (
        f'.{part}' if out else str(part))
  return out or '(document)'


# -- 1. CRD schemas ---------------------------------------------------------


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


def check_crd(doc: Document) -> list[Problem]:
  if doc.key not in CRDS:
    return []
  problems = []
  for error in crd_validator(*doc.key).iter_errors(doc.body):
    path = list(error.absolute_path)
    if error.validator == 'additionalProperties':
      allowed = set(error.schema.get('properties', {}))
      for extra in sorted(set(error.instance) - allowed):
        problems.append(Problem(doc.file, _field(path + [extra]),
                                f'unknown key {extra!r} (allowed: '
                                f'{", ".join(sorted(allowed))})'))
    else:
      problems.append(Problem(doc.file, _field(path), error.message))
  return problems


# -- 2. Python models -------------------------------------------------------


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
      problems.append(Problem(file, _field(path), f'must be a list, got '
                              f'{type(data).__name__}'))
      return
    for i, item in enumerate(data):
      _walk(item, list_match.group(1), path + [i], problems, file)
  elif dict_match:
    if not isinstance(data, dict):
      problems.append(Problem(file, _field(path), f'must be a mapping, got '
                              f'{type(data).__name__}'))
      return
    for key, value in data.items():
      _walk(value, dict_match.group(2), path + [key], problems, file)
  elif type_name in _SCALARS:
    if isinstance(data, (dict, list)):
      problems.append(Problem(file, _field(path), f'must be a {type_name}, '
                              f'got {type(data).__name__}'))
    elif type_name == 'bool' and not isinstance(data, bool):
      problems.append(Problem(file, _field(path), f'must be true or false, '
                              f'got {data!r}'))
  elif type_name == 'object':
    return
  else:
    cls = _model_class(type_name)
    if cls is None:
      problems.append(Problem(file, _field(path),
                              f'no model class {type_name} to check against'))
      return
    if not isinstance(data, dict):
      problems.append(Problem(file, _field(path), f'must be a mapping '
                              f'({type_name}), got {type(data).__name__}'))
      return
    by_key = {key: attr for attr, key in cls.attribute_map.items()}
    for key, value in data.items():
      if key not in by_key:
        problems.append(Problem(
            file, _field(path + [key]), f'unknown key {key!r} in {type_name} '
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


def check_model(doc: Document) -> list[Problem]:
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
      return [Problem(doc.file, _field(err['loc']), err['msg'])
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


# -- 3. admission rules ----------------------------------------------------


def check_rules(doc: Document) -> list[Problem]:
  problems = []
  name = (doc.body.get('metadata') or {}).get('name', '')
  if not isinstance(name, str) or not DNS_1035.match(name) or len(name) > 63:
    problems.append(Problem(doc.file, 'metadata.name', f'{name!r} is not a '
                            f'DNS-1035 label (lower case letters, digits and '
                            f"'-', starting with a letter, at most 63)"))
  kind = doc.key[1]
  spec = doc.body.get('spec') or {}
  if kind == 'TFJob':
    replicas = spec.get('tfReplicaSpecs') or {}
    for rtype, rspec in replicas.items():
      where = f'spec.tfReplicaSpecs.{rtype}'
      if rtype not in TFJOB_REPLICA_TYPES:
        hint = (': TensorFlow 2.21 rejects the TF1 task type master; use '
                'Worker replicas, or one Chief plus Workers'
                if rtype.lower() == 'master' else '')
        problems.append(Problem(doc.file, where, f'replica type {rtype!r} '
                                f'is not one of '
                                f'{", ".join(TFJOB_REPLICA_TYPES)}{hint}'))
      policy = (rspec or {}).get('restartPolicy')
      if policy is not None and policy not in TFJOB_RESTART_POLICIES:
        problems.append(Problem(doc.file, f'{where}.restartPolicy',
                                f'{policy!r} is not one of '
                                f'{", ".join(TFJOB_RESTART_POLICIES)}'))
      containers = ((((rspec or {}).get('template') or {}).get('spec') or {})
                    .get('containers') or [])
      if not any(c.get('name') == 'tensorflow' for c in containers
                 if isinstance(c, dict)):
        problems.append(Problem(doc.file, f'{where}.template.spec.containers',
                                "no container named 'tensorflow' (the "
                                'operator injects TF_CONFIG and the port '
                                'into that one)'))
    chief = replicas.get('Chief') or {}
    if chief and chief.get('replicas', 1) != 1:
      problems.append(Problem(doc.file, 'spec.tfReplicaSpecs.Chief.replicas',
                              f'must be 1, got {chief.get("replicas")}'))
  if kind == 'ClusterTrainingRuntime':
    jobs = ((spec.get('template') or {}).get('spec') or {}).get(
        'replicatedJobs') or []
    node = [j for j in jobs if j.get('name') == 'node']
    if not node:
      problems.append(Problem(doc.file, 'spec.template.spec.replicatedJobs',
                              "no replicated job named 'node' (Trainer "
                              'applies the TrainJob\'s trainer settings to '
                              'it)'))
    else:
      pod = (((node[0].get('template') or {}).get('spec') or {}).get(
          'template') or {}).get('spec') or {}
      if not any(c.get('name') == 'node' for c in pod.get('containers', [])):
        problems.append(Problem(
            doc.file, 'spec.template.spec.replicatedJobs[node].template.spec'
            '.template.spec.containers', "no container named 'node'"))
  return problems


# -- 4. cross-file consistency -----------------------------------------------


def _mappings(node: Any, path: Optional[list] = None):
  """Yields (path, mapping) for every mapping in a document, depth first."""
  path = path or []
  if isinstance(node, dict):
    yield path, node
    for key, value in node.items():
      yield from _mappings(value, path + [key])
  elif isinstance(node, list):
    for i, value in enumerate(node):
      yield from _mappings(value, path + [i])


def _containers(doc: Document) -> list[tuple[str, dict]]:
  """(field path, container) of every container a document runs."""
  return [(_field(path + [key, i]), c)
          for path, node in _mappings(doc.body)
          for key in ('containers', 'initContainers')
          if isinstance(node.get(key), list)
          for i, c in enumerate(node[key]) if isinstance(c, dict)]


def _claims(doc: Document) -> list[tuple[str, str]]:
  """(field path, claimName) of every PVC volume source."""
  return [(_field(path + ['persistentVolumeClaim', 'claimName']),
           node['persistentVolumeClaim']['claimName'])
          for path, node in _mappings(doc.body)
          if isinstance(node.get('persistentVolumeClaim'), dict) and
          'claimName' in node['persistentVolumeClaim']]


def _flags(args: list) -> dict:
  return dict(a[2:].split('=', 1) for a in args or []
              if isinstance(a, str) and a.startswith('--') and '=' in a)


def _one(docs, kind) -> Optional[Document]:
  found = [d for d in docs if d.key[1] == kind]
  return found[0] if found else None


class _Training(NamedTuple):
  """What the TFJob trains with, that the other manifests must agree with."""
  main: dict        # its tensorflow container
  repository: str   # image without the tag
  claim: str        # the PVC's name
  export: str       # the export folder's path inside the volume


def _training(docs: list[Document]) -> Optional[_Training]:
  tfjob, pvc = _one(docs, 'TFJob'), _one(docs, 'PersistentVolumeClaim')
  try:
    replicas = tfjob.body['spec']['tfReplicaSpecs']
    worker = replicas.get('Worker') or next(iter(replicas.values()))
    containers = worker['template']['spec']['containers']
    main = next((c for c in containers if c.get('name') == 'tensorflow'),
                containers[0])
  except (KeyError, TypeError, AttributeError, IndexError, StopIteration):
    return None  # the TFJob's own checks report what is missing
  mount = next((m['mountPath'] for m in main.get('volumeMounts', [])), '')
  return _Training(main, main.get('image', '').rsplit(':', 1)[0],
                   pvc.body['metadata']['name'],
                   _volume_path(_flags(main.get('args')).get('export_dir',
                                                             ''), mount))


def _check_images_and_claims(doc: Document, t: _Training) -> list[Problem]:
  """One image repository and one volume claim everywhere."""
  problems = []
  for path, c in _containers(doc):
    c_image = c.get('image', '')
    ours = c_image.split(':')[0].endswith('/tfp-vae') or c_image.startswith(
        'tfp-vae')
    if ours and c_image.rsplit(':', 1)[0] != t.repository:
      problems.append(Problem(doc.file, f'{path}.image', f'{c_image!r} is '
                              f'not the TFJob\'s image repository '
                              f'{t.repository!r}'))
  for path, name in _claims(doc):
    if name != t.claim:
      problems.append(Problem(doc.file, path, f'claim {name!r} is not the '
                              f'PVC {t.claim!r} of deploy/kubeflow/pvc.yaml'))
  return problems


BUCKET_SCHEMES = ('gs://', 's3://', 'hdfs://')


def check_dataset_paths(doc: Document) -> list[Problem]:
  """A container's `--dataset=PATH` (a user's data) lies on a volume the
  container mounts (a PVC path) or in a bucket tf.io.gfile reads: a path
  anywhere else is not there when the pod starts."""
  problems = []
  for path, c in _containers(doc):
    dataset = _flags(c.get('args')).get('dataset', '')
    if '/' not in dataset:
      continue  # a dataset name
    mounts = [m.get('mountPath', '') for m in c.get('volumeMounts', [])]
    if '://' in dataset:
      scheme = dataset.split('://', 1)[0] + '://'
      if scheme not in BUCKET_SCHEMES or not dataset[len(scheme):].strip(
          '/').count('/'):
        problems.append(Problem(doc.file, f'{path}.args', f'--dataset='
                                f'{dataset} is not a bucket path '
                                f'({", ".join(BUCKET_SCHEMES)}BUCKET/PATH)'))
    elif not any(dataset.startswith(m.rstrip('/') + '/') for m in mounts
                 if m):
      problems.append(Problem(
          doc.file, f'{path}.args', f'--dataset={dataset} is on no volume '
          f'the container mounts ({", ".join(mounts) or "none"}): put the '
          f'data on the PVC and give its path under a mountPath, or a '
          f'bucket glob'))
  return problems


def _check_served_paths(doc: Document, t: _Training) -> list[Problem]:
  """KServe, TF Serving and tfp-vae-serve read where the TFJob exports."""
  problems = []
  if doc.key[1] == 'InferenceService' and 'model' in (
      doc.body['spec']['predictor']):
    uri = doc.body['spec']['predictor']['model'].get('storageUri', '')
    if uri != f'pvc://{t.claim}/{t.export}':
      problems.append(Problem(doc.file, 'spec.predictor.model.storageUri',
                              f'{uri!r} is not where the TFJob exports: '
                              f'pvc://{t.claim}/{t.export}'))
  for path, c in _containers(doc):
    c_flags = _flags(c.get('args'))
    if c_flags.get('model_config_file'):  # TF Serving
      served = _served_volume_path(c_flags['model_config_file'], c, doc)
      if served != f'{t.export}/models.config':
        problems.append(Problem(doc.file, f'{path}.args', f'serves '
                                f'{served!r} of the volume, but the TFJob '
                                f'exports to {t.export!r}'))
    if c.get('command') == [SERVE_COMMAND]:
      problems += _check_model_server(doc, path, c, c_flags, t.export)
  return problems


def _check_trainjob(docs: list[Document], t: _Training) -> list[Problem]:
  """The TrainJob trains what the TFJob does, on as many workers as it
  says, with a runtime that exists."""
  trainjob = _one(docs, 'TrainJob')
  if trainjob is None:
    return []
  problems = []
  trainer = trainjob.body['spec'].get('trainer', {})
  if trainer.get('args') != t.main.get('args'):
    problems.append(Problem(trainjob.file, 'spec.trainer.args',
                            f'{trainer.get("args")} differ from the TFJob '
                            f'args {t.main.get("args")}'))
  env = {e.get('name'): e.get('value') for e in trainer.get('env', [])}
  nodes = trainer.get('numNodes')
  if str(nodes) != str(env.get('TFP_VAE_NUM_WORKERS')):
    problems.append(Problem(trainjob.file, 'spec.trainer.env',
                            f'TFP_VAE_NUM_WORKERS='
                            f'{env.get("TFP_VAE_NUM_WORKERS")!r} must equal '
                            f'numNodes={nodes}'))
  ref = trainjob.body['spec'].get('runtimeRef', {})
  if not [d for d in docs if d.key[1] == ref.get('kind') and
          d.body['metadata']['name'] == ref.get('name')]:
    problems.append(Problem(trainjob.file, 'spec.runtimeRef',
                            f'no {ref.get("kind")} named '
                            f'{ref.get("name")!r} in deploy/'))
  return problems


def _check_docs(docs: list[Document], t: _Training, text: str,
                page: str) -> list[Problem]:
  """The deployment page names the image, the claim and how to apply every
  manifest."""
  problems = []
  for needle, what in ((t.repository, 'image repository'),
                       (t.claim, 'volume claim')):
    if needle not in text:
      problems.append(Problem(page, '(text)', f'does not name the {what} '
                              f'{needle!r}'))
  for doc in sorted({d.file for d in docs if d.file.startswith('deploy/')}):
    if doc not in text:
      problems.append(Problem(page, '(text)', f'does not say how to apply '
                              f'{doc}'))
  return problems


def check_consistency(docs: list[Document], page_text: str,
                      page: str = DOCS_PAGE) -> list[Problem]:
  """The cross-file rules (module doc, 4), and that `page_text` (the
  deployment docs) names what it must."""
  if _one(docs, 'TFJob') is None or _one(
      docs, 'PersistentVolumeClaim') is None:
    return [Problem('deploy/', '(files)', 'expected a TFJob and a '
                    'PersistentVolumeClaim among the manifests')]
  t = _training(docs)
  if t is None:
    return []
  problems = []
  for doc in docs:
    problems += _check_images_and_claims(doc, t) + _check_served_paths(doc,
                                                                      t)
  return (problems + _check_trainjob(docs, t) +
          _check_docs(docs, t, page_text, page))


def _check_model_server(doc: Document, path: str, container: dict,
                        flags: dict, want: str) -> list[Problem]:
  """tfp-vae-serve serves the TFJob's export folder, and its probes and
  port are the ones it listens on, for the model name it serves."""
  problems = []
  export_dir = flags.get('export_dir')
  served = (_served_volume_path(export_dir, container, doc)
            if export_dir else None)
  if served != want:
    problems.append(Problem(doc.file, f'{path}.args', f'--export_dir serves '
                            f'{served!r} of the volume, but the TFJob '
                            f'exports to {want!r}'))
  name = flags.get('model_name') or os.path.basename(
      (export_dir or '').rstrip('/'))
  port = flags.get('rest_api_port', str(SERVE_DEFAULT_PORT))
  ports = [str(p.get('containerPort')) for p in container.get('ports') or []]
  if ports and port not in ports:
    problems.append(Problem(doc.file, f'{path}.ports', f'containerPort '
                            f'{ports} is not --rest_api_port={port}'))
  for probe in ('readinessProbe', 'livenessProbe'):
    get = (container.get(probe) or {}).get('httpGet') or {}
    if not get:
      continue
    if str(get.get('port')) != port:
      problems.append(Problem(doc.file, f'{path}.{probe}.httpGet.port',
                              f'{get.get("port")!r} is not '
                              f'--rest_api_port={port}'))
    match = re.search(r'/models/([^/:]+)', get.get('path', ''))
    if match and match.group(1) != name:
      problems.append(Problem(doc.file, f'{path}.{probe}.httpGet.path',
                              f'{get.get("path")!r} asks for model '
                              f'{match.group(1)!r}, but the server serves '
                              f'{name!r}'))
  return problems


def _volume_path(path: str, mount: str) -> str:
  """/runs/export/vae with the volume at /runs -> export/vae."""
  return os.path.relpath(path, mount) if path.startswith(mount) else path


def _served_volume_path(path: str, container: dict, doc: Document) -> str:
  for m in container.get('volumeMounts', []):
    if path.startswith(m['mountPath'].rstrip('/') + '/'):
      rest = os.path.relpath(path, m['mountPath'])
      return f"{m['subPath']}/{rest}" if m.get('subPath') else rest
  return path


# -- driver ---------------------------------------------------------------


def manifest_files(root: str = DEPLOY) -> list[str]:
  """Every Kubernetes manifest under deploy/ (not the CRD schemas, not the
  compiled pipelines, which are KFP PipelineSpecs checked by KFP's own
  protos: tests/test_deploy.py)."""
  out = []
  for dirpath, dirnames, filenames in os.walk(root):
    dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_DIRS)
    for name in sorted(filenames):
      if name.endswith(('.yaml', '.yml')) and not name.endswith(
          'pipeline.yaml'):
        out.append(os.path.join(dirpath, name))
  return out


def _display(path: str) -> str:
  path = os.path.abspath(path)
  inside = path.startswith(REPO + os.sep)
  return os.path.relpath(path, REPO) if inside else path


def load(path: str) -> tuple[list[Document], list[Problem]]:
  rel = _display(path)
  try:
    with open(path) as f:
      bodies = [b for b in yaml.safe_load_all(f) if b is not None]
  except (OSError, yaml.YAMLError) as e:
    return [], [Problem(rel, '(file)', f'cannot be read as YAML: {e}')]
  docs, problems = [], []
  for i, body in enumerate(bodies):
    if not isinstance(body, dict) or 'kind' not in body or (
        'apiVersion' not in body):
      problems.append(Problem(rel, f'(document {i})', 'not a Kubernetes '
                              'object (needs apiVersion and kind)'))
    else:
      docs.append(Document(rel, body))
  return docs, problems


def validate(paths: Optional[list[str]] = None,
             docs_path: str = os.path.join(REPO, DOCS_PAGE)
             ) -> list[Problem]:
  """All problems of `paths` (default: every manifest in deploy/).

  Cross-file rules always see every manifest in deploy/, with `paths`
  taking the place of the deploy/ file of the same name if given.
  """
  everything = manifest_files()
  chosen = [os.path.abspath(p) for p in paths] if paths else everything
  by_name = {os.path.basename(p): p for p in chosen}
  context = [by_name.pop(os.path.basename(p), p) for p in everything]
  context += list(by_name.values())
  problems = []
  docs = []
  for path in context:
    loaded, load_problems = load(path)
    docs += loaded
    if path in chosen:
      problems += load_problems
      for doc in loaded:
        problems += (check_crd(doc) + check_model(doc) + check_rules(doc) +
                     check_dataset_paths(doc))
  with open(docs_path) as f:
    page_text = f.read()
  problems += check_consistency(docs, page_text,
                                os.path.relpath(docs_path, REPO))
  return problems


def main(argv: list[str]) -> int:
  if any(a in ('-h', '--help') for a in argv[1:]):
    print('usage: validate.py [MANIFEST.yaml ...]\n\n' + __doc__.strip())
    return 0
  unknown = [a for a in argv[1:] if a.startswith('-')]
  if unknown:
    print(f'error: unknown option {unknown[0]} (see validate.py --help)',
          file=sys.stderr)
    return 2
  problems = validate(argv[1:] or None)
  for problem in problems:
    print(problem)
  files = argv[1:] or manifest_files()
  if problems:
    print(f'{len(problems)} problem(s) in {len(files)} file(s)',
          file=sys.stderr)
    return 1
  print(f'OK: {len(files)} manifest file(s) valid')
  return 0


if __name__ == '__main__':
  sys.exit(main(sys.argv))
