"""Decoders: networks -> likelihoods p(x|z) over whole images.

Each returns `tfd.Independent(..., reinterpreted_batch_ndims=3)`: batch shape
[B], event shape [H, W, C], so `log_prob(images)` is one number per image.

The articles' MMD-VAE minimises a mean squared error.  A Gaussian with fixed
scale s gives -log p(x|z) = sum((x - mu)^2) / (2 s^2) + D log(s sqrt(2 pi)),
so the squared error is this likelihood up to a factor and a constant; see
`components.Likelihood.pixel_weight` for how the MMD weight keeps the
articles' balance.
"""

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import precision

tfd = tfp.distributions


class Decoder(keras.layers.Layer):
  """p(x|z) = prod_pixels pixels(net(z)): `tfd.Independent` over [H, W, C]
  of the per-pixel distribution that `pixels` (or a subclass's
  `pixel_distribution`) builds from the network's float32 outputs.

  A likelihood declared elsewhere (`components.Likelihood.decoder`) can use
  this layer as it is: `Decoder(network, lambda out: tfd.Laplace(...))`.
  """

  def __init__(self, network: keras.Model, pixels=None, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self._pixels = pixels

  def pixel_distribution(self, outputs: tf.Tensor) -> tfd.Distribution:
    return self._pixels(outputs)

  def call(self, codes: tf.Tensor) -> tfd.Independent:
    return tfd.Independent(
        self.pixel_distribution(precision.as_float32(self.network(codes))),
        reinterpreted_batch_ndims=3)


class BernoulliDecoder(Decoder):
  """p(x|z) = prod_pixels Bernoulli(sigmoid(logits(z))).

  Parameterised by logits (numerically stable log_prob, as the source's
  sigmoid_cross_entropy_with_logits).  Grey-level pixels in [0, 1] are
  accepted as soft labels, which is what the articles train on.
  """

  def pixel_distribution(self, outputs):
    return tfd.Bernoulli(logits=outputs, dtype=tf.float32)


class GaussianDecoder(Decoder):
  """p(x|z) = prod_pixels N(sigmoid(net(z)), scale^2) with a fixed scale.

  The sigmoid keeps the mean in the pixel range [0, 1], as the source's
  MMD-VAE decoder does with its sigmoid output layer.
  """

  def __init__(self, network: keras.Model, scale: float, **kwargs):
    super().__init__(network, **kwargs)
    self.scale = float(scale)

  def pixel_distribution(self, outputs):
    loc = tf.sigmoid(outputs)
    return tfd.Normal(loc=loc, scale=tf.fill(tf.shape(loc), self.scale))


class LearnedScaleGaussianDecoder(Decoder):
  """p(x|z) = prod_pixels N(sigmoid(net(z)), s^2) with a learned scale s.

  `per_pixel=False`: one scale for every pixel (`gaussian_learned`);
  `per_pixel=True`: one scale per pixel and channel, shared over images
  (`gaussian_per_pixel`).  s = softplus(raw) + min_scale starts at
  `initial_scale`; the floor keeps the density bounded where pixels never
  vary (MNIST's borders), which would otherwise drive s to 0 and log p(x|z)
  to infinity.
  """

  def __init__(self, network: keras.Model, image_shape, initial_scale: float,
               per_pixel: bool, min_scale: float = 1e-2, **kwargs):
    super().__init__(network, **kwargs)
    self.min_scale = float(min_scale)
    self.per_pixel = per_pixel
    start = max(float(initial_scale) - self.min_scale, 1e-4)
    raw = float(np.log(np.expm1(start)))  # softplus^-1
    self.raw_scale = self.add_weight(
        shape=tuple(image_shape) if per_pixel else (),
        initializer=keras.initializers.Constant(raw), name='raw_scale')

  def scale(self) -> tf.Tensor:
    return tf.nn.softplus(self.raw_scale) + self.min_scale

  def pixel_distribution(self, outputs):
    loc = tf.sigmoid(outputs)
    return tfd.Normal(loc=loc, scale=tf.broadcast_to(self.scale(),
                                                     tf.shape(loc)))
