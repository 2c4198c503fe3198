"""Check 4: the manifests agree with each other and with the deployment
docs."""

import os
import re
from typing import NamedTuple, Optional

from .documents import (Document, Problem, arg_flags, containers, field,
                        mappings)

# The page that says how to deploy: it names the image, the claim and every
# manifest (`_check_docs`).
DOCS_PAGE = os.path.join('docs', 'kubeflow.md')
# The model server's console script (setup.cfg) and its --rest_api_port.
SERVE_COMMAND = 'tfp-vae-serve'
SERVE_DEFAULT_PORT = 8501


def _claims(doc: Document) -> list[tuple[str, str]]:
  """(field path, claimName) of every PVC volume source."""
  return [(field(path + ['persistentVolumeClaim', 'claimName']),
           node['persistentVolumeClaim']['claimName'])
          for path, node in mappings(doc.body)
          if isinstance(node.get('persistentVolumeClaim'), dict) and
          'claimName' in node['persistentVolumeClaim']]


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
                   _volume_path(arg_flags(main.get('args')).get('export_dir',
                                                             ''), mount))


def _check_images_and_claims(doc: Document, t: _Training) -> list[Problem]:
  """One image repository and one volume claim everywhere."""
  problems = []
  for path, c in containers(doc):
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
  for path, c in containers(doc):
    c_flags = arg_flags(c.get('args'))
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


def check(docs: list[Document], page_text: str,
                      page: str = DOCS_PAGE) -> list[Problem]:
  """The cross-file rules (deploy/validate.py's check 4), and that
  `page_text` (the deployment docs) names what it must."""
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
