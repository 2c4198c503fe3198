"""The Python API: one Keras model class per family member.

`VAE`, `MMDVAE`, `InfoVAE` and `IWAE` (and `build(name, **settings)` for any
registered member, plugins included) are `keras.Model`s that take the
member's and the model's settings as keyword arguments and build their
networks from the data's shape on first use:

>>> import numpy as np
>>> import tfp_vae
>>> (x_train, _), (x_test, _) = tfp_vae.datasets.load_data('mnist_5k')
>>> model = tfp_vae.VAE(latent_dim=2, beta=1.0)
>>> model.compile()                      # Adam(1e-3), the command line's
>>> history = model.fit(x_train[:200], batch_size=50, epochs=1, verbose=0)
>>> model.encode(x_test[:3]).mean().shape
TensorShape([3, 2])
>>> model.sample(4, seed=0).shape
(4, 28, 28, 1)
>>> model.elbo(x_test[:5]).shape
(5,)

They are the command line's model (`models.LatentVariableModel`, built
by `models.assemble`): the same networks, objective, metrics and
checkpoints, so `tfp_vae.load` (`tfp_vae.loading`) opens a run directory
that `trainers.train` wrote.
Images are checked where they enter (`check_images`): float32 in [0, 1] for
a Bernoulli likelihood, [N, H, W, C], the shape the model was built for.
"""

import dataclasses
from typing import Any, ClassVar, Optional

import keras
import numpy as np
import tensorflow as tf

from tfp_vae.family import components
from tfp_vae.config import groups as config_groups
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.model import likelihood as likelihood_lib
from tfp_vae.nn import losses
from tfp_vae.model import models
from tfp_vae.runtime import plan as plan_lib

PACKAGE = 'tfp_vae'
# ModelConfig's settings (the member's own come from `family`), and the seed.
MODEL_SETTINGS = tuple(f.name for f in dataclasses.fields(
    config_groups.ModelConfig) if f.name != 'member')
DEFAULT_LEARNING_RATE = config_groups.TrainerConfig().learning_rate
# Images per call where the API batches work itself.
BATCH = 500


def _config(member: str, settings: dict[str, Any], seed: int
            ) -> config_lib.TrainConfig:
  """The validated TrainConfig of a model's settings.

  Raises:
    ConfigError: a setting the member or the model does not have, or a bad
      value (naming it).
  """
  own = set(MODEL_SETTINGS) | {
      f.name for f in dataclasses.fields(family.get(member))}
  for key, value in settings.items():
    if key not in own and key not in family.all_settings():
      where = ('is a training setting: pass it to compile() or fit()'
               if any(key == f.name for fields in
                      config_groups.group_fields().values() for f in fields)
               else 'is not a setting of the model')
      raise errors.ConfigError(key, value, where)
  config = config_lib.TrainConfig.create(model=member, seed=seed, **settings)
  return config.validate()


def check_images(images: Any, binary: bool,
                 image_shape: Optional[tuple[int, ...]] = None,
                 what: str = 'images') -> np.ndarray:
  """`images` as float32 [N, H, W, C], checked: a floating dtype, finite,
  in [0, 1] for a likelihood of binary pixels (`binary`), 4 axes, and
  `image_shape` (H, W, C) when the model is built.

  Raises:
    InputError: one line naming the bad dtype, value or shape and the fix.
  """
  x = np.asarray(images)
  if x.dtype.kind in 'iub':
    low, high = (int(x.min()), int(x.max())) if x.size else (0, 0)
    raise errors.InputError(
        f'{what} are {x.dtype} (values {low}..{high}); the model takes '
        f'floats in [0, 1]: pass x.astype("float32") / 255')
  if x.dtype.kind != 'f':
    raise errors.InputError(f'{what} must be a float array, got dtype '
                            f'{x.dtype}')
  if x.ndim != 4:
    hint = (': add a channel axis with x[..., None]' if x.ndim == 3 else '')
    raise errors.InputError(
        f'{what} must be [N, height, width, channels], got shape '
        f'{tuple(x.shape)}{hint}')
  if image_shape is not None and tuple(x.shape[1:]) != tuple(image_shape):
    raise errors.InputError(
        f'{what} have shape {tuple(x.shape[1:])} per image, but the model '
        f'was built for {tuple(image_shape)}')
  if x.size:
    low, high = float(np.min(x)), float(np.max(x))
    if not (np.isfinite(low) and np.isfinite(high)):
      raise errors.InputError(f'{what} hold non-finite values (NaN or inf)')
    if binary and (low < 0.0 or high > 1.0):
      raise errors.InputError(
          f'{what} range over [{low:g}, {high:g}], but a Bernoulli '
          f'likelihood takes values in [0, 1]: divide by 255 (or choose '
          f"likelihood='gaussian')")
  return x.astype(np.float32, copy=False)


