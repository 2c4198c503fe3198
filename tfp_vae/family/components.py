"""The interchangeable parts of a model, declared without TensorFlow:
encoders q(z|x), likelihoods p(x|z), priors p(z) and network
architectures, each one registered class (`tfp_vae.internal.registry`).

A declaration states the properties generic code needs (whether a prior's
KL to a Gaussian has a closed form, whether a likelihood reads
--gaussian_scale, the image shapes an architecture takes, ...) and builds
its Keras layer on demand; the layers themselves live in `encoders`,
`decoders`, `priors` and `networks`, which import TensorFlow when a model
is built, not when a command line checks its flags.

A new part is one class:

  @components.PRIORS.register
  class Laplace(components.Prior):
    name = 'laplace'
    summary = 'independent Laplace(0, 1/sqrt(2)) units (variance 1)'
    def layer(self, latent_dim, components, encoder, image_shape):
      ...  # a Keras layer whose distribution() returns p(z)
"""

import math
from typing import Optional, Sequence

from tfp_vae.internal import errors
from tfp_vae.internal import registry

ImageShape = tuple[int, int, int]


# -- encoders -------------------------------------------------------------


class Encoder(registry.Registrable):
  """q(z|x) of a kind (`family.Member.encoder` names one).

  Attributes:
    has_density: q(z|x) has a density: log q(z|x), the ELBO and a VampPrior
      (a mixture of q(z|u_k)) exist.  A point mass has none.
  """
  has_density: bool = True

  def outputs(self, latent_dim: int) -> int:
    """Units of the encoder network's last layer."""
    raise NotImplementedError

  def layer(self, network, latent_dim: int):
    """The Keras layer: images -> a distribution (batch [B], event
    [latent])."""
    raise NotImplementedError


ENCODERS = registry.Registry('encoder', 'encoder', Encoder, 'gaussian')


@ENCODERS.register
class DiagonalGaussian(Encoder):
  name = 'gaussian'
  summary = 'N(mu(x), diag sigma(x)^2), softplus scale'
  has_density = True

  def outputs(self, latent_dim):
    return 2 * latent_dim

  def layer(self, network, latent_dim):
    from tfp_vae.nn import encoders  # pylint: disable=g-import-not-at-top
    return encoders.GaussianEncoder(network, latent_dim, name='encoder')


@ENCODERS.register
class PointMass(Encoder):
  name = 'point_mass'
  summary = 'a deterministic code f(x)'
  has_density = False

  def outputs(self, latent_dim):
    return latent_dim

  def layer(self, network, latent_dim):
    from tfp_vae.nn import encoders  # pylint: disable=g-import-not-at-top
    return encoders.DeterministicEncoder(network, latent_dim, name='encoder')


# -- likelihoods ----------------------------------------------------------


class Likelihood(registry.Registrable):
  """p(x|z) over whole images.

  Attributes:
    uses_scale: reads --gaussian_scale (a fixed pixel scale, or the starting
      value of a learned one).
    binary: models binary pixels, so --binarize may be used with it.
  """
  uses_scale: bool = False
  binary: bool = False

  def pixel_weight(self, scale: float) -> float:
    """w in -log p(x|z) = w * sum_pixels (x - x_hat)^2 + const: how one
    pixel's squared error counts (the default MMD weight keeps the articles'
    balance of reconstruction and MMD with it: `family`)."""
    raise NotImplementedError

  def decoder(self, network, image_shape: ImageShape, scale: float):
    """The Keras layer: codes -> a distribution over whole images (batch
    [B], event [H, W, C]): tfd.Independent(..., 3) of per-pixel ones, or
    an autoregressive one (`pixel_cnn`)."""
    raise NotImplementedError


LIKELIHOODS = registry.Registry('likelihood', 'likelihood', Likelihood,
                                'bernoulli')


@LIKELIHOODS.register
class Bernoulli(Likelihood):
  name = 'bernoulli'
  summary = 'Bernoulli logits per pixel (grey levels as soft labels)'
  binary = True

  def pixel_weight(self, scale):
    # The cross-entropy sum in place of the squared-error sum: the balance
    # of a Gaussian with s^2 = 1/2.
    del scale
    return 1.0

  def decoder(self, network, image_shape, scale):
    from tfp_vae.nn import decoders  # pylint: disable=g-import-not-at-top
    return decoders.BernoulliDecoder(network, name='decoder')


