"""The TFJob's and the TrainJob's pods run as containers, one `docker run`
per pod, from the manifests themselves: image, command, args, env, user and
memory limit read from the YAML, plus what Kubernetes would inject
(TF_CONFIG from the training operator; JOB_COMPLETION_INDEX and the JobSet
name for Trainer v2).  Pod DNS is replaced by 127.0.0.1 ports on the host
network (TFP_VAE_WORKER_ADDRESS for the TrainJob), the PVC by one host folder
bound at the manifests' mountPath, and a tiny budget is appended to the
manifests' flags (absl: the last one wins).  The GPU limit is not applied
(no GPU here; the CPU image is tagged with the manifests' image name).
What stays out of reach without a cluster: scheduling, the PVC, restart
policies and the operators themselves."""

import json
import os
import socket
import time

import pytest
import yaml

from tests.helpers import REPO

KUBEFLOW = os.path.join(REPO, 'deploy', 'kubeflow')
TINY = ('--epochs=1', '--batch_size=500', '--plot_every=0')
STRATEGY_LINE = 'MultiWorkerMirroredStrategy with 2 replica(s)'


def _load(*path):
  with open(os.path.join(KUBEFLOW, *path)) as f:
    return yaml.safe_load(f)


def _free_pair():
  """A port prefix P with P0 and P1 both free (worker {index} at P{index})."""
  for prefix in range(2000, 6500, 7):
    ok = True
    for index in (0, 1):
      with socket.socket() as s:
        try:
          s.bind(('127.0.0.1', int(f'{prefix}{index}')))
        except OSError:
          ok = False
    if ok:
      return str(prefix)
  raise RuntimeError('no free pair of ports')


def _memory(quantity):
  units = {'Ki': 'k', 'Mi': 'm', 'Gi': 'g', 'Ti': 't'}
  for suffix, docker_unit in units.items():
    if quantity.endswith(suffix):
      return quantity[:-2] + docker_unit
  return quantity


def _pod_args(name, pod, container, runs_dir, injected, resources=None,
              command=None, args=None, env=(), budget=TINY):
  """`docker run` arguments for one pod of `pod` (a PodSpec) running
  `container`, with the values a TrainJob overrides given separately."""
  security = pod.get('securityContext', {})
  out = ['run', '-d', '--name', name, '--network=host',
         '--user', f'{security["runAsUser"]}:{security["runAsGroup"]}']
  volumes = {v['name']: v for v in pod.get('volumes', [])}
  for mount in container.get('volumeMounts', []):
    assert 'persistentVolumeClaim' in volumes[mount['name']]
    out += ['-v', f'{runs_dir}:{mount["mountPath"]}']
  limits = (resources or container.get('resources', {})).get('limits', {})
  if 'memory' in limits:
    out += ['--memory', _memory(limits['memory'])]
  for e in [*container.get('env', []), *env]:
    value = e['value'] if 'value' in e else injected[e['name']]
    out += ['-e', f'{e["name"]}={value}']
  for key, value in injected.items():
    out += ['-e', f'{key}={value}']
  command = command or container.get('command')
  if command:
    out += ['--entrypoint', command[0]]
  out += [container['image'], *(command or [])[1:]]
  out += [*(args or container.get('args', [])), *budget]
  return out


def _run_pods(run_docker, pods):
  """Starts every pod (name, docker args), waits for all; {name: (exit
  code, logs)}.  The containers are removed afterwards."""
  try:
    for name, docker_args in pods:
      run_docker(*docker_args)
    results = {}
    for name, _ in pods:
      code = run_docker('wait', name, timeout=900).stdout.strip()
      logs = run_docker('logs', name, check=False)
      results[name] = (int(code), logs.stdout + logs.stderr)
    return results
  finally:
    for name, _ in pods:
      run_docker('rm', '-f', name, check=False)


def _check_chief_wrote(runs_dir, results, chief):
  for name, (code, logs) in results.items():
    assert code == 0, f'{name} exited {code}:\n{logs[-3000:]}'
  assert STRATEGY_LINE in results[chief][1]
  with open(runs_dir / 'vae' / 'metrics.json') as f:
    assert json.load(f)['epochs_completed'] == 1
  assert sorted(os.listdir(runs_dir / 'export' / 'vae')) == [
      '1', 'models.config']
  # Only the chief writes the shared volume: no worker's scratch is left.
  assert set(os.listdir(runs_dir)) <= {'vae', 'export', '.cache'}, (
      os.listdir(runs_dir))


