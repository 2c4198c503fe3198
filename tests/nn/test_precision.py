"""The mixed-precision policy (tfp_vae/nn/precision.py): under each 16-bit
policy the hidden layers compute in 16 bits and every numerically sensitive
tensor is float32, for every member, likelihood, prior and architecture."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.helpers import allowed_combinations, covering
from tfp_vae.family import components
from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family
from tfp_vae.model import models
from tfp_vae.nn import precision

SEED = tf.constant([3, 4], tf.int32)
POLICIES = ('mixed_bfloat16', 'mixed_float16')


def _build(policy, combo=('vae', 'normal', 'bernoulli', 'conv')):
  model, prior, likelihood, arch = combo
  shape = (32, 32, 3) if arch == 'conv_deep' else (28, 28, 1)
  config = config_lib.TrainConfig.create(
      model=model, prior=prior, likelihood=likelihood, architecture=arch,
      prior_components=2, latent_dim=3, precision=policy).validate()
  return models.build_model(config, shape), shape


def _weighted(network):
  return [layer for layer in network.layers if layer.weights]


def test_every_registered_value_is_covered():
  combos = covering(allowed_combinations())
  for i, registered in enumerate((family.names(), components.PRIORS.names(),
                                  components.LIKELIHOODS.names(),
                                  components.ARCHITECTURES.names())):
    assert {c[i] for c in combos} == set(registered)


@pytest.mark.parametrize('policy', POLICIES)
@pytest.mark.parametrize('combo', covering(allowed_combinations()), ids='-'.join)
def test_sensitive_tensors_are_float32_under_mixed_precision(policy, combo):
  model, shape = _build(policy, combo)
  sixteen = policy.split('_')[1]
  where = (policy, combo)
  for network in (model.encoder.network, model.decoder.network):
    weighted = _weighted(network)
    # The hidden layers compute in 16 bits (the speed), the last layer
    # with weights and what follows it in float32 (the policy).
    assert weighted[0].compute_dtype == sixteen, (where, network.name)
    assert weighted[-1].compute_dtype == 'float32', (where, network.name)
    assert network.layers[-1].compute_dtype == 'float32', where
  assert all(v.dtype == tf.float32 for v in model.trainable_variables), where

  x = tf.constant(np.random.default_rng(0).uniform(
      size=(4,) + shape).astype(np.float32))
  posterior = model.encode(x)
  assert posterior.mean().dtype == tf.float32, where
  assert posterior.stddev().dtype == tf.float32, where  # the softplus scale
  codes = model.sample_codes(posterior, SEED)
  assert codes.dtype == tf.float32, where
  likelihood = model.decode(codes)
  assert likelihood.mean().dtype == tf.float32, where
  assert likelihood.log_prob(x).dtype == tf.float32, where
  # tfd.Independent's per-pixel distribution, or the PixelCNN's own.
  pixels = getattr(likelihood, 'distribution', likelihood)
  for name, value in pixels.parameters.items():
    if tf.is_tensor(value):
      assert value.dtype == tf.float32, (where, name)
  prior = model.prior_distribution()
  assert prior.log_prob(codes).dtype == tf.float32, where
  loss, logs = model.objective(x, SEED)
  assert loss.dtype == tf.float32, where
  for name, value in logs.items():  # rate, distortion, the MMD, ...
    assert value.dtype == tf.float32, (where, name)
  assert np.isfinite(float(loss)), where


@pytest.mark.parametrize('policy', POLICIES)
def test_without_the_outputs_part_the_last_layer_computes_in_16_bits(policy):
  """What the `outputs` part changes, so that a measurement of it
  (bench/train_throughput.py keep=) measures something."""
  with precision.keeping(['distributions']):
    model, _ = _build(policy)
  assert _weighted(model.decoder.network)[-1].compute_dtype == (
      policy.split('_')[1])
  posterior = model.encode(tf.zeros((2, 28, 28, 1)))
  assert posterior.mean().dtype == tf.float32  # still cast
  assert precision.kept() == precision.POLICY


def test_float32_is_untouched_and_unknown_parts_are_refused():
  model, _ = _build('float32')
  assert {layer.compute_dtype for layer in model.encoder.network.layers} == {
      'float32'}
  with pytest.raises(ValueError, match='unknown float32 part.*outputs'):
    with precision.keeping(['logits', 'distributions']):
      pass
  with pytest.raises(ValueError, match='distributions part cannot be'):
    with precision.keeping(['outputs']):
      pass


class _OneLayer(keras.layers.Layer):
  """A network that is one layer holding its own weights (no `layers`)."""

  def build(self, input_shape):
    self.kernel = self.add_weight(shape=(input_shape[-1], 4))

  def call(self, x):
    return x @ self.kernel


def _functional():
  x = keras.Input((3,))
  h = keras.layers.Dense(4, activation='relu')(x)
  out = keras.layers.Reshape((2, 2))(keras.layers.Dense(4)(h))
  return keras.Model(x, out)


def _nested():
  return keras.Sequential([keras.layers.Dense(4, activation='relu'),
                           keras.Sequential([keras.layers.Dense(4),
                                             keras.layers.Dense(2)])])


@pytest.mark.parametrize('make,kept', [
    # Built lazily (no Input): its layers get weights at the first call.
    (lambda: keras.Sequential([keras.layers.Dense(4, activation='relu'),
                               keras.layers.Dense(2)]), 1),
    (_functional, 2),   # the last Dense and the Reshape after it
    (_nested, 1),       # the inner stack's last Dense
])
def test_the_output_layer_is_found_however_the_stack_is_built(make, kept):
  with precision.scope('mixed_bfloat16'):
    network = make()
  network(np.ones((2, 3), np.float32))
  precision.apply(network)
  dtypes = [layer.compute_dtype for layer in _flat(network)]
  assert dtypes[-kept:] == ['float32'] * kept, dtypes
  assert dtypes[:-kept] == ['bfloat16'] * (len(dtypes) - kept), dtypes
  assert network(np.ones((2, 3), np.float32)).dtype == 'float32'


def _flat(network):
  for layer in network.layers:
    if isinstance(layer, keras.Model):
      yield from _flat(layer)
    else:
      yield layer


def test_a_network_without_layers_keeps_its_dtypes_and_says_so(caplog):
  with precision.scope('mixed_bfloat16'):
    network = _OneLayer(name='one_layer')
  network(np.ones((2, 3), np.float32))
  precision.apply(network)
  assert network.compute_dtype == 'bfloat16'
  assert 'no layer with weights found in network one_layer' in caplog.text


def _three_dense():
  return keras.Sequential([keras.layers.Dense(4, activation='relu'),
                           keras.layers.Dense(4, activation='relu'),
                           keras.layers.Dense(2)])


@pytest.mark.parametrize('parts,role,expected', [
    # Today's policy: the last layer only, whatever the role.
    (('outputs', 'distributions'), 'encoder',
     ['bfloat16', 'bfloat16', 'float32']),
    # The whole encoder.
    (('outputs', 'distributions', 'encoder'), 'encoder',
     ['float32', 'float32', 'float32']),
    (('outputs', 'distributions', 'encoder'), 'decoder',
     ['bfloat16', 'bfloat16', 'float32']),
    # The decoder's first layer with weights.
    (('outputs', 'distributions', 'decoder_input'), 'decoder',
     ['float32', 'bfloat16', 'float32']),
    (('distributions', 'decoder_input'), 'decoder',
     ['float32', 'bfloat16', 'bfloat16']),
    (('outputs', 'distributions', 'decoder_input'), 'encoder',
     ['bfloat16', 'bfloat16', 'float32']),
])
def test_the_measurable_parts_set_the_layers_they_name(parts, role,
                                                       expected):
  with precision.keeping(parts):
    with precision.scope('mixed_bfloat16'):
      network = _three_dense()
    network(np.ones((2, 3), np.float32))
    precision.apply(network, role)
  assert [layer.compute_dtype for layer in _flat(network)] == expected


@pytest.mark.parametrize('parts,encoder,decoder', [
    (('outputs', 'distributions', 'encoder'), 'all', 'last'),
    (('outputs', 'distributions', 'decoder_input'), 'last', 'first+last'),
])
def test_a_built_model_keeps_the_named_parts(parts, encoder, decoder):
  with precision.keeping(parts):
    model, _ = _build('mixed_bfloat16')
  found = {}
  for name, network in (('encoder', model.encoder.network),
                        ('decoder', model.decoder.network)):
    dtypes = [layer.compute_dtype for layer in _weighted(network)]
    found[name] = ('all' if set(dtypes) == {'float32'} else
                   'first+last' if dtypes[0] == dtypes[-1] == 'float32' and
                   'bfloat16' in dtypes else
                   'last' if dtypes[-1] == 'float32' and
                   dtypes[0] == 'bfloat16' else str(dtypes))
  assert found == {'encoder': encoder, 'decoder': decoder}
