"""tfp_vae: variational autoencoders on TensorFlow Probability.

Subpackages in layers, bottom first: a module imports only from its own
subpackage and the ones listed before it (tests/rules/test_code.py checks it).
One responsibility per module:

internal/     what every layer uses (no TensorFlow Probability)
  errors      the errors a user can cause
  checks      value checks that name the setting and show the bad value
  registry    the one registration mechanism of the extension points, and
              the plugins (`tfp_vae.plugins` entry points) that extend it
  files       files written whole or not at all, and interrupted writes'
              leftovers
  storage     a full, read-only or vanished storage named in one line, with
              the exit code that retries
  layout      an export directory's version folders (no TensorFlow)
  progress    progress lines for long steps
  fanout      commands run k at a time as child processes
  faults      named fault points for tests (inert unless TFP_VAE_FAULT is set)
  testing     helpers for tests and the bench: undoing a registration, the
              plain training step, the model server as a process
  keras_internals
              every use of Keras's internals, and why (one module per
              dependency; tests/internal/test_<module>.py exercises each)
  tensorflow_internals
              every use of TensorFlow's internals, and why

nn/           the model library: pure TensorFlow/TFP pieces
  networks    Keras layer stacks, tensors in and out
  encoders    networks -> q(z|x) distributions
  decoders    networks -> p(x|z) likelihoods
  pixelcnn    an autoregressive p(x|z): masked convolutions over the image
  priors      p(z): standard normal, learned mixture, VampPrior
  losses      pure functions over distributions: rate, distortion, MMD, bounds
  precision   the mixed-precision policy: what stays float32 under 16-bit
              compute
  information mutual information, the aggregate posterior's KL to the
              prior, the code's gain, each unit's rate

family/       the extension points, declared (no TensorFlow)
  members     a member, declared: its settings, objective and what generic
              code needs of it; the registry of members
  objectives  the built-in members (VAE, MMD-VAE, InfoVAE, IWAE) and the
              building blocks of their objectives
  components  the other parts, declared: encoders, likelihoods, priors,
              architectures
  specs       a member and its settings in one string (`vae:beta=4`), and
              where a comparison runs it

config/       typed, validated settings (no TensorFlow)
  declare     a setting's declaration: default, help, choices, resumable
  groups      a run's four groups of settings: model, data, trainer, runtime
  settings    a training run's settings (the four groups) and its
              evaluation's
  serve_settings
              the model server's settings

data/
  datasets    named sets as float arrays in a fixed shuffled order
  images      a dataset in memory or streamed (ImageData), and its cuts:
              subset, validation, held-out test split, training sample
  loaders     datasets by name (embedded, TFDS, IDX files) or path (a
              user's) -> ImageData, in memory or streamed
  inputs      ImageData's arrays -> tf.data pipelines (the training stream,
              a function of seed and step; evaluation batches)
  sources     a user's data: image folders, .npy/.npz, TFRecord files (a
              package: the shared reader and registry, a module per source)
  idx         the IDX file format, read and checked

runtime/      where and how a run runs
  hardware    what machine this is, and what `auto` picks on it
  measurements
              what `auto` rests on: bfloat16, steps per call and XLA
              measured per machine class, with their provenance
  bfloat16_guard
              the guard that decides, from a class's measured rows,
              whether a member trains in mixed_bfloat16
  plan        a run's decisions, made once at its start and recorded, and
              the one check that a model_dir holds the same run
  budget      the memory a run would need, before it is built
  distribute  tf.distribute strategies and the cluster bootstrap

model/
  models      the Keras model that combines the parts with a member's
              objective
  likelihood  the importance-weighted log-likelihood
  export      SavedModels with checked serving signatures

evaluation/   measuring a trained model
  metrics     the cheap test metrics (every epoch)
  probes      latent probes (scikit-learn k-NN, logistic regression)
  frechet     the classifier Frechet distance
  plots       matplotlib figures (returned; the command line saves them)

training/
  run         one run: prepare, build, fit, finish
  running     a run in progress: what prepare found and build made
  loop        the fit loop: Keras fit over the data stream, resumable at any
              step; stops on a non-finite loss, SIGTERM or a lost peer
  callbacks   Keras callbacks of a run, one job each
  rundir      a run directory's layout and records (config.json read once
              per start, data_info, metrics, history)
  checkpoints a run's checkpoints, restored so that they can be trusted
  lock        one writer per run directory
  trained     a trained run read back: its model and resolved member

experiment/   runs evaluated and compared
  evaluate    every metric of a run
  comparison  family members side by side over seeds: trained, evaluated,
              summarised with intervals, reported
  stats       means over seeds with t intervals, paired differences
  report      the comparison's HTML report

serving/      TF Serving's REST and gRPC APIs over an export directory,
              on KServe's model server (imports TensorFlow, never TFP)

The top: the public API
  api         the model as one Keras class per member, built from the
              data, with checked inputs; build
  loading     load: a trained model from a run directory or a .keras file
  pipeline    fit: the command line's training run from Python
              (checkpoints, exact resume, TensorBoard, plots, export)

The public API (`__all__`: `VAE`, `MMDVAE`, `InfoVAE`, `IWAE`, `Model`,
`build` from `api`; `load` from `loading`; `fit` from `pipeline`; the modules
`datasets`, `errors`, `plots`, i.e. `data.datasets`, `internal.errors`,
`evaluation.plots`) is loaded on first use, so `import tfp_vae`
does not import TensorFlow and the command lines check their flags before
it loads (docs/python.md).
"""

import importlib
from typing import Any

__version__ = '0.1.0'

_API = ('VAE', 'MMDVAE', 'InfoVAE', 'IWAE', 'Model', 'build')
_LOADING = ('load',)
_PIPELINE = ('fit',)
# The public modules, by where they live.
_MODULES = {'datasets': 'tfp_vae.data.datasets',
            'errors': 'tfp_vae.internal.errors',
            'plots': 'tfp_vae.evaluation.plots'}
__all__ = [*_API, *_LOADING, *_PIPELINE, *_MODULES, '__version__']


def __getattr__(name: str) -> Any:
  if name in _API:
    return getattr(importlib.import_module('tfp_vae.api'), name)
  if name in _LOADING:
    return getattr(importlib.import_module('tfp_vae.loading'), name)
  if name in _PIPELINE:
    return getattr(importlib.import_module('tfp_vae.pipeline'), name)
  if name in _MODULES:
    return importlib.import_module(_MODULES[name])
  raise AttributeError(f'module tfp_vae has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))
