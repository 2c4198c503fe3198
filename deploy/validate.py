"""Validates every Kubernetes manifest in deploy/, strictly.

  python deploy/validate.py            # all of deploy/; exit 1 on problems
  python deploy/validate.py FILE ...   # the given files (cross-file rules
                                       # still see all of deploy/)

Checks, each problem reported as `file: field: message`, one module each
in deploy/manifest_checks/ (crds, models, admission, consistency,
datasets):

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
   path.
"""

import os
import sys
from typing import Optional

import yaml

# The checks, beside this script in deploy/.
from manifest_checks import admission, consistency, crds, datasets, models
from manifest_checks.documents import DEPLOY, REPO, Document, Problem

IGNORED_DIRS = ('schemas',)


def manifest_files(root: str = DEPLOY) -> list[str]:
  """Every Kubernetes manifest under deploy/ (not the CRD schemas, not the
  compiled pipelines, which are KFP PipelineSpecs checked by KFP's own
  protos: tests/deploy/test_deploy.py)."""
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
             docs_path: str = os.path.join(REPO, consistency.DOCS_PAGE)
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
        problems += (crds.check(doc) + models.check(doc) +
                     admission.check(doc) + datasets.check(doc))
  with open(docs_path) as f:
    page_text = f.read()
  problems += consistency.check(docs, page_text,
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
