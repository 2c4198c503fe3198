"""Keras models that combine encoder, decoder and prior into an objective.

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

from typing import Optional

import keras
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae import config as config_lib
from tfp_vae import decoders
from tfp_vae import encoders
from tfp_vae import losses
from tfp_vae import networks
from tfp_vae import priors

tfd = tfp.distributions


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
  """Base: x -> q(z|x) -> z -> p(x|z), with a prior p(z).

  Subclasses implement `_terms`, returning per-example terms (must include
  'loss') and batch terms (scalars over the global batch, already weighted),
  and list the names of both in `TERMS` or pass them as `terms` (the
  metrics shown while training).
  """

  TERMS = ('loss',)

  def __init__(self, encoder: keras.layers.Layer,
               decoder: keras.layers.Layer, prior: keras.layers.Layer,
               latent_dim: int, seed: int = 0,
               terms: Optional[tuple[str, ...]] = None, **kwargs):
    super().__init__(**kwargs)
    self.encoder = encoder
    self.decoder = decoder
    self.prior = prior
    self.latent_dim = latent_dim
    self.seed = int(seed)
    self.terms = tuple(terms or self.TERMS)
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
    # Sub-layers build on first use; one pass creates every weight.
    self.call(tf.zeros([1, *input_shape[1:]]))

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

  # -- objective ---------------------------------------------------------

  def _terms(self, images: tf.Tensor, seed: tf.Tensor
             ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    raise NotImplementedError

  def objective(self, images: tf.Tensor, seed: tf.Tensor
                ) -> tuple[tf.Tensor, dict[str, tf.Tensor]]:
    """The scalar to differentiate on this replica, and per-term means.

    Returns:
      loss: this replica's share of the global objective (see module doc).
      logs: the replica-local mean of each per-example term and the value of
        each batch term; 'loss' is the local value of the whole objective.
    """
    per_example, batch_terms = self._terms(images, seed)
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
    strategy = self.distribute_strategy
    if self.steps_per_execution > 1 and not self.run_eagerly and (
        strategy.num_replicas_in_sync > 1 or isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy)):
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
  # Keras's reduction of per-replica step outputs (mean over local replicas,
  # a collective mean across workers), as its own train function uses.
  from keras.src.backend.tensorflow.trainer import reduce_per_replica  # pylint: disable=g-import-not-at-top
  strategy = model.distribute_strategy

  def one_step(data):
    outputs = strategy.run(step_fn, args=(data,))
    return reduce_per_replica(outputs, strategy, reduction='auto')

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


def plain_train_step(model: LatentVariableModel,
                     optimizer: keras.optimizers.Optimizer):
  """A `tf.function` + `tf.GradientTape` step on `model.objective`, outside
  Keras fit, with the trainer's noise seeds: step(images) -> loss.

  The baseline bench/train_throughput.py measures the trainer against, and
  the loop tests/test_performance.py checks the trainer's updates against.
  """

  @tf.function
  def step(images):
    with tf.GradientTape() as tape:
      loss, _ = model.objective(images, model._step_seed(optimizer))  # pylint: disable=protected-access
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss
  return step


class InfoVAE(LatentVariableModel):
  """The InfoVAE objective (Zhao et al.), minimised:

    -E_q[log p(x|z)] + (1 - alpha) KL(q(z|x) || p(z))
                     + (alpha + lambda - 1) MMD(q(z), p(z))

  written here as distortion + rate_weight * rate + mmd_weight * MMD.  The
  VAE (rate_weight = beta, mmd_weight = 0) and the MMD-VAE (deterministic
  encoder, rate_weight = 0) are special cases.  The MMD compares the codes of
  the whole (global) batch with as many prior samples.
  """

  def __init__(self, *args, rate_weight: float = 1.0, mmd_weight: float = 0.0,
               kl_estimator: str = 'analytic', kernel: str = 'sources',
               kernel_scales: tuple[float, ...] = (),
               unbiased_mmd: bool = False, terms=None, **kwargs):
    if terms is None:
      terms = ('loss', 'distortion', 'rate', 'mmd')
    super().__init__(*args, terms=terms, **kwargs)
    self.rate_weight = float(rate_weight)
    self.mmd_weight = float(mmd_weight)
    self.kl_estimator = kl_estimator
    self.kernel = losses.make_kernel(kernel, tuple(kernel_scales))
    self.unbiased_mmd = bool(unbiased_mmd)

  def _terms(self, images, seed):
    posterior = self.encode(images)
    codes = self.sample_codes(posterior, seed)
    prior = self.prior_distribution()
    distortion = losses.distortion(self.decode(codes), images)
    per_example = {'loss': distortion, 'distortion': distortion}
    if 'rate' in self.terms:
      rate = losses.rate(posterior, prior, codes, self.kl_estimator)
      per_example['rate'] = rate
      per_example['loss'] = distortion + self.rate_weight * rate
    batch = {}
    if 'mmd' in self.terms:
      all_codes = _gather(codes)
      # The deterministic encoder draws no noise, so the step seed is free
      # for the prior; a Gaussian one used it for its codes.
      prior_seed = (seed if isinstance(posterior, tfd.VectorDeterministic)
                    else tfp.random.split_seed(seed, 2)[1])
      prior_samples = prior.sample(tf.shape(all_codes)[0], seed=prior_seed)
      batch['mmd'] = self.mmd_weight * losses.mmd(
          all_codes, prior_samples, self.kernel, self.unbiased_mmd)
    return per_example, batch


class VAE(InfoVAE):
  """Gaussian encoder, trained on distortion + beta * rate: the negative
  ELBO at beta = 1, the beta-VAE otherwise."""

  def __init__(self, *args, beta: float = 1.0, **kwargs):
    super().__init__(*args, rate_weight=beta, mmd_weight=0.0,
                     terms=('loss', 'distortion', 'rate'), **kwargs)


class MMDVAE(InfoVAE):
  """Deterministic encoder, trained on distortion + weight * MMD(q(z), p(z)),
  with the sources' Gaussian kernel by default."""

  def __init__(self, *args, mmd_weight: float = 1.0, **kwargs):
    super().__init__(*args, rate_weight=0.0, mmd_weight=mmd_weight,
                     terms=('loss', 'distortion', 'mmd'), **kwargs)


