"""deploy/: every manifest validates strictly, broken ones fail by file and
field, the KFP pipeline compiles offline and matches the TFJob, and the
container's entrypoint trains in two processes with a TFJob-style
TF_CONFIG."""

import copy
import json
import os
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.helpers import REPO, free_port, wait_all

sys.path.insert(0, os.path.join(REPO, 'deploy'))
import validate  # pylint: disable=g-import-not-at-top,wrong-import-position

TFJOB = os.path.join(REPO, 'deploy', 'kubeflow', 'tfjob.yaml')
TRAINJOB = os.path.join(REPO, 'deploy', 'kubeflow', 'trainer-v2',
                        'trainjob.yaml')
RUNTIME = os.path.join(REPO, 'deploy', 'kubeflow', 'trainer-v2',
                       'runtime.yaml')
KSERVE_CUSTOM = os.path.join(REPO, 'deploy', 'serving', 'kserve-custom.yaml')
DOCKERFILE = os.path.join(REPO, 'deploy', 'docker', 'Dockerfile')


def _load(path):
  with open(path) as f:
    return yaml.safe_load(f)


def _broken(tmp_path, source, edit):
  body = copy.deepcopy(_load(source))
  edit(body)
  path = tmp_path / os.path.basename(source)
  path.write_text(yaml.safe_dump(body))
  return str(path)


def _worker(body):
  return body['spec']['tfReplicaSpecs']['Worker']['template']['spec']


def _predictor(body):
  return body['spec']['predictor']['containers'][0]


def _set_arg(container, flag, value):
  container['args'] = [a for a in container['args']
                       if not a.startswith(f'--{flag}=')] + [
                           f'--{flag}={value}']


def test_every_manifest_in_deploy_is_valid():
  files = validate.manifest_files()
  kinds = set()
  for path in files:
    docs, _ = validate.load(path)
    kinds |= {d.key[1] for d in docs}
  assert kinds >= {'TFJob', 'TrainJob', 'ClusterTrainingRuntime',
                   'PersistentVolumeClaim', 'Deployment', 'Service',
                   'InferenceService'}
  problems = validate.validate()
  assert not problems, '\n'.join(map(str, problems))


def test_validator_cli_exit_codes(tmp_path):
  ok = subprocess.run([sys.executable, 'deploy/validate.py'], cwd=REPO,
                      capture_output=True, text=True, timeout=300)
  assert ok.returncode == 0, ok.stdout + ok.stderr
  assert 'OK:' in ok.stdout
  bad = _broken(tmp_path, TFJOB, lambda b: b['spec'].update(runPolcy={}))
  result = subprocess.run([sys.executable, 'deploy/validate.py', bad],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=300)
  assert result.returncode == 1
  assert f'{bad}: spec.runPolcy: unknown key' in result.stdout


