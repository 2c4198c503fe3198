"""Check 5: a container's `--dataset=PATH` is on a volume it mounts or a
bucket path."""

from .documents import Document, Problem, arg_flags, containers

BUCKET_SCHEMES = ('gs://', 's3://', 'hdfs://')


def check(doc: Document) -> list[Problem]:
  """A container's `--dataset=PATH` (a user's data) lies on a volume the
  container mounts (a PVC path) or in a bucket tf.io.gfile reads: a path
  anywhere else is not there when the pod starts."""
  problems = []
  for path, c in containers(doc):
    dataset = arg_flags(c.get('args')).get('dataset', '')
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
