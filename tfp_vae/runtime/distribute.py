"""One factory for tf.distribute strategies, and the cluster bootstrap.

Strategies (`--strategy`):
  default       no distribution (one device).
  mirrored      MirroredStrategy over the local GPUs, or over `cpu_replicas`
                logical CPU devices when there is no GPU (for tests and
                laptops: the CPU is split before TensorFlow initialises).
  multi_worker  MultiWorkerMirroredStrategy; the cluster comes from TF_CONFIG.
  auto          multi_worker when TF_CONFIG names more than one task,
                mirrored when more than one GPU is visible (or cpu_replicas >
                1), else default.

TF_CONFIG comes from the environment (TFJob, kubeflow.org/v1, injects it).
Kubeflow Trainer v2 does not: it runs an Indexed Job per TrainJob (through
JobSet), so each pod knows its completion index and has a stable DNS name.
When TF_CONFIG is absent and JOB_COMPLETION_INDEX is set, `bootstrap` builds
TF_CONFIG from these variables:

  JOB_COMPLETION_INDEX   this pod's index (set by Kubernetes); worker 0 is
                         the chief.
  TFP_VAE_NUM_WORKERS    number of pods (the TrainJob's trainer.numNodes).
  JOBSET_NAME            the JobSet's (= TrainJob's) name; expose it with the
                         downward API from the pod label
                         jobset.sigs.k8s.io/jobset-name.
  TFP_VAE_WORKER_ADDRESS address template of worker {index}; default
                         '{jobset}-node-0-{index}.{jobset}:2222', JobSet's
                         pod hostname <jobset>-<replicatedJob>-<jobIndex>-
                         <podIndex> under the subdomain <jobset>.
"""

import json
import os
from typing import Mapping, Optional

import tensorflow as tf

from tfp_vae.internal import errors

STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker')
DEFAULT_WORKER_ADDRESS = '{jobset}-node-0-{index}.{jobset}:2222'
_ALLOWED_TASK_TYPES = ('chief', 'worker')
# More tasks than this is a typo, not a cluster (and building its addresses
# would take the memory of one).
MAX_WORKERS = 10000


def parse_tf_config(raw: str) -> dict:
  """Parses and checks a TF_CONFIG string for MultiWorkerMirroredStrategy.

  Raises:
    ConfigError: not JSON, no cluster, a task type other than chief/worker
      (`master` is TF1's name and breaks MultiWorkerMirroredStrategy), more
      than one chief, or a task that is not in the cluster.
  """
  try:
    tf_config = json.loads(raw)
  except ValueError as e:
    raise errors.EnvironmentConfigError('TF_CONFIG', raw,
                             f'is not valid JSON ({e})') from None
  if not isinstance(tf_config, dict) or not isinstance(
      tf_config.get('cluster'), dict) or not tf_config['cluster']:
    raise errors.EnvironmentConfigError('TF_CONFIG', raw,
                             'must be a JSON object with a "cluster" object')
  cluster = tf_config['cluster']
  if sum(len(v) if isinstance(v, list) else 1
         for v in cluster.values()) > MAX_WORKERS:
    raise errors.EnvironmentConfigError(
        'TF_CONFIG', f'{raw[:200]}...', f'names more than {MAX_WORKERS:,} '
        f'tasks')
  for task_type, addresses in cluster.items():
    if task_type not in _ALLOWED_TASK_TYPES:
      hint = (' (use "chief" or "worker": TFJob\'s Master replica type '
              'breaks MultiWorkerMirroredStrategy)'
              if task_type == 'master' else '')
      raise errors.EnvironmentConfigError(
          'TF_CONFIG', raw, f'names task type {task_type!r}; only '
          f'{list(_ALLOWED_TASK_TYPES)} are supported{hint}')
    if not isinstance(addresses, list) or not addresses:
      raise errors.EnvironmentConfigError(
          'TF_CONFIG', raw, f'has no list of addresses for {task_type!r}')
    for address in addresses:
      if not _is_address(address):
        raise errors.EnvironmentConfigError(
            'TF_CONFIG', raw, f'has address {address!r} for {task_type!r}; '
            f'addresses are "host:port" strings with a port in 1-65535')
  if len(cluster.get('chief', [])) > 1:
    raise errors.EnvironmentConfigError(
        'TF_CONFIG', raw, 'names more than one chief')
  task = tf_config.get('task', {})
  if not isinstance(task, dict):
    raise errors.EnvironmentConfigError(
        'TF_CONFIG', raw, 'must have a "task" object with "type" and "index"')
  task_type, index = task.get('type'), task.get('index')
  if not isinstance(task_type, str) or task_type not in cluster or (
      not isinstance(index, int)) or isinstance(index, bool) or not (
          0 <= index < len(cluster[task_type])):
    raise errors.EnvironmentConfigError(
        'TF_CONFIG', raw, f'has task {task!r}, which is not in its cluster')
  return tf_config