@LIKELIHOODS.register
class PixelCNN(Likelihood):
  name = 'pixel_cnn'
  summary = ('autoregressive Bernoulli: masked convolutions over the image '
             "on top of the architecture's logit map, a decoder flexible "
             'enough to model images without the code')
  binary = True

  def pixel_weight(self, scale):
    del scale
    return 1.0  # a cross-entropy sum, as the Bernoulli likelihood's

  def decoder(self, network, image_shape, scale):
    from tfp_vae.nn import pixelcnn  # pylint: disable=g-import-not-at-top
    return pixelcnn.PixelCNNDecoder(network, image_shape, name='decoder')


class _Gaussian(Likelihood):
  uses_scale = True

  def pixel_weight(self, scale):
    return 1.0 / (2.0 * scale**2)


@LIKELIHOODS.register
class Gaussian(_Gaussian):
  name = 'gaussian'
  summary = 'Gaussian of fixed scale --gaussian_scale around sigmoid means'

  def decoder(self, network, image_shape, scale):
    from tfp_vae.nn import decoders  # pylint: disable=g-import-not-at-top
    return decoders.GaussianDecoder(network, scale, name='decoder')


@LIKELIHOODS.register
class GaussianLearned(_Gaussian):
  name = 'gaussian_learned'
  summary = 'Gaussian with one learned scale'

  def decoder(self, network, image_shape, scale):
    from tfp_vae.nn import decoders  # pylint: disable=g-import-not-at-top
    return decoders.LearnedScaleGaussianDecoder(
        network, image_shape, scale, per_pixel=False, name='decoder')


@LIKELIHOODS.register
class GaussianPerPixel(_Gaussian):
  name = 'gaussian_per_pixel'
  summary = 'Gaussian with a learned scale per pixel'

  def decoder(self, network, image_shape, scale):
    from tfp_vae.nn import decoders  # pylint: disable=g-import-not-at-top
    return decoders.LearnedScaleGaussianDecoder(
        network, image_shape, scale, per_pixel=True, name='decoder')


# -- priors ---------------------------------------------------------------


class Prior(registry.Registrable):
  """p(z), a Keras layer whose `distribution()` has batch shape [] and
  event shape [latent_dim].

  Attributes:
    closed_form_kl: TFP has KL(q || p) in closed form for a Gaussian q
      (else the rate is the one-sample estimate log q(z|x) - log p(z)).
    needs_density: is built from q(z|x) (a VampPrior), so the member's
      encoder must have a density.
    uses_components: reads --prior_components.
  """
  closed_form_kl: bool = False
  needs_density: bool = False
  uses_components: bool = False

  def layer(self, latent_dim: int, components: int, encoder,
            image_shape: ImageShape):
    raise NotImplementedError

  def memory_bytes(self, latent_dim: int, components: int,
                   image_shape: ImageShape, codes_per_step: int,
                   encoder_activations: int) -> float:
    """Bytes of training memory the prior adds (`tfp_vae.runtime.budget`)."""
    del latent_dim, components, image_shape, codes_per_step
    del encoder_activations
    return 0.0


PRIORS = registry.Registry('prior', 'prior', Prior, 'normal')
# Bytes of a float32, and copies of a parameter during training (weights,
# gradients, Adam's two moments): `budget` uses the same.
FLOAT_BYTES = 4
PARAMETER_COPIES = 4


@PRIORS.register
class Normal(Prior):
  name = 'normal'
  summary = 'N(0, I)'
  closed_form_kl = True

  def layer(self, latent_dim, components, encoder, image_shape):
    from tfp_vae.nn import priors  # pylint: disable=g-import-not-at-top
    return priors.StandardNormalPrior(latent_dim, name='prior')


def _mixture_codes_bytes(codes: int, components: int, latent: int) -> float:
  """A mixture's log density and reparameterised samples hold [codes,
  components, latent] tensors, and their gradients."""
  return float(codes * components * (latent + 1)) * FLOAT_BYTES * 4


@PRIORS.register
class Mixture(Prior):
  name = 'mixture'
  summary = 'a learned mixture of --prior_components diagonal Gaussians'
  uses_components = True

  def layer(self, latent_dim, components, encoder, image_shape):
    from tfp_vae.nn import priors  # pylint: disable=g-import-not-at-top
    return priors.MixturePrior(latent_dim, components, name='prior')

  def memory_bytes(self, latent_dim, components, image_shape,
                   codes_per_step, encoder_activations):
    del image_shape, encoder_activations
    return (float(components * (2 * latent_dim + 1)) * FLOAT_BYTES *
            PARAMETER_COPIES +
            _mixture_codes_bytes(codes_per_step, components, latent_dim))


