"""An autoregressive likelihood: a decoder flexible enough to ignore its code.

`--likelihood=pixel_cnn`: p(x|z) = prod_i Bernoulli(x_i | x_<i, z), pixels
in raster order (van den Oord et al. 2016, "Conditional Image Generation
with PixelCNN Decoders"). The architecture's decoder network turns the code
into a map of logits, as for `--likelihood=bernoulli`; a stack of masked
convolutions over the image itself adds what the pixels above and to the
left say. With its output layer at zero it is the Bernoulli decoder; otherwise
it can model the image without the code, which is the regime where
the InfoVAE tutorial says the ELBO leaves the code uninformative.

Written in Keras 3 (masked kernels, as the paper's mask 'A' for the first
layer and 'B' after it), not with `tfd.PixelCNN`, whose network is built
with tf_keras and would not live inside this package's Keras 3 model (its
checkpoints, exact resume and SavedModel). The channels of one pixel are
modelled independently given the pixels before it.

The distribution a decoder returns has `log_prob` (one pass over the
image: training, the ELBO and the IWAE estimate), `sample(seed)` (one pass
per pixel) and `mean()`, which is not the distribution's mean (that needs
a sum over every image): it is the image generated pixel by pixel feeding
each pixel's probability forward, what the plots and the SavedModel's
`decode` and `sample` show.
"""

import weakref
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.nn import precision

tfd = tfp.distributions

# PixelCNNDecoder -> its generation loop as a tf.function, outside the
# layer so that Keras does not track it as a part of the model.
_GRAPHS = weakref.WeakKeyDictionary()

FILTERS = 32
HIDDEN_LAYERS = 4
FIRST_KERNEL = 7
HIDDEN_KERNEL = 3


def causal_mask(kernel: int, channels_in: int, filters: int,
                include_centre: bool) -> np.ndarray:
  """[kernel, kernel, in, out]: 1 where the kernel sees a pixel before the
  centre in raster order (and the centre itself with `include_centre`)."""
  mask = np.zeros((kernel, kernel, channels_in, filters), np.float32)
  centre = kernel // 2
  mask[:centre] = 1
  mask[centre, :centre + int(include_centre)] = 1
  return mask


class MaskedConv2D(keras.layers.Layer):
  """A 'same' convolution whose kernel is multiplied by `causal_mask`."""

  def __init__(self, filters: int, kernel: int, include_centre: bool,
               **kwargs):
    super().__init__(**kwargs)
    self.filters, self.kernel_size = filters, kernel
    self.include_centre = include_centre

  def build(self, input_shape):
    channels = int(input_shape[-1])
    self.kernel = self.add_weight(
        shape=(self.kernel_size, self.kernel_size, channels, self.filters),
        initializer='glorot_uniform', name='masked_kernel')
    self.bias = self.add_weight(shape=(self.filters,), initializer='zeros',
                                name='bias')
    self.mask = tf.constant(causal_mask(self.kernel_size, channels,
                                        self.filters, self.include_centre))

  def call(self, x):
    return tf.nn.conv2d(x, self.kernel * self.mask, 1, 'SAME') + self.bias


