"""Keras layer stacks: tensors in, tensors out.  No distributions here."""

from typing import Sequence

import keras

from tfp_vae import errors


def conv_encoder(image_shape: Sequence[int], output_units: int,
                 name: str = 'conv_encoder') -> keras.Sequential:
  """The encoder network of the source document 000.

  conv 32 (3x3, stride 2, relu) -> conv 64 (3x3, stride 2, relu) -> flatten ->
  dense `output_units` (linear).  Convolutions use Keras's default 'valid'
  padding, as the source does (28x28 -> 13x13 -> 6x6).

  Args:
    image_shape: (height, width, channels) of the input images.
    output_units: size of the final dense layer (2 * latent for a Gaussian
      encoder, latent for a deterministic one).
    name: Keras name of the stack.

  Returns:
    An unbuilt-free `keras.Sequential` mapping [B, H, W, C] -> [B, output_units].
  """
  return keras.Sequential([
      keras.layers.Input(tuple(image_shape)),
      keras.layers.Conv2D(32, 3, strides=2, activation='relu'),
      keras.layers.Conv2D(64, 3, strides=2, activation='relu'),
      keras.layers.Flatten(),
      keras.layers.Dense(output_units),
  ], name=name)


def conv_decoder(latent_dim: int, image_shape: Sequence[int],
                 name: str = 'conv_decoder') -> keras.Sequential:
  """The decoder network of the source document 000, for any image size.

  dense (H/4 * W/4 * 32, relu) -> reshape -> deconv 64 (3x3, stride 2, same,
  relu) -> deconv 32 (3x3, stride 2, same, relu) -> deconv C (3x3, stride 1,
  same, linear).  The output is unconstrained (logits); decoders map it to
  likelihood parameters.

  Args:
    latent_dim: size of the code z.
    image_shape: (height, width, channels) of the images to produce; height
      and width must be divisible by 4 (two stride-2 upsamplings).

  Returns:
    A `keras.Sequential` mapping [B, latent_dim] -> [B, H, W, C].

  Raises:
    ConfigError: if height or width is not divisible by 4.
  """
  height, width, channels = image_shape
  if height % 4 or width % 4:
    raise errors.ConfigError(
        'image_shape', tuple(image_shape),
        'must have height and width divisible by 4 for architecture conv')
  return keras.Sequential([
      keras.layers.Input((latent_dim,)),
      keras.layers.Dense(height // 4 * width // 4 * 32, activation='relu'),
      keras.layers.Reshape((height // 4, width // 4, 32)),
      keras.layers.Conv2DTranspose(64, 3, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(32, 3, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(channels, 3, strides=1, padding='same'),
  ], name=name)