@PRIORS.register
class Vamp(Prior):
  name = 'vamp'
  summary = ('the VampPrior: a mixture of q(z|u_k) over --prior_components '
             'learned pseudo-inputs')
  needs_density = True
  uses_components = True

  def layer(self, latent_dim, components, encoder, image_shape):
    from tfp_vae.nn import priors  # pylint: disable=g-import-not-at-top
    return priors.VampPrior(encoder, image_shape, components, name='prior')

  def memory_bytes(self, latent_dim, components, image_shape,
                   codes_per_step, encoder_activations):
    # K pseudo-images (parameters) encoded every step.
    return float(components) * (
        math.prod(image_shape) * FLOAT_BYTES * PARAMETER_COPIES +
        encoder_activations * FLOAT_BYTES * 2) + _mixture_codes_bytes(
            codes_per_step, components, latent_dim)


# -- architectures ----------------------------------------------------------


class Architecture(registry.Registrable):
  """An encoder network and a decoder network.

  Attributes:
    shapes: the image shapes it takes, in words (help texts and errors).
  """
  shapes: str = 'any [H, W, C]'

  def refuses(self, image_shape: ImageShape) -> Optional[str]:
    """Why `image_shape` does not fit, or None when it does."""
    del image_shape
    return None

  def encoder(self, image_shape: ImageShape, output_units: int):
    """Keras stack [B, H, W, C] -> [B, output_units]."""
    raise NotImplementedError

  def decoder(self, latent_dim: int, image_shape: ImageShape):
    """Keras stack [B, latent] -> [B, H, W, C] (unconstrained outputs)."""
    raise NotImplementedError


ARCHITECTURES = registry.Registry('architecture', 'architecture',
                                  Architecture, 'conv')


def _divisible(image_shape: Sequence[int], by: int) -> Optional[str]:
  height, width = int(image_shape[0]), int(image_shape[1])
  if height % by or width % by:
    return (f'needs image height and width divisible by {by}, got '
            f'{tuple(int(d) for d in image_shape)}')
  return None


@ARCHITECTURES.register
class Conv(Architecture):
  name = 'conv'
  summary = ("the MMD-VAE article's convs 32, 64 and deconvs 64, 32 (3x3, "
             'stride 2); H and W divisible by 4')
  shapes = 'height and width divisible by 4, any channels'

  def refuses(self, image_shape):
    return _divisible(image_shape, 4)

  def encoder(self, image_shape, output_units):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_encoder(image_shape, output_units)

  def decoder(self, latent_dim, image_shape):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_decoder(latent_dim, image_shape, dense_channels=32)


@ARCHITECTURES.register
class ConvDense16(Architecture):
  name = 'conv_dense16'
  summary = ("the Keras VAE example's, with a dense-16 bottleneck; H and W "
             'divisible by 4')
  shapes = 'height and width divisible by 4, any channels'

  def refuses(self, image_shape):
    return _divisible(image_shape, 4)

  def encoder(self, image_shape, output_units):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_dense16_encoder(image_shape, output_units)

  def decoder(self, latent_dim, image_shape):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_decoder(latent_dim, image_shape, dense_channels=64,
                                 name='conv_dense16_decoder')


@ARCHITECTURES.register
class MLP(Architecture):
  name = 'mlp'
  summary = 'dense 128 (elu) both ways; any shape'
  shapes = 'any [H, W, C]'

  def encoder(self, image_shape, output_units):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.mlp_encoder(image_shape, output_units)

  def decoder(self, latent_dim, image_shape):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.mlp_decoder(latent_dim, image_shape)


@ARCHITECTURES.register
class ConvDeep(Architecture):
  name = 'conv_deep'
  summary = ('three strided convs (4x4), for 32x32 colour images; H and W '
             'divisible by 8')
  shapes = 'height and width divisible by 8, any channels'

  def refuses(self, image_shape):
    return _divisible(image_shape, 8)

  def encoder(self, image_shape, output_units):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_deep_encoder(image_shape, output_units)

  def decoder(self, latent_dim, image_shape):
    from tfp_vae.nn import networks  # pylint: disable=g-import-not-at-top
    return networks.conv_deep_decoder(latent_dim, image_shape)


def check_architecture(name: str, image_shape: ImageShape) -> None:
  """Refuses an architecture that cannot take `image_shape`, in one line
  naming one that can.

  Raises:
    ConfigError: for `architecture`.
  """
  reason = ARCHITECTURES.get(name)().refuses(image_shape)
  if reason is None:
    return
  fits = ARCHITECTURES.where(lambda cls: cls().refuses(image_shape) is None,
                             exclude=name)
  hint = (f'; --architecture={fits[0]} takes it' if fits else
          '; no registered architecture takes it')
  raise errors.ConfigError('architecture', name, f'{reason}{hint}')

