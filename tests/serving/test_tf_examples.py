"""tf.Example bodies (tfp_vae/serving/tf_examples.py): examples and context
merged, and refused, as TF Serving does."""

import pytest
import tensorflow as tf

from tests.helpers import refused as _refused
from tfp_vae.serving import tf_examples


def test_examples_and_context_are_merged_as_tf_serving_does():
  signature, examples, context = tf_examples.parse_examples_body({
      'signature_name': 'regress', 'context': {'x': 1.0, 'tag': 'ctx'},
      'examples': [{}, {'x': 2.0, 'n': [1, 2], 'flag': True}]}, 'regress')
  assert signature == 'regress'
  tensor = tf_examples.serialized_examples(examples, context)
  parsed = tf.io.parse_example(tensor, {
      'x': tf.io.FixedLenFeature([1], tf.float32),
      'tag': tf.io.FixedLenFeature([1], tf.string),
      'n': tf.io.FixedLenFeature([2], tf.int64, default_value=[0, 0]),
      'flag': tf.io.FixedLenFeature([1], tf.int64, default_value=[0])})
  assert parsed['x'].numpy().tolist() == [[1.0], [2.0]]  # example wins
  assert parsed['tag'].numpy().tolist() == [[b'ctx'], [b'ctx']]
  assert parsed['n'].numpy().tolist() == [[0, 0], [1, 2]]
  assert parsed['flag'].numpy().tolist() == [[0], [1]]
  for body, message in (
      ({}, "needs 'examples'"), ({'examples': []}, 'empty list'),
      ({'examples': [3]}, 'example 0 must be a JSON object'),
      ({'examples': [{'x': [1, 2.5]}]}, "feature 'x' mixes int64 and float"),
      ({'examples': [{'x': None}]}, 'unexpected JSON type'),
      ({'examples': [{}], 'context': []}, "'context' must be a JSON object")):
    assert message in _refused(tf_examples.parse_examples_body, body,
                               'classify')
