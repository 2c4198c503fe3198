"""tfp_vae: variational autoencoders on TensorFlow Probability.

Each module, one responsibility:

The boundary (no TensorFlow)
  config      typed, validated run settings (model, data, trainer, runtime;
              evaluation)
  checks      value checks that name the setting and show the bad value
  errors      the errors a user can cause
  registry    the one registration mechanism of the extension points, and
              the plugins (`tfp_vae.plugins` entry points) that extend it
  family      the members (VAE, MMD-VAE, InfoVAE, IWAE): settings, objective
              and what generic code needs of them
  components  the other parts, declared: encoders, likelihoods, priors,
              architectures
  specs       a member and its settings in one string (`vae:beta=4`), and
              where a comparison runs it
  stats       means over seeds with t intervals, paired differences
  plan        a run's decisions, made once at its start and recorded
  hardware    what machine this is, and what `auto` picks on it

The model library
  networks    Keras layer stacks, tensors in and out
  encoders    networks -> q(z|x) distributions
  decoders    networks -> p(x|z) likelihoods
  priors      p(z): standard normal, learned mixture, VampPrior
  losses      pure functions over distributions: rate, distortion, MMD, bounds
  precision   the mixed-precision policy: what stays float32 under 16-bit
              compute
  models      the Keras model that combines them with a member's objective

Running it
  datasets    named sets as float arrays in a fixed shuffled order
  data        datasets (embedded, TFDS, IDX files, a user's) -> tf.data
              pipelines, in memory or streamed
  sources     a user's data: image folders, .npy/.npz, TFRecord files
  idx         the IDX file format, read and checked
  budget      the memory a run would need, before it is built
  distribute  tf.distribute strategies and the cluster bootstrap
  callbacks   Keras callbacks of a run, one job each
  training    one run: prepare, build, fit, finish
  rundir      a run directory's layout, files and trained model
  files       files written whole or not at all, and interrupted writes'
              leftovers
  storage     a full, read-only or vanished storage named in one line, with
              the exit code that retries
  progress    progress lines for long steps
  faults      named fault points for tests (inert unless TFP_VAE_FAULT is set)
  testing     helpers for tests of the package and of plugins (undoing a
              registration)
  internals   the dependencies' internals the package uses, one module per
              dependency, each for want of a public API

Evaluating and serving it
  metrics     the cheap test metrics (every epoch)
  information mutual information, the aggregate posterior's KL to the
              prior, the code's gain, each unit's rate
  likelihood  the importance-weighted log-likelihood
  probes      latent probes (scikit-learn k-NN, logistic regression)
  frechet     the classifier Frechet distance
  evaluation  every metric of a run
  comparison  family members side by side over seeds: trained, evaluated,
              summarised with intervals, reported
  fanout      commands run k at a time as child processes
  plots       matplotlib figures (returned; the command line saves them)
  report      the comparison's HTML report
  export      SavedModels with checked serving signatures
  layout      an export directory's version folders (no TensorFlow)
  serving     TF Serving's REST and gRPC APIs over an export directory,
              on KServe's model server (imports TensorFlow, never TFP)
  api         the model as one Keras class per member, built from the
              data, with checked inputs; build, load (a run or a .keras
              file): the top of the public API
  pipeline    fit: the command line's training run from Python
              (checkpoints, exact resume, TensorBoard, plots, export)

The public API (`__all__`: `VAE`, `MMDVAE`, `InfoVAE`, `IWAE`, `Model`,
`build`, `load` from `api`; `fit` from `pipeline`; the modules
`datasets`, `errors`, `plots`) is loaded on first use, so `import tfp_vae`
does not import TensorFlow and the command lines check their flags before
it loads (docs/python.md).
"""

import importlib
from typing import Any

__version__ = '0.1.0'

_API = ('VAE', 'MMDVAE', 'InfoVAE', 'IWAE', 'Model', 'build', 'load')
_PIPELINE = ('fit',)
_MODULES = ('datasets', 'errors', 'plots')
__all__ = [*_API, *_PIPELINE, *_MODULES, '__version__']


def __getattr__(name: str) -> Any:
  if name in _API:
    return getattr(importlib.import_module('tfp_vae.api'), name)
  if name in _PIPELINE:
    return getattr(importlib.import_module('tfp_vae.pipeline'), name)
  if name in _MODULES:
    return importlib.import_module(f'tfp_vae.{name}')
  raise AttributeError(f'module tfp_vae has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(__all__))