class IWAE(LatentVariableModel):
  """Gaussian encoder trained on the k-sample importance-weighted bound
  (Burda et al.):  loss = -log (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x),
  z_i ~ q(z|x).  k = 1 is the single-sample ELBO estimate."""

  TERMS = ('loss', 'neg_elbo')

  def __init__(self, *args, num_samples: int = 5, **kwargs):
    super().__init__(*args, **kwargs)
    self.num_samples = int(num_samples)

  def _terms(self, images, seed):
    posterior = self.encode(images)
    codes = self.sample_codes(posterior, seed, self.num_samples)
    log_w = losses.log_importance_weights(
        images, posterior, self.prior_distribution(), self.decode, codes)
    k = tf.cast(self.num_samples, log_w.dtype)
    return {'loss': -(tf.reduce_logsumexp(log_w, 0) - tf.math.log(k)),
            'neg_elbo': -tf.reduce_mean(log_w, 0)}, {}


class _dtype_policy:  # pylint: disable=invalid-name
  """Context: Keras layers built inside use `policy` (e.g. mixed_bfloat16);
  the global policy is restored on exit."""

  def __init__(self, policy: str):
    self.policy = policy
    self.previous = None

  def __enter__(self):
    self.previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(self.policy)

  def __exit__(self, *exc):
    keras.config.set_dtype_policy(self.previous)
    return False


def build_model(config: config_lib.TrainConfig,
                image_shape: tuple[int, int, int],
                seed: Optional[int] = None) -> LatentVariableModel:
  """Builds (and builds the weights of) the model `config` describes.

  Args:
    config: a validated TrainConfig.
    image_shape: (H, W, C) of the data.
    seed: weight-initialisation seed; defaults to config.seed.

  Returns:
    A built, uncompiled LatentVariableModel.

  Raises:
    ConfigError: the architecture does not fit the image shape.
  """
  seed = config.seed if seed is None else seed
  keras.utils.set_random_seed(seed)
  latent = config.latent_dim
  encoder_net, decoder_net = networks.ARCHITECTURES[config.architecture]
  gaussian = config.model in config_lib.GAUSSIAN_ENCODER_MODELS
  with _dtype_policy(config.precision):
    encoder_net = encoder_net(image_shape,
                              2 * latent if gaussian else latent)
    net = decoder_net(latent, image_shape)
  if gaussian:
    encoder = encoders.GaussianEncoder(encoder_net, latent, name='encoder')
  else:
    encoder = encoders.DeterministicEncoder(encoder_net, latent,
                                            name='encoder')
  if config.likelihood == 'bernoulli':
    decoder = decoders.BernoulliDecoder(net, name='decoder')
  elif config.likelihood == 'gaussian':
    decoder = decoders.GaussianDecoder(net, config.gaussian_scale,
                                       name='decoder')
  else:
    decoder = decoders.LearnedScaleGaussianDecoder(
        net, image_shape, config.gaussian_scale,
        per_pixel=config.likelihood == 'gaussian_per_pixel', name='decoder')
  prior = priors.make_prior(config.prior, latent, config.prior_components,
                            encoder=encoder, image_shape=image_shape)
  pixels = image_shape[0] * image_shape[1] * image_shape[2]
  common = dict(latent_dim=latent, seed=config.seed, name=config.model)
  mmd = dict(kernel=config.kernel, kernel_scales=config.kernel_scales,
             unbiased_mmd=config.unbiased_mmd)
  kl = config.resolved_kl_estimator()
  if config.model == 'vae':
    model = VAE(encoder, decoder, prior, beta=config.beta, kl_estimator=kl,
                **common)
  elif config.model == 'mmd_vae':
    model = MMDVAE(encoder, decoder, prior,
                   mmd_weight=config.resolved_mmd_weight(pixels), **mmd,
                   **common)
  elif config.model == 'info_vae':
    lam = config.resolved_info_lambda(pixels)
    model = InfoVAE(encoder, decoder, prior, rate_weight=1.0 - config.alpha,
                    mmd_weight=config.alpha + lam - 1.0, kl_estimator=kl,
                    **mmd, **common)
  else:
    model = IWAE(encoder, decoder, prior, num_samples=config.iwae_samples,
                 **common)
  model(tf.zeros((1,) + tuple(image_shape)))
  return model