@pytest.mark.parametrize('source,edit,field,message', [
    (TFJOB, lambda b: _worker(b)['containers'][0].update(imagePullPolicyy='x'),
     'spec.tfReplicaSpecs.Worker.template.spec.containers[0].imagePullPolicyy',
     "unknown key 'imagePullPolicyy'"),
    (TFJOB, lambda b: b['spec']['runPolicy'].update(backofLimit=3),
     'spec.runPolicy.backofLimit', "unknown key 'backofLimit'"),
    (TFJOB, lambda b: b['spec']['tfReplicaSpecs'].update(
        Master=b['spec']['tfReplicaSpecs'].pop('Worker')),
     'spec.tfReplicaSpecs.Master', 'rejects the TF1 task type master'),
    (TFJOB, lambda b: _worker(b)['containers'][0].update(name='trainer'),
     'spec.tfReplicaSpecs.Worker.template.spec.containers',
     "no container named 'tensorflow'"),
    (TFJOB, lambda b: b['spec']['tfReplicaSpecs'].update(
        Chief=dict(b['spec']['tfReplicaSpecs']['Worker'], replicas=2)),
     'spec.tfReplicaSpecs.Chief.replicas', 'must be 1'),
    (TFJOB, lambda b: b['metadata'].update(name='TFP_vae'),
     'metadata.name', 'DNS-1035'),
    (TFJOB, lambda b: b['spec']['tfReplicaSpecs']['Worker'].update(
        restartPolicy='Sometimes'),
     'spec.tfReplicaSpecs.Worker.restartPolicy', 'is not one of'),
    (TRAINJOB, lambda b: b['spec']['trainer'].update(numNode=2),
     'spec.trainer.numNode', "unknown key 'numNode'"),
    (TRAINJOB, lambda b: b['spec']['trainer'].update(numNodes=3),
     'spec.trainer.env', 'must equal numNodes=3'),
    (TRAINJOB, lambda b: b['spec']['runtimeRef'].update(name='tf-missing'),
     'spec.runtimeRef', "no ClusterTrainingRuntime named 'tf-missing'"),
    (RUNTIME, lambda b: b['spec']['template']['spec']['replicatedJobs'][0]
     ['template']['spec']['template']['spec']['containers'][0].update(
         volumeMount=[]),
     'spec.template.spec.replicatedJobs[0].template.spec.template.spec.'
     'containers[0].volumeMount', "unknown key 'volumeMount'"),
    (KSERVE_CUSTOM, lambda b: _predictor(b).update(argz=[]),
     'spec.predictor.containers[0].argz', "unknown key 'argz'"),
    (KSERVE_CUSTOM, lambda b: b['spec']['predictor'].update(minReplica=1),
     'spec.predictor.minReplica', "unknown key 'minReplica'"),
    (KSERVE_CUSTOM, lambda b: _set_arg(_predictor(b), 'model_name', 'digits'),
     'spec.predictor.containers[0].readinessProbe.httpGet.path',
     "asks for model 'vae', but the server serves 'digits'"),
    (KSERVE_CUSTOM, lambda b: _set_arg(_predictor(b), 'rest_api_port', 9000),
     'spec.predictor.containers[0].ports', 'is not --rest_api_port=9000'),
    (KSERVE_CUSTOM, lambda b: _set_arg(_predictor(b), 'export_dir',
                                       '/models/mmd_vae'),
     'spec.predictor.containers[0].args',
     "--export_dir serves 'export/mmd_vae' of the volume"),
    (TFJOB, lambda b: _set_arg(_worker(b)['containers'][0], 'dataset',
                               '/data/images'),
     'spec.tfReplicaSpecs.Worker.template.spec.containers[0].args',
     '--dataset=/data/images is on no volume the container mounts (/runs)'),
    (TFJOB, lambda b: _set_arg(_worker(b)['containers'][0], 'dataset',
                               'ftp://host/images'),
     'spec.tfReplicaSpecs.Worker.template.spec.containers[0].args',
     'is not a bucket path'),
])
def test_broken_manifest_names_file_and_field(tmp_path, source, edit, field,
                                              message):
  path = _broken(tmp_path, source, edit)
  problems = [p for p in validate.validate([path])]
  matching = [p for p in problems if p.field == field and message in
              p.message]
  assert matching, '\n'.join(map(str, problems))
  # Own-file problems carry the file's path.
  if 'runtimeRef' not in field and 'env' not in field:
    assert matching[0].file == path


@pytest.mark.parametrize('dataset', ['/runs/data/images',
                                     'gs://bucket/shards/train-*.tfrecord'])
def test_a_dataset_on_the_pvc_or_in_a_bucket_is_valid(tmp_path, dataset):
  path = _broken(tmp_path, TFJOB, lambda b: _set_arg(
      _worker(b)['containers'][0], 'dataset', dataset))
  problems = validate.validate([path])
  assert not [p for p in problems if 'the container mounts' in p.message or
              'bucket path' in p.message], problems


def test_serving_manifests_must_agree_with_the_training_job(tmp_path):
  path = _broken(tmp_path, TFJOB, lambda b: _worker(b)['containers'][0][
      'args'].__setitem__(5, '--export_dir=/runs/other/vae'))
  problems = validate.validate([path])
  fields = {(p.file, p.field) for p in problems}
  assert ('deploy/serving/kserve.yaml',
          'spec.predictor.model.storageUri') in fields
  assert ('deploy/serving/tf-serving.yaml',
          'spec.template.spec.containers[0].args') in fields
  assert ('deploy/serving/kserve-custom.yaml',
          'spec.predictor.containers[0].args') in fields
  assert ('deploy/kubeflow/trainer-v2/trainjob.yaml',
          'spec.trainer.args') in fields
  path = _broken(tmp_path, TFJOB, lambda b: _worker(b)['volumes'][0][
      'persistentVolumeClaim'].update(claimName='scratch'))
  assert any('claim' in p.field.lower() and "'scratch'" in p.message
             for p in validate.validate([path]))


