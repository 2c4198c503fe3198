"""The project's Kubeflow pipelines executed by KFP's local Docker runner
(kfp.local.DockerRunner), every step a container of the project's image
with the command and arguments the compiled pipeline gives it.

Locally `kubernetes.mount_pvc` is dropped without a word, so each run binds
one host folder where the pipelines mount the claim (/runs): the steps share
it as they share the PVC on a cluster.  The main pipeline's deploy step
(kubectl apply of the InferenceService, in bitnami/kubectl) needs a cluster
and is reported skipped."""

import json
import os
import sys

import numpy as np
import pytest

from tests.helpers import REPO

PIPELINES = os.path.join(REPO, 'deploy', 'kubeflow', 'pipeline')
sys.path.insert(0, PIPELINES)
# pylint: disable=g-import-not-at-top,wrong-import-position
import compare_pipeline
import pipeline as main_pipeline
# pylint: enable=g-import-not-at-top,wrong-import-position

# Tiny data and one epoch: the flags every compare member and the compare
# step share (the pipeline's SHARED_FLAGS slot).
TINY = ('--dataset=mnist_5k', '--train_examples=200', '--batch_size=50',
        '--epochs=1', '--plot_every=0', '--latent_dim=2')


def _local(runs_dir, tmp_path):
  import docker  # pylint: disable=g-import-not-at-top
  from kfp import local  # pylint: disable=g-import-not-at-top
  root = tmp_path / 'pipeline_root'
  root.mkdir()
  os.chmod(root, 0o777)
  mount = docker.types.Mount(target=main_pipeline.MOUNT,
                             source=str(runs_dir), type='bind')
  local.init(runner=local.DockerRunner(mounts=[mount], network_mode='none'),
             pipeline_root=str(root), raise_on_error=True)


def test_compare_pipeline_trains_every_member_and_writes_the_report(
    runs_dir, tmp_path, tag_as):
  tag_as(compare_pipeline.IMAGE)
  _local(runs_dir, tmp_path)
  # raise_on_error=True: a failed step raises, naming it.
  compare_pipeline.make_pipeline(('vae', 'mmd_vae'), 2, TINY)()
  out = runs_dir / 'compare'
  report = (out / 'report.html').read_text()
  assert '<html' in report.lower() and 'mmd_vae' in report
  with open(out / 'metrics.json') as f:
    metrics = json.load(f)
  assert metrics['order'] == ['vae', 'mmd_vae'] and metrics['seeds'] == [0, 1]
  for spec in ('vae', 'mmd_vae'):
    member = metrics['models'][spec]
    # Each seed's run trained in its own container, on the shared /runs.
    assert member['runs'] == {'0': f'/runs/compare/{spec}',
                              '1': f'/runs/compare/{spec}-seed1'}
    for seed in ('0', '1'):
      assert member['seeds'][seed]['epochs_completed'] == 1
      assert np.isfinite(member['seeds'][seed]['test_iwae_log_likelihood'])
  assert metrics['differences'][0]['a'] == 'vae'
  # Trained in separate pods, the runs still share one precision: each pod
  # decided --precision=auto for every compared member (--compared_models),
  # as the compare step does (on an AVX-512 BF16 CPU the VAE alone would
  # get bfloat16, the MMD-VAE float32, and the compare step refused to
  # continue the VAE's run in float32).
  precisions = set()
  for run in ('vae', 'vae-seed1', 'mmd_vae', 'mmd_vae-seed1'):
    with open(out / run / 'config.json') as f:
      precisions.add(json.load(f)['plan']['runtime']['precision'])
  assert len(precisions) == 1, precisions


def test_main_pipeline_trains_evaluates_and_exports(runs_dir, tmp_path,
                                                   tag_as):
  """pipeline.py's train, evaluate and export steps, in its order, on the
  TFJob's own flags."""
  from kfp import dsl  # pylint: disable=g-import-not-at-top
  tag_as(main_pipeline.IMAGE)
  _local(runs_dir, tmp_path)

  @dsl.pipeline(name='tfp-vae-without-deploy')
  def steps():
    trained = main_pipeline.train()
    evaluated = main_pipeline.evaluate().after(trained)
    main_pipeline.export().after(evaluated)

  steps()  # raises on a failed step
  model_dir = runs_dir / os.path.relpath(main_pipeline.MODEL_DIR,
                                         main_pipeline.MOUNT)
  export_dir = runs_dir / os.path.relpath(main_pipeline.EXPORT_DIR,
                                          main_pipeline.MOUNT)
  with open(model_dir / 'metrics.json') as f:
    metrics = json.load(f)
  flags = dict(a[2:].split('=', 1) for a in main_pipeline.TRAIN_ARGS
               if '=' in a)
  assert metrics['epochs_completed'] == int(flags['epochs'])
  # The train step exports (the TFJob's --export_dir) version 1, and the
  # export step the next version beside it.
  assert sorted(os.listdir(export_dir)) == ['1', '2', 'models.config']


def test_main_pipeline_deploy_step():
  pytest.skip('the main pipeline\'s deploy step (kubectl apply of '
              'deploy/serving/kserve.yaml, in bitnami/kubectl) needs a '
              'Kubernetes cluster: not run here')
