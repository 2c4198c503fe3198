"""The encoder and decoder networks (tfp_vae/nn/networks.py)."""

from tfp_vae.nn import networks


def test_conv_network_is_the_sources_network():
  enc = networks.conv_encoder((28, 28, 1), 4)
  dec = networks.conv_decoder(2, (28, 28, 1))
  # conv 3x3x1x32, conv 3x3x32x64, dense 6*6*64 -> 4; dense 2 -> 7*7*32,
  # deconvs 3x3x32x64, 3x3x64x32, 3x3x32x1.
  assert enc.count_params() == (9 * 32 + 32) + (9 * 32 * 64 + 64) + (
      6 * 6 * 64 * 4 + 4)
  assert dec.count_params() == (2 * 1568 + 1568) + (9 * 32 * 64 + 64) + (
      9 * 64 * 32 + 32) + (9 * 32 + 1)
  assert [l.output.shape[1:] for l in enc.layers[:2]] == [(13, 13, 32),
                                                          (6, 6, 64)]