def test_pipeline_compiles_offline_with_the_tfjob_image_and_args(tmp_path):
  out = tmp_path / 'pipeline.yaml'
  result = subprocess.run(
      [sys.executable, 'deploy/kubeflow/pipeline/pipeline.py',
       f'--output={out}'], cwd=REPO, capture_output=True, text=True,
      timeout=300)
  assert result.returncode == 0, result.stderr
  compiled = list(yaml.safe_load_all(out.read_text()))
  executors = compiled[0]['deploymentSpec']['executors']
  container = _worker(_load(TFJOB))['containers'][0]
  train = [e['container'] for e in executors.values()
           if e['container'].get('command') == ['tfp-vae-train']]
  assert len(train) == 1
  assert train[0]['image'] == container['image']
  assert train[0]['args'] == container['args']
  commands = {tuple(e['container']['command']) for e in executors.values()}
  assert {('tfp-vae-evaluate',), ('tfp-vae-export',), ('sh', '-c')} <= commands
  # The deploy step applies the serving manifest the validator checked.
  root = compiled[0]['root']['inputDefinitions']['parameters']
  with open(os.path.join(REPO, 'deploy', 'serving', 'kserve.yaml')) as f:
    assert json.loads(root['inference_service']['defaultValue']) == (
        yaml.safe_load(f))
  # Every tfp-vae step mounts the shared volume at the TFJob's path.
  platform = compiled[1]['platforms']['kubernetes']['deploymentSpec'][
      'executors']
  mounts = [m for spec in platform.values() for m in spec.get('pvcMount', [])]
  assert len(mounts) == 3
  assert {m['mountPath'] for m in mounts} == {
      container['volumeMounts'][0]['mountPath']}
  # The committed YAML is what the script produces.
  committed = os.path.join(REPO, 'deploy', 'kubeflow', 'pipeline',
                           'pipeline.yaml')
  sys.path.insert(0, os.path.dirname(committed))
  import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  with open(committed) as f:
    # Everything but KFP's sdkVersion stamp, which names the installed
    # compiler's patch release.
    assert pipeline_lib.without_sdk_version(f.read()) == (
        pipeline_lib.without_sdk_version(out.read_text())), (
        'deploy/kubeflow/pipeline/pipeline.yaml is stale: run '
        'python deploy/kubeflow/pipeline/pipeline.py')


def _dockerfile_instruction(name):
  with open(DOCKERFILE) as f:
    lines = [l.strip() for l in f if l.strip().upper().startswith(name)]
  return [l.split(None, 1)[1] for l in lines]


def test_dockerfile_installs_the_package_runs_non_root_and_trains():
  assert _dockerfile_instruction('ARG')[0].startswith('BASE_IMAGE=')
  assert _dockerfile_instruction('FROM') == ['${BASE_IMAGE}']
  assert _dockerfile_instruction('USER') == ['1000:1000']
  # With the serving extra: the custom KServe predictor runs the server.
  assert any("pip install -c requirements/lock.txt '.[serving]'" in r
             for r in _dockerfile_instruction('RUN'))
  entrypoint = json.loads(_dockerfile_instruction('ENTRYPOINT')[0])
  assert entrypoint == ['tfp-vae-train']
  # The console scripts the image runs are declared by the package.
  with open(os.path.join(REPO, 'setup.cfg')) as f:
    setup_cfg = f.read()
  assert 'tfp-vae-train = trainers.train:run' in setup_cfg
  assert _predictor(_load(KSERVE_CUSTOM))['command'] == ['tfp-vae-serve']
  assert 'tfp-vae-serve = trainers.serve:run' in setup_cfg