def _tfjob_pods(runs_dir, tag_as, budget=TINY, attempt=0):
  """(name, docker args) of the TFJob's Worker pods, TF_CONFIG as the
  training operator injects it."""
  job = _load('tfjob.yaml')
  spec = job['spec']['tfReplicaSpecs']['Worker']
  pod = spec['template']['spec']
  container = pod['containers'][0]
  tag_as(container['image'])
  prefix = _free_pair()
  workers = [f'127.0.0.1:{prefix}{i}' for i in range(spec['replicas'])]
  pods = []
  for index in range(spec['replicas']):
    tf_config = {'cluster': {'worker': workers},
                 'task': {'type': 'worker', 'index': index},
                 'environment': 'cloud'}
    name = (f'{job["metadata"]["name"]}-worker-{index}-{os.getpid()}-'
            f'{attempt}')
    pods.append((name, _pod_args(name, pod, container, runs_dir,
                                 {'TF_CONFIG': json.dumps(tf_config)},
                                 budget=budget)))
  return pods


def test_tfjob_workers_train_and_the_chief_exports(runs_dir, tag_as,
                                                  run_docker):
  pods = _tfjob_pods(runs_dir, tag_as)
  results = _run_pods(run_docker, pods)
  _check_chief_wrote(runs_dir, results, pods[0][0])


def _log_of(run_docker, name: str) -> str:
  logs = run_docker('logs', name, check=False)
  return (logs.stdout + logs.stderr)[-2000:]


def test_tfjob_worker_killed_chief_exits_retryable_and_relaunch_resumes(
    runs_dir, tag_as, run_docker):
  """SIGKILL to worker 1 after the first checkpoint: the chief exits 143
  (what restartPolicy ExitCode retries); the pods run again resume."""
  budget = ('--epochs=6', '--batch_size=200', '--train_examples=1000',
            '--plot_every=0')
  pods = _tfjob_pods(runs_dir, tag_as, budget)
  state = runs_dir / 'vae' / 'checkpoints' / 'checkpoint'
  try:
    for _, docker_args in pods:
      run_docker(*docker_args)
    deadline = time.time() + 600
    while not state.exists():
      # A pod that stopped, or the deadline: fail now, with every pod's log.
      stopped = [name for name, _ in pods if run_docker(
          'inspect', '-f', '{{.State.Running}}', name,
          check=False).stdout.strip() != 'true']
      if stopped or time.time() > deadline:
        logs = '\n'.join(
            f'--- {name}:\n' + _log_of(run_docker, name)
            for name, _ in pods)
        raise AssertionError(
            f'no checkpoint yet; stopped pods: {stopped or "none"}, '
            f'{"past" if time.time() > deadline else "before"} the 600 s '
            f'deadline\n{logs}')
      time.sleep(0.5)
    run_docker('kill', pods[1][0])
    chief = int(run_docker('wait', pods[0][0], timeout=600).stdout)
    logs = run_docker('logs', pods[0][0], check=False)
    assert chief == 143, f'chief exited {chief}:\n{logs.stderr[-3000:]}'
    assert 'a worker stopped answering' in logs.stderr
  finally:
    for name, _ in pods:
      run_docker('rm', '-f', name, check=False)
  assert not (runs_dir / 'vae' / 'metrics.json').exists()
  pods = _tfjob_pods(runs_dir, tag_as, budget, attempt=1)
  results = _run_pods(run_docker, pods)
  for name, (code, logs) in results.items():
    assert code == 0, f'{name} exited {code}:\n{logs[-3000:]}'
  assert 'resuming /runs/vae from epoch' in results[pods[0][0]][1]
  with open(runs_dir / 'vae' / 'metrics.json') as f:
    assert json.load(f)['epochs_completed'] == 6


def test_trainjob_nodes_train_and_the_chief_exports(runs_dir, tag_as,
                                                   run_docker):
  job = _load('trainer-v2', 'trainjob.yaml')
  runtime = _load('trainer-v2', 'runtime.yaml')
  trainer = job['spec']['trainer']
  assert job['spec']['runtimeRef']['name'] == runtime['metadata']['name']
  replicated = runtime['spec']['template']['spec']['replicatedJobs'][0]
  pod = replicated['template']['spec']['template']['spec']
  container = {**pod['containers'][0], 'image': trainer['image']}
  tag_as(trainer['image'])
  jobset = job['metadata']['name']
  prefix = _free_pair()
  pods = []
  for index in range(trainer['numNodes']):
    name = f'{jobset}-{replicated["name"]}-0-{index}-{os.getpid()}'
    injected = {'JOBSET_NAME': jobset, 'JOB_COMPLETION_INDEX': str(index),
                'TFP_VAE_WORKER_ADDRESS': f'127.0.0.1:{prefix}{{index}}'}
    pods.append((name, _pod_args(
        name, pod, container, runs_dir, injected,
        resources=trainer.get('resourcesPerNode'),
        command=trainer.get('command'), args=trainer.get('args'),
        env=trainer.get('env', []))))
  results = _run_pods(run_docker, pods)
  _check_chief_wrote(runs_dir, results, pods[0][0])