def _eager(value: Any) -> bool:
  """A value to check in Python: an array, or a tensor with a value (not
  one being traced in a tf.function or by Keras)."""
  if isinstance(value, np.ndarray):
    return True
  return isinstance(value, tf.Tensor) and tf.executing_eagerly() and (
      hasattr(value, 'numpy'))


@dataclasses.dataclass(frozen=True)
class Run:
  """A run directory a model was trained into (`tfp_vae.fit`) or loaded
  from (`tfp_vae.load`).

  Attributes:
    model_dir: its path.
    config: its TrainConfig (config.json).
    data_info: data_info.json: dataset, image_shape, class names, ...
    metrics: metrics.json (test metrics), {} when there is none.
  """
  model_dir: str
  config: config_lib.TrainConfig
  data_info: dict[str, Any]
  metrics: dict[str, Any]


@keras.saving.register_keras_serializable(package=PACKAGE)
class Model(models.LatentVariableModel):
  """A family member as a Keras model, built from the data on first use.

  `Model('vae', latent_dim=2, beta=4)` is `VAE(latent_dim=2, beta=4)`;
  the member classes below fix the first argument.

  Args:
    model: the member's name (`tfp_vae.family.members.names()`).
    seed: the seed of the weights and of the training noise (the global
      generators are left alone: `models.seeded`).
    name: the Keras name (default: the member's).
    **settings: the model's settings (likelihood, architecture, latent_dim,
      prior, prior_components, gaussian_scale; the command line's flags of
      the same names) and the member's own (`beta`, `mmd_weight`, `alpha`,
      `info_lambda`, `iwae_samples`, ...).

  Raises:
    ConfigError: an unknown setting or a bad value, named.
  """

  member_name: ClassVar[str] = ''

  def __init__(self, model: str = family.DEFAULT, *, seed: int = 0,
               name: Optional[str] = None, **settings: Any):
    config = _config(model, settings, seed)
    # The parts are built from the data's shape (`build`), so the base's
    # __init__, which takes them, is not called; these are its attributes.
    keras.Model.__init__(self, name=name or config.model.name)
    self.train_config = config
    self._settings = tuple(settings.items())
    self.member = config.model.member
    self.latent_dim = config.model.latent_dim
    self.seed = int(seed)
    self.terms = tuple(self.member.terms)
    self._trackers = {n: keras.metrics.Mean(name=n) for n in self.terms}
    self.image_shape: Optional[tuple[int, int, int]] = None
    self.run: Optional[Run] = None

  @property
  def binary(self) -> bool:
    """The likelihood models pixels in [0, 1] (Bernoulli)."""
    return components.LIKELIHOODS.get(
        self.train_config.model.likelihood).binary

  # -- building ----------------------------------------------------------

  def build(self, input_shape):
    shape = tuple(input_shape)
    if len(shape) != 4 or any(d is None for d in shape[1:]):
      hint = (': add a channel axis with x[..., None]' if len(shape) == 3
              else '')
      raise errors.InputError(
          f'images must be [N, height, width, channels], got shape '
          f'{shape}{hint}')
    image_shape = tuple(int(d) for d in shape[1:])
    try:
      the_plan = plan_lib.make(self.train_config, image_shape,
                               plan_lib.one_device(self.train_config,
                                                   'float32'))
    except errors.ConfigError as e:
      raise errors.InputError(f'images of shape {image_shape}: {e}') from e
    with models.seeded(self.seed):
      parts = models.assemble(self.train_config, the_plan)
      self.member = parts.member
      self.encoder, self.decoder, self.prior = (parts.encoder, parts.decoder,
                                                parts.prior)
      self.image_shape = image_shape
      self.call(tf.zeros([1, *image_shape]))
    models.finish(parts)

  def _checked(self, images: Any, what: str = 'images') -> Any:
    """`images` checked and the model built for them (arrays and eager
    tensors; traced tensors pass as they are)."""
    if not _eager(images):
      return images
    x = check_images(images, self.binary, self.image_shape, what)
    if self.image_shape is None:
      self.build((None, *x.shape[1:]))
    return x

  def _check_dataset(self, data: Any) -> None:
    """A tf.data dataset's element spec, checked before it trains."""
    spec = data.element_spec
    spec = spec[0] if isinstance(spec, tuple) else spec
    if not isinstance(spec, tf.TensorSpec):
      return
    if not spec.dtype.is_floating:
      raise errors.InputError(
          f'the dataset yields {spec.dtype.name} images; the model takes '
          f'floats in [0, 1]: map it with lambda x: tf.cast(x, tf.float32) '
          f'/ 255')
    if spec.shape.rank != 4:
      raise errors.InputError(
          f'the dataset yields images of shape {spec.shape}; the model '
          f'takes batches [N, height, width, channels]')
    if self.image_shape is None:
      self.build((None, *spec.shape[1:]))

  def _check_x(self, x: Any) -> Any:
    if isinstance(x, tf.data.Dataset):
      self._check_dataset(x)
      return x
    return self._checked(x)

  # -- Keras -------------------------------------------------------------

  def compile(self, optimizer: Any = None, **kwargs: Any) -> None:
    """Keras's compile; the optimizer defaults to the command line's
    (Adam, learning rate 1e-3).  No loss: the member's objective is the
    loss."""
    if optimizer is None:
      optimizer = keras.optimizers.Adam(DEFAULT_LEARNING_RATE)
    super().compile(optimizer=optimizer, **kwargs)

  def compile_from_config(self, config: dict[str, Any]) -> None:
    """What Keras does for a model whose compile it knows (its own refuses
    an overridden compile): `load_model` compiles the saved model again,
    its optimizer's state included."""
    self.compile(**keras.saving.deserialize_keras_object(config))
    if self.built:
      self.optimizer.build(self.trainable_variables)

  def fit(self, x: Any = None, y: Any = None, **kwargs: Any):
    """Keras's fit on images (an array or a tf.data dataset of batches),
    checked first (`check_images`); compiles with the default optimizer if
    `compile` was not called.  `y` is ignored (the images are the
    targets)."""
    del y
    x = self._check_x(x)
    if 'validation_data' in kwargs and _eager(kwargs['validation_data']):
      kwargs['validation_data'] = (self._checked(
          kwargs['validation_data'], 'validation images'),)
    if not self.compiled:
      self.compile()
    return super().fit(x, **kwargs)

  def evaluate(self, x: Any = None, y: Any = None, **kwargs: Any):
    """Keras's evaluate: the member's terms on `x` (checked)."""
    del y
    return super().evaluate(self._check_x(x), **kwargs)

  def predict(self, x: Any, **kwargs: Any):
    """Keras's predict: mean reconstructions of `x` (checked)."""
    return super().predict(self._check_x(x), **kwargs)

  def get_config(self) -> dict[str, Any]:
    settings = {k: list(v) if isinstance(v, tuple) else v
                for k, v in self._settings}
    out = {'name': self.name, 'seed': self.seed, **settings}
    if not self.member_name:
      out['model'] = self.train_config.model.name
    return out

  @classmethod
  def from_config(cls, config: dict[str, Any]) -> 'Model':
    return cls(**config)

  # -- distributions and what they give ---------------------------------

  def encode(self, images: Any):
    """q(z|x): a tfd distribution, batch shape [N], event [latent_dim]."""
    return super().encode(self._checked(images))

  def decode(self, codes: Any):
    """p(x|z): a tfd distribution, batch shape [N], event [H, W, C]."""
    if _eager(codes):
      z = np.asarray(codes, np.float32)
      if z.ndim != 2 or z.shape[1] != self.latent_dim:
        raise errors.InputError(
            f'codes must be [N, {self.latent_dim}] (latent_dim '
            f'{self.latent_dim}), got shape {tuple(z.shape)}')
      self._require_built('decode')
      codes = z
    return super().decode(codes)

  def _require_built(self, what: str) -> None:
    if self.image_shape is None:
      raise errors.InputError(
          f'{what} needs a built model: it is built from images on first '
          f'use (fit, encode or call it on images), or load a trained one')

  def sample(self, n: int, seed: Optional[int] = None) -> np.ndarray:
    """n images decoded from z ~ p(z): the likelihood's `mean()` (for
    `pixel_cnn`, the image generated feeding each pixel's probability
    forward: docs/models.md), float32 [n, H, W, C].  A seed makes the draw
    repeatable."""
    self._require_built('sample')
    prior = self.prior_distribution()
    codes = (prior.sample(n) if seed is None
             else prior.sample(n, seed=tf.constant([seed, 1], tf.int32)))
    return self.decode(codes).mean().numpy()

  def reconstruct(self, images: Any) -> np.ndarray:
    """Mean reconstructions E[p(x | z = E[q(z|x)])], float32 [N, H, W, C]."""
    x = self._checked(images)
    return np.concatenate([self(x[i:i + BATCH]).numpy()
                           for i in range(0, len(x), BATCH)] or [
                               np.zeros((0, *x.shape[1:]), np.float32)])

  def elbo(self, images: Any, num_samples: int = 1,
           seed: int = 0) -> np.ndarray:
    """The ELBO per image, log p(x|z) + log p(z) - log q(z|x) averaged over
    `num_samples` draws z ~ q(z|x), in nats: float64 [N].

    Raises:
      UndefinedError: the member's encoder is a point mass (the MMD-VAE),
        whose q(z|x) has no density.
    """
    encoder = components.ENCODERS.get(self.member.encoder)
    if not encoder.has_density:
      raise errors.UndefinedError(
          f'elbo is undefined for {self.member.name}: its encoder is a point '
          f'mass (q(z|x) has no density, so log q(z|x) and KL(q(z|x) || '
          f'p(z)) do not exist; TFP\'s KL of a point mass is -log p(z), '
          f'not a rate); use log_likelihood(x), which importance-samples '
          f'around the code')
    x = self._checked(images)
    out = []
    for b, start in enumerate(range(0, len(x), BATCH)):
      batch = tf.constant(x[start:start + BATCH])
      posterior = self.encode(batch)
      codes = posterior.sample(num_samples,
                               seed=tf.constant([seed, b], tf.int32))
      out.append(losses.elbo(self.log_weights(batch, posterior,
                                              codes)).numpy())
    return np.concatenate(out).astype(np.float64) if out else np.zeros(0)

  def log_likelihood(self, images: Any,
                     num_samples: int = likelihood_lib.DEFAULT_SAMPLES,
                     seed: int = 0,
                     proposal_scale: float = (
                         likelihood_lib.DEFAULT_PROPOSAL_SCALE)
                     ) -> np.ndarray:
    """The importance-weighted estimate of log p(x) with k = `num_samples`
    (the command line's test_iwae_log_likelihood; `tfp_vae.model.likelihood`),
    in nats: float64 [N].  A point-mass encoder's proposal is a Gaussian of
    scale `proposal_scale` around its code."""
    return likelihood_lib.iwae_log_likelihood(
        self, self._checked(images), num_samples, seed, proposal_scale)