@pytest.mark.slow
def test_entrypoint_trains_in_two_processes_with_a_tfjob_tf_config(tmp_path):
  """What the TFJob's two Worker pods run, on localhost ports."""
  entrypoint = json.loads(_dockerfile_instruction('ENTRYPOINT')[0])
  command = shutil.which(entrypoint[0],
                         path=os.path.dirname(sys.executable))
  assert command, f'{entrypoint[0]} is not installed next to {sys.executable}'
  container = _worker(_load(TFJOB))['containers'][0]
  model_dir, export_dir = tmp_path / 'vae', tmp_path / 'export' / 'vae'
  args = [a.replace('/runs', str(tmp_path)) for a in container['args']]
  # A tiny budget after the job's own flags (absl: the last one wins).
  args += ['--epochs=1', '--batch_size=500', '--plot_every=0']
  workers = [f'localhost:{free_port()}', f'localhost:{free_port()}']
  procs = []
  for index in range(2):
    tf_config = {'cluster': {'worker': workers},
                 'task': {'type': 'worker', 'index': index},
                 'environment': 'cloud'}
    env = {**os.environ, 'TF_CONFIG': json.dumps(tf_config)}
    env.update({e['name']: e['value'].replace('/runs', str(tmp_path))
                for e in container.get('env', [])})
    procs.append(subprocess.Popen([command, *args], cwd=str(tmp_path),
                                  env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True))
  outs = wait_all(procs, 600)
  for code, _, err in outs:
    assert code == 0, shlex.join([command, *args]) + '\n' + err[-3000:]
  with open(model_dir / 'metrics.json') as f:
    assert json.load(f)['epochs_completed'] == 1
  assert sorted(os.listdir(export_dir)) == ['1', 'models.config']
  assert 'MultiWorkerMirroredStrategy with 2 replica(s)' in outs[0][2]


def _strict_pipeline_spec(docs):
  """The compiled documents parsed by KFP's own protos, refusing unknown
  fields: the PipelineSpec, and each executor's Kubernetes config."""
  from google.protobuf import json_format  # pylint: disable=g-import-not-at-top
  from kfp.kubernetes import kubernetes_executor_config_pb2 as k8s  # pylint: disable=g-import-not-at-top
  from kfp.pipeline_spec import pipeline_spec_pb2  # pylint: disable=g-import-not-at-top
  spec = json_format.ParseDict(docs[0], pipeline_spec_pb2.PipelineSpec(),
                               ignore_unknown_fields=False)
  for executor in docs[1]['platforms']['kubernetes']['deploymentSpec'][
      'executors'].values():
    json_format.ParseDict(executor, k8s.KubernetesExecutorConfig(),
                          ignore_unknown_fields=False)
  return spec


@pytest.mark.parametrize('script', ['pipeline.py', 'compare_pipeline.py'])
def test_committed_pipelines_are_current_and_strictly_valid(tmp_path, script):
  out = tmp_path / 'compiled.yaml'
  path = os.path.join(REPO, 'deploy', 'kubeflow', 'pipeline', script)
  r = subprocess.run([sys.executable, path, f'--output={out}'], cwd=REPO,
                     capture_output=True, text=True, timeout=300)
  assert r.returncode == 0, r.stderr
  compiled = list(yaml.safe_load_all(out.read_text()))
  _strict_pipeline_spec(compiled)
  sys.path.insert(0, os.path.dirname(path))
  import pipeline as pipeline_lib  # pylint: disable=g-import-not-at-top
  with open(path.replace('.py', '.yaml')) as f:
    assert pipeline_lib.without_sdk_version(f.read()) == (
        pipeline_lib.without_sdk_version(out.read_text())), (
            f'{script[:-3]}.yaml is stale: run python {path}')


def _compile_compare_pipeline(tmp_path, models, seeds, shared):
  """(the strictly parsed spec, the compiled YAML documents)."""
  sys.path.insert(0, os.path.join(REPO, 'deploy', 'kubeflow', 'pipeline'))
  import compare_pipeline  # pylint: disable=g-import-not-at-top
  from kfp import compiler  # pylint: disable=g-import-not-at-top
  out = tmp_path / f'compiled-{seeds}.yaml'
  compiler.Compiler().compile(
      compare_pipeline.make_pipeline(models, seeds, shared), str(out))
  compiled = list(yaml.safe_load_all(out.read_text()))
  return _strict_pipeline_spec(compiled), compiled


def _loop_items(spec):
  loop = spec.root.dag.tasks['for-loop-2']
  return json.loads(loop.parameter_iterator.items.raw)


