"""The Keras model that combines encoder, decoder and prior with a family
member's objective (`tfp_vae.family.members`), and its builder.

`LatentVariableModel` owns the one place where per-example terms are reduced
to the scalar that is differentiated, and does it so that N replicas on a
global batch make the same update as one replica on that batch:

  loss_replica = sum_{i in replica} loss_i / global_batch
                 + batch_terms(global batch) / num_replicas

Gradients are summed over replicas by the optimizer, so the per-example part
sums to the global mean and each batch term (the MMD) counts once.  Terms that
couple examples (the MMD) are computed on the codes gathered from all
replicas, so the estimator does not change with the number of replicas.
The Monte-Carlo noise of a step is drawn for the global batch from a
stateless seed (seed, step) and sliced per replica, for the same reason.
"""

import contextlib
import dataclasses
import random
from typing import Iterator, Optional
import weakref

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.config import settings as config_lib
from tfp_vae.runtime import distribute
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.nn import losses
from tfp_vae.runtime import plan as plan_lib
from tfp_vae.nn import precision
from tfp_vae.internal import keras_internals as keras_internals
from tfp_vae.internal import tensorflow_internals as tf_internals

tfd = tfp.distributions


_FUNCTIONS = weakref.WeakKeyDictionary()  # model -> {name: tf.function}


def cached_function(model: keras.Model, name: str, build):
  """`build()`'s traced function, built once per (model, name), so that
  repeated evaluation (every epoch) does not retrace."""
  functions = _FUNCTIONS.setdefault(model, {})
  if name not in functions:
    functions[name] = build()
  return functions[name]


def _num_replicas() -> int:
  return tf.distribute.get_strategy().num_replicas_in_sync


def _replica_id() -> tf.Tensor:
  ctx = tf.distribute.get_replica_context()
  if ctx is None:
    return tf.constant(0)
  return tf.cast(ctx.replica_id_in_sync_group, tf.int32)


def _gather(values: tf.Tensor) -> tf.Tensor:
  """Concatenates `values` of all replicas along axis 0 (differentiable)."""
  if _num_replicas() == 1:
    return values
  return tf.distribute.get_replica_context().all_gather(values, axis=0)


def _global_slice_noise(seed: tf.Tensor, local_batch: tf.Tensor,
                        dim: int, samples: Optional[int] = None) -> tf.Tensor:
  """Standard-normal noise for this replica's slice of the global batch:
  [local_batch, dim], or [samples, local_batch, dim] (the same numbers as
  [local_batch, dim] when samples == 1)."""
  lead = [] if samples is None else [samples]
  noise = tf.random.stateless_normal(
      lead + [local_batch * _num_replicas(), dim], seed=seed)
  start = _replica_id() * local_batch
  return noise[..., start:start + local_batch, :]


