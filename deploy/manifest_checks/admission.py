"""Check 3: what the admission webhooks enforce."""

import re

from .documents import Document, Problem

TFJOB_REPLICA_TYPES = ('Chief', 'Worker', 'PS', 'Evaluator')
TFJOB_RESTART_POLICIES = ('Always', 'OnFailure', 'Never', 'ExitCode')
DNS_1035 = re.compile(r'^[a-z]([-a-z0-9]*[a-z0-9])?$')


def check(doc: Document) -> list[Problem]:
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