@pytest.mark.slow
def test_the_compare_pipeline_fans_out_the_runs_compare_reuses(tmp_path):
  """The fan-out compiled for two members and two seeds: one ParallelFor
  item per (member, seed), then the compare step.  Then, for two members
  at one seed on tiny data (the same code path, half the trainings), each
  item's train command, run here as the pod would run it (sh -c, the
  volume at a folder), trains the run trainers.compare then finds trained;
  the compare step's command reuses all of them."""
  from tfp_vae.family import specs  # pylint: disable=g-import-not-at-top
  models = ('vae', 'vae:beta=4')
  shared = ('--epochs=1', '--train_examples=100', '--batch_size=50',
            '--plot_every=0')
  spec, _ = _compile_compare_pipeline(tmp_path, models, 2, shared)
  import compare_pipeline  # pylint: disable=g-import-not-at-top
  items = _loop_items(spec)
  assert items == specs.fan_out(list(models), 2,
                                compare_pipeline.OUTPUT_DIR)
  assert len(items) == 4
  assert list(spec.root.dag.tasks['compare'].dependent_tasks) == [
      'for-loop-2']
  spec, compiled = _compile_compare_pipeline(tmp_path, models, 1, shared)
  items = _loop_items(spec)
  assert len(items) == 2
  executors = compiled[0]['deploymentSpec']['executors']
  train = executors['exec-train']['container']
  mount = str(tmp_path / 'runs')
  bin_dir = tmp_path / 'bin'  # the image's console scripts, here
  bin_dir.mkdir()
  for name in ('train', 'compare'):
    script = bin_dir / f'tfp-vae-{name}'
    script.write_text(f'#!/bin/sh\nexec {sys.executable} -m trainers.{name} '
                      '"$@"\n')
    script.chmod(0o755)
  env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  for item in items:
    args = [a.replace("{{$.inputs.parameters['member_flags']}}",
                      item['member_flags'])
            .replace("{{$.inputs.parameters['model']}}", item['model'])
            .replace("{{$.inputs.parameters['seed']}}", item['seed'])
            .replace("{{$.inputs.parameters['model_dir']}}",
                     item['model_dir']).replace('/runs', mount)
            for a in train['args']]
    r = subprocess.run(train['command'] + args, cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (item, r.stderr[-2000:])
  compare = executors['exec-compare']['container']
  r = subprocess.run(
      compare['command'] + [a.replace('/runs', mount) for a in compare['args']]
      + ['--eval_iwae_samples=0'], cwd=REPO, env=env, capture_output=True,
      text=True, timeout=900)
  assert r.returncode == 0, r.stderr[-3000:]
  assert r.stderr.count('not training again') == 2, r.stderr[-3000:]
  with open(os.path.join(mount, 'compare', 'metrics.json')) as f:
    metrics = json.load(f)
  assert metrics['order'] == list(models)
  assert metrics['seeds'] == [0]


def test_the_compare_pipelines_pods_get_every_shared_flag(tmp_path):
  """The train step's `sh -c` passes the shared flags, all of them (the
  first was once shifted away: --dataset=fashion_mnist, so the pods
  trained mnist_5k), and --compared_models, so that each pod decides
  --precision=auto for the whole comparison as tfp-vae-compare does."""
  shared = ('--dataset=fashion_mnist', '--epochs=3')
  _, compiled = _compile_compare_pipeline(tmp_path, ('vae', 'mmd_vae'), 1,
                                          shared)
  train = compiled[0]['deploymentSpec']['executors']['exec-train'][
      'container']
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'tfp-vae-train').write_text(
      '#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
  (bin_dir / 'tfp-vae-train').chmod(0o755)
  item = {'model': 'mmd_vae', 'member_flags': '--mmd_weight=5',
          'seed': '0', 'model_dir': '/runs/compare/mmd_vae'}
  args = list(train['args'])
  for key, value in item.items():
    args = [a.replace(f"{{{{$.inputs.parameters['{key}']}}}}", value)
            for a in args]
  env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}')
  r = subprocess.run(train['command'] + args, env=env, capture_output=True,
                     text=True, timeout=60, check=True)
  assert r.stdout.split('\n')[:-1] == [
      '--compared_models=vae,mmd_vae', *shared, '--model=mmd_vae',
      '--seed=0', '--model_dir=/runs/compare/mmd_vae', '--noverbose',
      '--mmd_weight=5']
