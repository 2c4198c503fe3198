"""Kubeflow Pipelines (kfp 2.x): train -> evaluate -> export -> deploy.

Every step runs the tfp-vae image on the shared volume tfp-vae-runs (mounted
at /runs, as in the TFJob):

  train     tfp-vae-train with the TFJob's arguments (one pod; with several
            GPUs in it, the trainer mirrors over them)
  evaluate  tfp-vae-evaluate --model_dir=/runs/vae: IWAE log-likelihood,
            latent probes, Frechet distance into /runs/vae/metrics.json
  export    tfp-vae-export: a new SavedModel version in /runs/export/vae
  deploy    kubectl apply of deploy/serving/kserve.yaml: the KServe
            InferenceService serving /runs/export/vae (pvc://tfp-vae-runs/...)

Compile (offline; writes pipeline.yaml beside this file):

  python deploy/kubeflow/pipeline/pipeline.py

then upload pipeline.yaml in the Kubeflow Pipelines UI, or
`kfp pipeline create -p tfp-vae pipeline.yaml`.  The pipeline's service
account needs RBAC to create InferenceServices for the deploy step.
"""

import argparse
import json
import os

from kfp import compiler
from kfp import dsl
from kfp import kubernetes
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
DEPLOY = os.path.dirname(os.path.dirname(HERE))
TFJOB = os.path.join(DEPLOY, 'kubeflow', 'tfjob.yaml')
INFERENCE_SERVICE = os.path.join(DEPLOY, 'serving', 'kserve.yaml')
KUBECTL_IMAGE = 'bitnami/kubectl:1.32'
CLAIM = 'tfp-vae-runs'
MOUNT = '/runs'


def _tfjob_container() -> dict:
  """The TFJob's worker container: the one source of image and arguments."""
  with open(TFJOB) as f:
    tfjob = yaml.safe_load(f)
  spec = tfjob['spec']['tfReplicaSpecs']['Worker']['template']['spec']
  return next(c for c in spec['containers'] if c['name'] == 'tensorflow')


_CONTAINER = _tfjob_container()
IMAGE = _CONTAINER['image']
TRAIN_ARGS = list(_CONTAINER['args'])
_FLAGS = dict(a[2:].split('=', 1) for a in TRAIN_ARGS if '=' in a)
MODEL_DIR = _FLAGS['model_dir']
EXPORT_DIR = _FLAGS['export_dir']
# One line of JSON (kubectl applies JSON too): KFP writes parameter defaults
# into a comment header of the compiled YAML, and a multi-line default would
# break that file.
with open(INFERENCE_SERVICE) as f:
  INFERENCE_SERVICE_JSON = json.dumps(yaml.safe_load(f), sort_keys=True)


@dsl.container_component
def train():
  return dsl.ContainerSpec(image=IMAGE, command=['tfp-vae-train'],
                           args=TRAIN_ARGS)


@dsl.container_component
def evaluate():
  return dsl.ContainerSpec(
      image=IMAGE, command=['tfp-vae-evaluate'],
      args=[f'--model_dir={MODEL_DIR}', '--eval_iwae_samples=1000'])


@dsl.container_component
def export():
  return dsl.ContainerSpec(
      image=IMAGE, command=['tfp-vae-export'],
      args=[f'--model_dir={MODEL_DIR}', f'--export_dir={EXPORT_DIR}'])


@dsl.container_component
def deploy(manifest: str):
  return dsl.ContainerSpec(
      image=KUBECTL_IMAGE, command=['sh', '-c'],
      args=['printf "%s" "$0" | kubectl apply -f -', manifest])


@dsl.pipeline(name='tfp-vae',
              description='Train, evaluate, export and serve the tfp-vae VAE.')
def pipeline(inference_service: str = INFERENCE_SERVICE_JSON):
  steps = [train(), evaluate(), export()]
  for task in steps:
    kubernetes.mount_pvc(task, pvc_name=CLAIM, mount_path=MOUNT)
    task.set_caching_options(False)  # they read and write the volume
  steps[0].set_accelerator_type('nvidia.com/gpu').set_accelerator_limit(1)
  steps[1].after(steps[0])
  steps[2].after(steps[1])
  serve = deploy(manifest=inference_service).after(steps[2])
  serve.set_caching_options(False)


def without_sdk_version(text: str) -> list:
  """The compiled YAML's documents without KFP's `sdkVersion` stamp, which
  names the compiler's patch release and nothing about the pipeline."""
  docs = list(yaml.safe_load_all(text))
  for doc in docs:
    if isinstance(doc, dict):
      doc.pop('sdkVersion', None)
  return docs


def write_compiled(pipeline_fn, output: str) -> None:
  """Compiles `pipeline_fn` to `output`, leaving the file as it is when
  only the compiler's version stamp would change."""
  tmp = f'{output}.tmp-{os.getpid()}.yaml'
  compiler.Compiler().compile(pipeline_fn, tmp)
  with open(tmp) as f:
    compiled = f.read()
  previous = None
  if os.path.exists(output):
    with open(output) as f:
      previous = f.read()
  if previous is not None and (
      without_sdk_version(previous) == without_sdk_version(compiled)):
    os.remove(tmp)
    print(f'{output} (unchanged)')
  else:
    os.replace(tmp, output)
    print(output)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--output', default=os.path.join(HERE, 'pipeline.yaml'))
  args = parser.parse_args()
  write_compiled(pipeline, args.output)


if __name__ == '__main__':
  main()