class PixelCNNDecoder(keras.layers.Layer):
  """codes -> `AutoregressiveBernoulli` over [H, W, C] (module doc)."""

  def __init__(self, network: keras.Model, image_shape: Sequence[int],
               filters: int = FILTERS, hidden_layers: int = HIDDEN_LAYERS,
               **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.image_shape = tuple(int(d) for d in image_shape)
    channels = self.image_shape[-1]
    # The distribution's own layers stay in float32, as every
    # distribution does under a 16-bit policy (`tfp_vae.precision`).
    self.first = MaskedConv2D(filters, FIRST_KERNEL, False, dtype='float32')
    self.context_in = keras.layers.Dense(filters, dtype='float32')
    self.hidden_layers = hidden_layers
    for i in range(hidden_layers):
      setattr(self, f'hidden_{i}', MaskedConv2D(filters, HIDDEN_KERNEL, True,
                                                dtype='float32'))
    self.out = MaskedConv2D(channels, 1, True, dtype='float32')

  @property
  def reach(self) -> int:
    """Rows above a pixel that its logits depend on."""
    return FIRST_KERNEL // 2 + self.hidden_layers * (HIDDEN_KERNEL // 2)

  def build(self, codes_shape):
    height, width, channels = self.image_shape
    self.first.build((None, height, width, channels))
    self.context_in.build((None, height, width, channels))
    for i in range(self.hidden_layers):
      getattr(self, f'hidden_{i}').build((None, height, width,
                                          self.first.filters))
    self.out.build((None, height, width, self.first.filters))

  def logits(self, images: tf.Tensor, context: tf.Tensor) -> tf.Tensor:
    """[B, H, W, C]: logit of each pixel given the pixels before it and the
    code's logit map `context`."""
    h = tf.nn.relu(self.first(images) + self.context_in(context))
    for i in range(self.hidden_layers):
      h = h + tf.nn.relu(getattr(self, f'hidden_{i}')(h))
    return context + self.out(h)

  def generate(self, context: tf.Tensor, seed=None) -> tf.Tensor:
    """[B, H, W, C] generated pixel after pixel from the code's logit map:
    each pixel's probability fed forward (`seed` None), or binary draws
    from a stateless seed pair.  Called eagerly, the loop runs as a graph
    traced once per decoder for means and once for draws, at any batch
    size (784 eager steps take several times longer)."""
    if not tf.executing_eagerly():
      return self._generate_loop(context, seed)
    if self not in _GRAPHS:
      # A weak reference: the cached functions must not keep the decoder
      # (its network, variables and graphs) alive.  Signatures with any
      # batch size: one trace each for the mean and for draws, whatever
      # the number of images asked.
      this = weakref.ref(self)
      images = tf.TensorSpec([None, *self.image_shape], tf.float32)
      _GRAPHS[self] = (
          tf.function(lambda context: this()._generate_loop(context, None),
                      input_signature=[images]),
          tf.function(lambda context, seed: this()._generate_loop(
              context, seed), input_signature=[
                  images, tf.TensorSpec([2], tf.int32)]))
    mean, draws = _GRAPHS[self]
    context = tf.convert_to_tensor(context, tf.float32)
    if seed is None:
      return mean(context)
    return draws(context, tf.cast(seed, tf.int32))

  def _generate_loop(self, context: tf.Tensor, seed) -> tf.Tensor:
    """Pixel (r, c)'s logits depend on rows r - reach .. r and columns
    c - reach .. c + reach only (the receptive field of the masked
    stack), so they are computed on that window, exactly."""
    height, width, channels = self.image_shape
    reach = self.reach

    def draw(logits, i):
      if seed is None:
        return tf.sigmoid(logits)
      u = tf.random.stateless_uniform(
          tf.shape(logits), seed=tf.random.experimental.stateless_fold_in(
              tf.cast(seed, tf.int32), i))
      return tf.cast(u < tf.sigmoid(logits), tf.float32)

    def body(i, x):
      row, col = i // width, i % width
      top, left = tf.maximum(row - reach, 0), tf.maximum(col - reach, 0)
      right = tf.minimum(col + reach + 1, width)
      logits = self.logits(
          x[:, top:row + 1, left:right],
          context[:, top:row + 1, left:right])[:, row - top, col - left]
      where = tf.reshape(tf.one_hot(i, height * width), [1, height, width, 1])
      return i + 1, x + where * draw(logits, i)[:, None, None, :]

    _, images = tf.while_loop(
        lambda i, _: i < height * width, body,
        [tf.constant(0), tf.zeros([tf.shape(context)[0], height, width,
                                   channels])])
    return images

  def call(self, codes: tf.Tensor) -> 'AutoregressiveBernoulli':
    return AutoregressiveBernoulli(
        self, precision.as_float32(self.network(codes)))


class AutoregressiveBernoulli(tfd.Distribution):
  """p(x|z) of `PixelCNNDecoder`: batch [B], event [H, W, C], binary
  pixels in raster order, each Bernoulli given the code's logit map
  `context` and the pixels before it."""

  def __init__(self, decoder: PixelCNNDecoder, context: tf.Tensor,
               validate_args: bool = False, allow_nan_stats: bool = True,
               name: str = 'AutoregressiveBernoulli'):
    parameters = dict(locals())
    with tf.name_scope(name) as name:
      self.decoder = decoder
      self.context = tf.convert_to_tensor(context, tf.float32)
      super().__init__(
          dtype=tf.float32,
          reparameterization_type=tfd.NOT_REPARAMETERIZED,
          validate_args=validate_args, allow_nan_stats=allow_nan_stats,
          parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict(context=tfp.util.ParameterProperties(event_ndims=3))

  def _batch_shape(self):
    return self.context.shape[:1]

  def _batch_shape_tensor(self):
    return tf.shape(self.context)[:1]

  def _event_shape(self):
    return tf.TensorShape(self.decoder.image_shape)

  def _event_shape_tensor(self):
    return tf.constant(self.decoder.image_shape, tf.int32)

  def _log_prob(self, images: tf.Tensor) -> tf.Tensor:
    """[B] nats; grey levels in [0, 1] count as soft labels, as for the
    Bernoulli likelihood."""
    images = tf.cast(images, tf.float32)
    logits = self.decoder.logits(images, self.context)
    return -tf.reduce_sum(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=images, logits=logits), axis=[1, 2, 3])

  def _mean(self) -> tf.Tensor:
    """The image fed its own pixel probabilities, pixel by pixel (module
    doc), [B, H, W, C] in [0, 1]."""
    return self.decoder.generate(self.context)

  def _sample_n(self, n, seed=None) -> tf.Tensor:
    """[n, B, H, W, C] binary images drawn pixel by pixel (stateless draws
    from `seed`)."""
    static = tf.get_static_value(n)
    if static is None:
      raise ValueError('AutoregressiveBernoulli.sample needs a number of '
                       'samples known when traced (a Python int)')
    n = int(static)
    if n == 0:
      return tf.zeros(tf.concat([[0], tf.shape(self.context)[:1],
                                 self.decoder.image_shape], 0))
    seeds = tfp.random.split_seed(
        tfp.random.sanitize_seed(seed, salt='AutoregressiveBernoulli'), n)
    return tf.stack([self.decoder.generate(self.context, seeds[k])
                     for k in range(n)])