def tf_config_from_trainer_v2(env: Mapping[str, str]) -> Optional[dict]:
  """TF_CONFIG for a Kubeflow Trainer v2 pod (see module doc), or None.

  Raises:
    ConfigError: JOB_COMPLETION_INDEX is set but the other variables are
      missing or inconsistent.
  """
  if 'JOB_COMPLETION_INDEX' not in env:
    return None
  index = _integer_variable(env, 'JOB_COMPLETION_INDEX',
                            "this pod's index, set by Kubernetes")
  num = _integer_variable(env, 'TFP_VAE_NUM_WORKERS',
                          "the number of pods (the TrainJob's numNodes)")
  if not 1 <= num <= MAX_WORKERS:
    raise errors.EnvironmentConfigError(
        'TFP_VAE_NUM_WORKERS', num, f'must be in [1, {MAX_WORKERS:,}]')
  if not 0 <= index < num:
    raise errors.EnvironmentConfigError(
        'JOB_COMPLETION_INDEX', index,
        f'must be in [0, TFP_VAE_NUM_WORKERS={num})')
  template = env.get('TFP_VAE_WORKER_ADDRESS', DEFAULT_WORKER_ADDRESS)
  jobset = env.get('JOBSET_NAME', '')
  if '{jobset}' in template and not jobset:
    raise errors.EnvironmentConfigError(
        'JOBSET_NAME', jobset,
        'must name the JobSet (downward API, label '
        'jobset.sigs.k8s.io/jobset-name) for the address template '
        f'{template!r}')
  workers = [template.format(jobset=jobset, index=i) for i in range(num)]
  return {'cluster': {'worker': workers},
          'task': {'type': 'worker', 'index': index}}


def _integer_variable(env: Mapping[str, str], name: str, what: str) -> int:
  value = env.get(name, '')
  try:
    return int(value)
  except ValueError:
    raise errors.EnvironmentConfigError(
        name, value, f'must be an integer: {what}') from None


def _is_address(address) -> bool:
  if not isinstance(address, str) or ':' not in address:
    return False
  host, port = address.rsplit(':', 1)
  return bool(host) and port.isdigit() and 1 <= int(port) <= 65535


def bootstrap(env: Optional[Mapping[str, str]] = None) -> Optional[dict]:
  """The validated cluster config, setting TF_CONFIG if built here.

  Returns:
    The TF_CONFIG dict, or None when neither TF_CONFIG nor the Trainer v2
    environment is present.
  """
  env = os.environ if env is None else env
  if env.get('TF_CONFIG'):
    return parse_tf_config(env['TF_CONFIG'])
  tf_config = tf_config_from_trainer_v2(env)
  if tf_config is not None:
    os.environ['TF_CONFIG'] = json.dumps(tf_config)
  return tf_config


def num_tasks(tf_config: Optional[dict]) -> int:
  if not tf_config:
    return 1
  return sum(len(v) for v in tf_config['cluster'].values())


def split_cpu(replicas: int) -> list[str]:
  """Splits the first CPU into `replicas` logical devices; returns names.

  Raises:
    ConfigError: if TensorFlow has already initialised its devices
      differently (the split must happen before the first op).
  """
  cpu = tf.config.list_physical_devices('CPU')[0]
  current = tf.config.get_logical_device_configuration(cpu)
  if current is None or len(current) != replicas:
    try:
      tf.config.set_logical_device_configuration(
          cpu, [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError as e:
      raise errors.ConfigError(
          'cpu_replicas', replicas,
          f'cannot be applied after TensorFlow initialised ({e})') from None
  return [d.name for d in tf.config.list_logical_devices('CPU')]


def make_strategy(name: str = 'auto', cpu_replicas: int = 1,
                  env: Optional[Mapping[str, str]] = None
                  ) -> tf.distribute.Strategy:
  """Builds the strategy `name` (see module doc).

  Raises:
    ConfigError: unknown name, invalid TF_CONFIG, or a request that the
      machine cannot meet.
  """
  if name not in STRATEGIES:
    raise errors.ConfigError('strategy', name, f'must be one of {STRATEGIES}')
  if not isinstance(cpu_replicas, int) or cpu_replicas < 1:
    raise errors.ConfigError('cpu_replicas', cpu_replicas,
                             'must be a positive integer')
  tf_config = bootstrap(env)
  if name == 'auto':
    if num_tasks(tf_config) > 1:
      name = 'multi_worker'
    elif len(tf.config.list_physical_devices('GPU')) > 1 or cpu_replicas > 1:
      name = 'mirrored'
    else:
      name = 'default'
  if name == 'default':
    return tf.distribute.get_strategy()
  if name == 'multi_worker':
    return tf.distribute.MultiWorkerMirroredStrategy()
  # Listing logical devices initialises TensorFlow, after which the CPU can
  # no longer be split: look at physical devices first.
  if tf.config.list_physical_devices('GPU'):
    return tf.distribute.MirroredStrategy(
        [d.name for d in tf.config.list_logical_devices('GPU')])
  return tf.distribute.MirroredStrategy(split_cpu(cpu_replicas))


def describe(strategy: tf.distribute.Strategy) -> str:
  """The public name of the strategy (MWMS's class is named differently)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 'MultiWorkerMirroredStrategy'
  if isinstance(strategy, tf.distribute.MirroredStrategy):
    return 'MirroredStrategy'
  return 'default strategy'


def replica_setup(strategy: tf.distribute.Strategy) -> str:
  """'multi-worker', 'several replicas' (in this process) or 'one device':
  what decides the training loop (`models.LatentVariableModel`) and its
  steps per call (`hardware.decide_steps_per_execution`)."""
  if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return 'multi-worker'
  if strategy.num_replicas_in_sync > 1:
    return 'several replicas'
  return 'one device'


def task(strategy: tf.distribute.Strategy) -> tuple[Optional[str], int]:
  """(task_type, task_id) of this process; (None, 0) without a cluster."""
  resolver = getattr(strategy, 'cluster_resolver', None)
  if resolver is None or not resolver.cluster_spec().as_dict():
    return None, 0
  return resolver.task_type, int(resolver.task_id or 0)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
  """Whether this process writes the run's artifacts.

  The chief task if the cluster has one, else worker 0.
  """
  task_type, task_id = task(strategy)
  if task_type is None or task_type == 'chief':
    return True
  cluster = strategy.cluster_resolver.cluster_spec().as_dict()
  return task_type == 'worker' and task_id == 0 and 'chief' not in cluster