def _member_class(member: str, class_name: str, doc: str) -> type:
  """The API class of a built-in member."""

  def __init__(self, *, seed: int = 0, name: Optional[str] = None,
               **settings: Any):
    Model.__init__(self, member, seed=seed, name=name, **settings)

  cls = type(class_name, (Model,), {
      '__init__': __init__, '__doc__': doc, 'member_name': member,
      '__module__': __name__})
  return keras.saving.register_keras_serializable(package=PACKAGE)(cls)


VAE = _member_class('vae', 'VAE', """The VAE (`objectives.VAE`): distortion +
  beta * rate, the ELBO at beta = 1.  Settings: beta, kl_estimator and the
  model's (see `Model`).""")
MMDVAE = _member_class('mmd_vae', 'MMDVAE', """The MMD-VAE
  (`objectives.MMDVAE`): a deterministic encoder, distortion + mmd_weight *
  MMD(q(z), p(z)).  Settings: mmd_weight, kernel, kernel_scales,
  unbiased_mmd and the model's (see `Model`).  It has no ELBO.""")
InfoVAE = _member_class('info_vae', 'InfoVAE', """The InfoVAE
  (`objectives.InfoVAE`).  Settings: alpha, info_lambda, kl_estimator, kernel,
  kernel_scales, unbiased_mmd and the model's (see `Model`).""")
IWAE = _member_class('iwae', 'IWAE', """The IWAE (`objectives.IWAE`): the
  k-sample importance-weighted bound.  Settings: iwae_samples and the
  model's (see `Model`).""")
BUILT_IN = {cls.member_name: cls for cls in (VAE, MMDVAE, InfoVAE, IWAE)}


def build(name: str, **settings: Any) -> Model:
  """The model of any registered member (`tfp_vae.family.members`, plugins
  included) with `settings` (see `Model`).

  Raises:
    ConfigError: an unknown member or setting, or a bad value.
  """
  if name in BUILT_IN:
    return BUILT_IN[name](**settings)
  return Model(name, **settings)
