"""Kubeflow Pipelines (kfp 2.x): a comparison fanned out over the cluster.

  ParallelFor over (member, seed): one tfp-vae-train pod each, on the
      shared volume tfp-vae-runs (mounted at /runs, as in the TFJob), in the
      run folder trainers.compare gives that run (/runs/compare/<spec>,
      /runs/compare/<spec>-seed<S>);
  compare: one tfp-vae-compare that finds every run trained, evaluates them
      in one feature space (reusing evaluations already there) and writes
      /runs/compare/report.html and metrics.json with intervals over seeds.

The members and seeds are fixed when compiling (the fan-out is a static
list, and the compare step names the same ones):

  python deploy/kubeflow/pipeline/compare_pipeline.py \\
      --models=vae,mmd_vae,vae:beta=4 --seeds=3

writes compare_pipeline.yaml beside this file; upload it in the Kubeflow
Pipelines UI or `kfp pipeline create -p tfp-vae-compare
compare_pipeline.yaml`.  The shared flags (data, architecture, budget) are
SHARED_FLAGS below: the articles' protocol on Fashion-MNIST.
"""

import argparse
import os
import sys

from kfp import dsl
from kfp import kubernetes

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)
# pylint: disable=g-import-not-at-top,wrong-import-position
import pipeline as train_pipeline
from tfp_vae.family import specs
# pylint: enable=g-import-not-at-top,wrong-import-position

IMAGE = train_pipeline.IMAGE
CLAIM = train_pipeline.CLAIM
MOUNT = train_pipeline.MOUNT
OUTPUT_DIR = f'{MOUNT}/compare'
DEFAULT_MODELS = ('vae', 'mmd_vae')
DEFAULT_SEEDS = 3
# The articles' protocol: Fashion-MNIST, latent 2, batch 100, Adam 1e-4.
SHARED_FLAGS = ('--dataset=fashion_mnist', '--latent_dim=2',
                '--batch_size=100', '--learning_rate=1e-4', '--epochs=50',
                '--plot_every=10')


def compare_args(models: tuple[str, ...], seeds: int,
                 shared: tuple[str, ...] = SHARED_FLAGS) -> list[str]:
  return [f'--models={",".join(models)}', f'--seeds={seeds}',
          f'--output_dir={OUTPUT_DIR}', *shared]


def make_pipeline(models: tuple[str, ...], seeds: int,
                  shared: tuple[str, ...] = SHARED_FLAGS):
  """The pipeline comparing `models` over `seeds` seeds with the `shared`
  training flags."""
  items = specs.fan_out(list(models), seeds, OUTPUT_DIR)
  # Each pod decides --precision=auto for every compared member, as
  # tfp-vae-compare does (one precision for the comparison): trained on
  # its own, a member would get its own, and the compare step would find
  # runs in different precisions.
  compared = '--compared_models=' + ','.join(dict.fromkeys(
      item['model'] for item in items))

  @dsl.container_component
  def train(model: str, member_flags: str, seed: str, model_dir: str):
    # The member's own settings: a space-separated list of --key=value
    # flags (none holds a space), split by the shell.
    return dsl.ContainerSpec(
        image=IMAGE, command=['sh', '-c'],
        args=['m=$0 f=$1 s=$2 d=$3; shift 3; exec tfp-vae-train "$@" '
              '--model="$m" --seed="$s" --model_dir="$d" --noverbose $f',
              model, member_flags, seed, model_dir, compared, *shared])

  @dsl.container_component
  def compare():
    return dsl.ContainerSpec(image=IMAGE, command=['tfp-vae-compare'],
                             args=compare_args(models, seeds, shared))

  @dsl.pipeline(name='tfp-vae-compare',
                description=f'{", ".join(models)} over {seeds} seeds, side '
                f'by side with intervals.')
  def compare_pipeline():
    with dsl.ParallelFor(items=items, name='runs') as item:
      run = train(model=item.model, member_flags=item.member_flags,
                  seed=item.seed, model_dir=item.model_dir)
      kubernetes.mount_pvc(run, pvc_name=CLAIM, mount_path=MOUNT)
      run.set_caching_options(False)  # it reads and writes the volume
      run.set_accelerator_type('nvidia.com/gpu').set_accelerator_limit(1)
    report = compare().after(run)
    kubernetes.mount_pvc(report, pvc_name=CLAIM, mount_path=MOUNT)
    report.set_caching_options(False)

  return compare_pipeline


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--models', default=','.join(DEFAULT_MODELS))
  parser.add_argument('--seeds', type=int, default=DEFAULT_SEEDS)
  parser.add_argument('--output',
                      default=os.path.join(HERE, 'compare_pipeline.yaml'))
  args = parser.parse_args()
  pipeline = make_pipeline(tuple(args.models.split(',')), args.seeds)
  train_pipeline.write_compiled(pipeline, args.output)


if __name__ == '__main__':
  main()