class LatentVariableModel(keras.Model):
  """x -> q(z|x) -> z -> p(x|z) with a prior p(z), trained on `member`'s
  objective (a resolved `family.Member`).

  The member gives per-example terms (including 'loss') and batch terms
  (scalars over the global batch, already weighted); `objective` reduces
  them (module doc).  The terms are the metrics shown while training.
  """

  def __init__(self, member: family.Member, encoder: keras.layers.Layer,
               decoder: keras.layers.Layer, prior: keras.layers.Layer,
               latent_dim: int, seed: int = 0, **kwargs):
    super().__init__(**kwargs)
    self.member = member
    self.encoder = encoder
    self.decoder = decoder
    self.prior = prior
    self.latent_dim = latent_dim
    self.seed = int(seed)
    self.terms = tuple(member.terms)
    self._trackers = {name: keras.metrics.Mean(name=name)
                      for name in self.terms}

  # -- distributions -----------------------------------------------------

  def encode(self, images: tf.Tensor) -> tfd.Distribution:
    """q(z|x): batch shape [B], event shape [latent_dim]."""
    return self.encoder(images)

  def decode(self, codes: tf.Tensor) -> tfd.Distribution:
    """p(x|z): batch shape [B], event shape [H, W, C]."""
    return self.decoder(codes)

  def prior_distribution(self) -> tfd.Distribution:
    """p(z): batch shape [], event shape [latent_dim]."""
    return self.prior.distribution()

  def build(self, input_shape):
    # Sub-layers build on first use; one pass creates every weight (the
    # likelihood itself, not its mean: an autoregressive decoder's mean
    # generates pixel by pixel).
    self.decode(self.encode(tf.zeros([1, *input_shape[1:]])).mean())

  def call(self, images: tf.Tensor, training: bool = False) -> tf.Tensor:
    """Mean reconstruction E[p(x | z = E[q(z|x)])], [B, H, W, C]."""
    return self.decode(self.encode(images).mean()).mean()

  def sample_codes(self, posterior: tfd.Distribution,
                   seed: tf.Tensor, samples: Optional[int] = None
                   ) -> tf.Tensor:
    """Reparameterised z ~ q(z|x): [B, latent_dim], or [samples, B, latent].

    Gaussian posteriors are affine transforms of standard-normal noise (their
    own bijector); the noise is drawn for the global batch and sliced, so the
    draws do not depend on how the batch is split over replicas.
    """
    if isinstance(posterior, tfd.VectorDeterministic):
      return posterior.loc
    eps = _global_slice_noise(seed, tf.shape(posterior.mean())[0],
                              self.latent_dim, samples)
    return posterior.bijector.forward(eps)

  def log_weights(self, images: tf.Tensor, proposal: tfd.Distribution,
                  codes: tf.Tensor) -> tf.Tensor:
    """log p(x|z_i) + log p(z_i) - log r(z_i|x) at codes [k, B, latent]
    drawn from `proposal`: [k, B].  Reduced by `losses.elbo` (mean) or
    `losses.iwae_bound` (logsumexp) for training, evaluation and serving."""
    return losses.log_importance_weights(
        images, proposal, self.prior_distribution(), self.decode, codes)

  # -- objective ---------------------------------------------------------

  def objective(self, images: tf.Tensor, seed: tf.Tensor
                ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The scalar to differentiate on this replica, and per-term means.

    Returns:
      loss: this replica's share of the global objective (see module doc).
      logs: the replica-local mean of each per-example term and the value of
        each batch term; 'loss' is the local value of the whole objective.
    """
    per_example, codes = self.member.per_example(self, images, seed)
    batch_terms = (self.member.batch_terms(self, _gather(codes), seed)
                   if self.member.batch_term_names else {})
    local_batch = tf.cast(tf.shape(images)[0], tf.float32)
    global_batch = local_batch * _num_replicas()
    loss = tf.reduce_sum(per_example['loss']) / global_batch
    logs = {k: tf.reduce_mean(v) for k, v in per_example.items()}
    for name, value in batch_terms.items():
      loss += value / _num_replicas()
      logs['loss'] += value
      logs[name] = value
    return loss, logs

  def _step_seed(self, optimizer=None) -> tf.Tensor:
    """The step's noise seed: (seed, steps the optimizer has taken)."""
    optimizer = optimizer or self.optimizer
    step = tf.cast(optimizer.iterations, tf.int32)
    return tf.stack([tf.constant(self.seed, tf.int32), step])

  def _track(self, logs: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
    for name, value in logs.items():
      self._trackers[name].update_state(value)
    results = {name: t.result() for name, t in self._trackers.items()}
    if isinstance(tf.distribute.get_strategy(),
                  tf.distribute.MultiWorkerMirroredStrategy):
      # Keras 3.15's fit reduces step outputs with strategy.reduce(MEAN,
      # axis=0), which fails on scalars under this strategy; shape [1]
      # reduces to the same value.
      results = {name: tf.reshape(v, [1]) for name, v in results.items()}
    return results

  @property
  def metrics(self):
    return list(self._trackers.values())

  def train_step(self, data):
    images = data[0] if isinstance(data, (tuple, list)) else data
    with tf.GradientTape() as tape:
      loss, logs = self.objective(images, self._step_seed())
      # Multiplied by the loss scale under mixed_float16 (its
      # LossScaleOptimizer divides the gradients again); else unchanged.
      loss = self.optimizer.scale_loss(loss)
    variables = self.trainable_variables
    grads = tape.gradient(loss, variables)
    self.optimizer.apply_gradients(zip(grads, variables))
    return self._track(logs)

  def test_step(self, data):
    images = data[0] if isinstance(data, (tuple, list)) else data
    _, logs = self.objective(images, tf.constant([self.seed, -1], tf.int32))
    return self._track(logs)

  def make_train_function(self, force=False):
    """Keras's train function, except under a multi-replica strategy with
    several steps per call, where `distributed_multi_step` replaces it."""
    if self.train_function is not None and not force:
      return self.train_function
    if self.steps_per_execution > 1 and not self.run_eagerly and (
        distribute.replica_setup(self.distribute_strategy) != 'one device'):
      self.train_function = distributed_multi_step(
          self, self.train_step, self.steps_per_execution)
      return self.train_function
    return super().make_train_function(force=force)


def distributed_multi_step(model: keras.Model, step_fn, steps: int):
  """A Keras train function running up to `steps` steps of `step_fn` per
  call under `model.distribute_strategy`.

  Keras 3.15's own multi-step loop (`multi_step_on_iterator`) runs each
  `strategy.run` inside a `tf.cond`; under MirroredStrategy and
  MultiWorkerMirroredStrategy the optimizer's cross-replica update
  (`merge_call`) in that branch fails with "You must feed a value for
  placeholder tensor 'while/cond/Placeholder'" (keras-team/keras#19246).
  Here the while loop's own condition decides whether a step runs, and the
  body calls `strategy.run` unconditionally; only fetching the next batch is
  conditional.  The last call of an epoch runs the remaining steps.

  Returns:
    function(iterator) -> logs of the call's last step (the trackers' running
    means); raises StopIteration when the iterator is exhausted, as Keras's
    own train function does.
  """
  strategy = model.distribute_strategy

  def one_step(data):
    outputs = strategy.run(step_fn, args=(data,))
    # Scalars, as the loop carries them: a MultiWorkerMirroredStrategy
    # without a cluster (one local worker) leaves `_track`'s shape [1]
    # unreduced.
    return {name: tf.reshape(value, []) for name, value in
            keras_internals.reduce_per_replica(outputs, strategy).items()}

  @tf.function(reduce_retracing=True, autograph=False)
  def multi_step(iterator):
    def cond(i, next_inputs, _):
      return tf.logical_and(i < steps, next_inputs.has_value())

    def body(i, next_inputs, _):
      outputs = one_step(next_inputs.get_value())
      # Fetch only while this call has steps left, so no batch is lost
      # between calls.
      following = tf.cond(i + 1 < steps, iterator.get_next_as_optional,
                          lambda: next_inputs)
      return i + 1, following, outputs

    initial = {m.name: tf.zeros([], tf.float32) for m in model.metrics}
    done, _, outputs = tf.while_loop(
        cond, body, [tf.constant(0), iterator.get_next_as_optional(),
                     initial])
    return done, outputs

  def function(iterator):
    done, outputs = multi_step(iterator)
    if int(done) == 0:
      raise StopIteration
    return outputs

  return function


def in_float32(model: 'LatentVariableModel', config: config_lib.TrainConfig,
               the_plan: plan_lib.Plan) -> 'LatentVariableModel':
  """`model` computing in float32: `model` itself when it does, else the
  same model built in float32 holding `model`'s weights.

  16-bit compute (the plan's precision) is for training speed.  Test
  metrics, plots and SavedModels are computed in float32 on every machine:
  figures stay comparable between machines, and an export does not need
  16-bit units where it is served (bfloat16 is emulated, and far slower,
  on CPUs without them: docs/performance.md).  The weights are float32 either way.

  Why a second build and not the trained model switched to float32 in
  place: a Keras layer's compute dtype is its dtype policy, set when the
  layer is made (`precision.scope` in `assemble`), and `precision.apply`
  then sets the float32 parts layer by layer; every function already
  traced for the trained model (Keras's train, test and predict functions,
  `cached_function`'s evaluation and plots, run after each epoch) holds the
  16-bit graph and would keep computing in 16 bits.  Switching policies in
  place would have to reach every layer and every traced function, and the
  training model stays the checkpoint's (its optimizer's slots point at its
  variables).  A float32 run builds once: this returns `model` itself.
  """
  if the_plan.precision == 'float32':
    return model
  copy = build_model(config, seed=model.seed, the_plan=dataclasses.replace(
      the_plan, runtime=dataclasses.replace(the_plan.runtime,
                                            precision='float32')))
  copy.set_weights(model.get_weights())
  return copy


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
  """Runs the block with every generator seeded by `seed`
  (`keras.utils.set_random_seed`), and gives the generators back their
  state afterwards.

  Keras layers draw their initializers' seeds from Python's `random`; the
  weights a seed gives stay what they were when builders seeded the
  process, while a notebook's later draws (Python, NumPy, TensorFlow's op
  seeds, Keras's global generator) continue where they were.
  """
  saved_keras = keras_internals.global_seed_state()
  saved_python, saved_numpy = random.getstate(), np.random.get_state()
  # TensorFlow's global seed and the generator of its op seeds (what
  # `tf.random.set_seed` replaces).
  saved_tf = tf_internals.op_seed_state()
  try:
    keras.utils.set_random_seed(int(seed))
    yield
  finally:
    keras_internals.restore_global_seed_state(saved_keras)
    random.setstate(saved_python)
    np.random.set_state(saved_numpy)
    tf_internals.restore_op_seed_state(saved_tf)


@dataclasses.dataclass
class Parts:
  """What `assemble` builds: a model's layers and its resolved member."""
  member: family.Member
  encoder: keras.layers.Layer
  decoder: keras.layers.Layer
  prior: keras.layers.Layer
  networks: tuple[keras.layers.Layer, keras.layers.Layer]


def assemble(config: config_lib.TrainConfig, the_plan: plan_lib.Plan
             ) -> Parts:
  """The encoder, decoder and prior layers `config` describes for the
  plan's image shape and precision, and the plan's member.  Their weights
  are created when they are first called (in `seeded`, for weights that
  depend on the seed only)."""
  model_config, image_shape = config.model, the_plan.image_shape
  latent = model_config.latent_dim
  encoder_kind, likelihood, prior, architecture = the_plan.parts
  with precision.scope(the_plan.precision):
    encoder_net = architecture.encoder(image_shape,
                                       encoder_kind.outputs(latent))
    decoder_net = architecture.decoder(latent, image_shape)
  encoder = encoder_kind.layer(encoder_net, latent)
  decoder = likelihood.decoder(decoder_net, image_shape,
                               model_config.gaussian_scale)
  prior_layer = prior.layer(latent, model_config.prior_components, encoder,
                            image_shape)
  return Parts(the_plan.member, encoder, decoder, prior_layer,
               (encoder_net, decoder_net))


def finish(parts: Parts) -> None:
  """After the model's first call every layer has its weights, whichever
  way the architecture builds its stack: the precision policy's float32
  layers can be set."""
  for network, role in zip(parts.networks, ('encoder', 'decoder')):
    precision.apply(network, role)


def build_model(config: config_lib.TrainConfig,
                image_shape: Optional[tuple[int, int, int]] = None,
                seed: Optional[int] = None,
                the_plan: Optional[plan_lib.Plan] = None
                ) -> LatentVariableModel:
  """Builds (and builds the weights of) the model `config` describes.

  The process's random generators are left as they were (`seeded`).

  Args:
    config: a validated TrainConfig.
    image_shape: (H, W, C) of the data, when there is no plan.
    seed: the seed of the weights and of the training noise; defaults to
      the trainer's seed.
    the_plan: the run's plan (`tfp_vae.runtime.plan`): its resolved member,
      parts, image shape and precision.  Without one (a model built outside
      a run), `plan.make` makes one for this config and image shape on
      `plan.one_device`.

  Returns:
    A built, uncompiled LatentVariableModel whose `member` has its defaults
    resolved for the image shape.

  Raises:
    ConfigError: the architecture does not fit the image shape.
  """
  if the_plan is None:
    if image_shape is None:
      raise errors.ConfigError(
          'image_shape', image_shape,
          'must be given (H, W, C) when there is no plan')
    the_plan = plan_lib.make(config, image_shape)
  seed = config.trainer.seed if seed is None else seed
  with seeded(seed):
    parts = assemble(config, the_plan)
    model = LatentVariableModel(parts.member, parts.encoder, parts.decoder,
                                parts.prior, config.model.latent_dim,
                                seed=seed, name=config.model.name)
    model(tf.zeros((1,) + tuple(the_plan.image_shape)))
  finish(parts)
  return model
