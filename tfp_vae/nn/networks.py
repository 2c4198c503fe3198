"""Keras layer stacks: tensors in, tensors out.  No distributions here.

Which image shapes each stack takes is declared with its architecture
(`components.ARCHITECTURES`), which checks them before a stack is built.
"""

from typing import Sequence

import keras


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
                 dense_channels: int = 32,
                 name: str = 'conv_decoder') -> keras.Sequential:
  """The decoder network of the source documents, for any image size whose
  height and width are divisible by 4 (two stride-2 upsamplings).

  dense (H/4 * W/4 * dense_channels, relu) -> reshape -> deconv 64 (3x3,
  stride 2, same, relu) -> deconv 32 (3x3, stride 2, same, relu) -> deconv C
  (3x3, stride 1, same, linear).  Document 000 reshapes to 32 channels,
  document 003 to 64.  The output is unconstrained (logits); decoders map it
  to likelihood parameters.

  Args:
    latent_dim: size of the code z.
    image_shape: (height, width, channels) of the images to produce.
    dense_channels: channels of the reshaped dense output.
    name: Keras name of the stack.

  Returns:
    A `keras.Sequential` mapping [B, latent_dim] -> [B, H, W, C].
  """
  height, width, channels = image_shape
  return keras.Sequential([
      keras.layers.Input((latent_dim,)),
      keras.layers.Dense(height // 4 * width // 4 * dense_channels,
                         activation='relu'),
      keras.layers.Reshape((height // 4, width // 4, dense_channels)),
      keras.layers.Conv2DTranspose(64, 3, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(32, 3, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(channels, 3, strides=1, padding='same'),
  ], name=name)


def conv_dense16_encoder(image_shape: Sequence[int], output_units: int,
                         name: str = 'conv_dense16_encoder'
                         ) -> keras.Sequential:
  """The encoder of the source document 003: conv 32 and conv 64 (3x3,
  stride 2, 'same', relu) -> flatten -> dense 16 (relu) -> dense
  `output_units` (the 16-unit bottleneck before the code).  Its decoder is
  `conv_decoder` with 64 dense channels."""
  return keras.Sequential([
      keras.layers.Input(tuple(image_shape)),
      keras.layers.Conv2D(32, 3, strides=2, padding='same', activation='relu'),
      keras.layers.Conv2D(64, 3, strides=2, padding='same', activation='relu'),
      keras.layers.Flatten(),
      keras.layers.Dense(16, activation='relu'),
      keras.layers.Dense(output_units),
  ], name=name)


def mlp_encoder(image_shape: Sequence[int], output_units: int,
                hidden: int = 128, name: str = 'mlp_encoder'
                ) -> keras.Sequential:
  """The encoder of the source document 004: flatten -> dense 128 (elu) ->
  dense `output_units`."""
  return keras.Sequential([
      keras.layers.Input(tuple(image_shape)),
      keras.layers.Flatten(),
      keras.layers.Dense(hidden, activation='elu'),
      keras.layers.Dense(output_units),
  ], name=name)


def mlp_decoder(latent_dim: int, image_shape: Sequence[int],
                hidden: int = 128, name: str = 'mlp_decoder'
                ) -> keras.Sequential:
  """The decoder of the source document 004: dense 128 (elu) -> dense
  H * W * C (linear) -> reshape to the image."""
  units = 1
  for d in image_shape:
    units *= int(d)
  return keras.Sequential([
      keras.layers.Input((latent_dim,)),
      keras.layers.Dense(hidden, activation='elu'),
      keras.layers.Dense(units),
      keras.layers.Reshape(tuple(image_shape)),
  ], name=name)


def conv_deep_encoder(image_shape: Sequence[int], output_units: int,
                      name: str = 'conv_deep_encoder') -> keras.Sequential:
  """A deeper conv encoder for 32x32 colour images (CIFAR-10): conv 32, 64,
  128 (4x4, stride 2, same, relu; 32 -> 16 -> 8 -> 4) -> flatten -> dense
  256 (relu) -> dense `output_units`."""
  return keras.Sequential([
      keras.layers.Input(tuple(image_shape)),
      keras.layers.Conv2D(32, 4, strides=2, padding='same', activation='relu'),
      keras.layers.Conv2D(64, 4, strides=2, padding='same', activation='relu'),
      keras.layers.Conv2D(128, 4, strides=2, padding='same',
                          activation='relu'),
      keras.layers.Flatten(),
      keras.layers.Dense(256, activation='relu'),
      keras.layers.Dense(output_units),
  ], name=name)


def conv_deep_decoder(latent_dim: int, image_shape: Sequence[int],
                      name: str = 'conv_deep_decoder') -> keras.Sequential:
  """Mirror of `conv_deep_encoder`: dense 256, dense H/8 * W/8 * 128 (relu)
  -> deconv 128, 64, 32 (4x4, stride 2, same, relu) -> conv C (3x3)."""
  height, width, channels = image_shape
  return keras.Sequential([
      keras.layers.Input((latent_dim,)),
      keras.layers.Dense(256, activation='relu'),
      keras.layers.Dense(height // 8 * width // 8 * 128, activation='relu'),
      keras.layers.Reshape((height // 8, width // 8, 128)),
      keras.layers.Conv2DTranspose(128, 4, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(64, 4, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2DTranspose(32, 4, strides=2, padding='same',
                                   activation='relu'),
      keras.layers.Conv2D(channels, 3, padding='same'),
  ], name=name)
