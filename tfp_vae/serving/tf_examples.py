"""TF Serving's classify and regress bodies: "examples" (a list of objects,
feature -> value or list) and an optional "context" shared by every
example; each becomes a serialized tf.Example, the context's features
merged in as TF Serving does (the serialized context, then the example).

Every refusal is a `status.Status` (INVALID_ARGUMENT) whose message names
the feature or example and shows the bad value.
"""

from typing import Any, Optional

import numpy as np
import tensorflow as tf

from tfp_vae.serving import codec
from tfp_vae.serving import status


def _feature(name: str, content: Any) -> tf.train.Feature:
  """One feature of an example: a value or a list of values of one kind."""
  feature = tf.train.Feature()
  kind = None
  for value in content if isinstance(content, list) else [content]:
    if isinstance(value, bool):
      this, value = 'int64_list', int(value)
    elif isinstance(value, int):
      if not -2**63 <= value < 2**63:
        raise status.invalid_argument(
            f'feature {name!r} has {value}, outside int64')
      this = 'int64_list'
    elif isinstance(value, float):
      this = 'float_list'
    elif isinstance(value, str):
      this, value = 'bytes_list', value.encode('utf-8')
    elif codec.is_b64(value):
      this, value = 'bytes_list', codec.b64_decode(name, value)
    else:
      raise status.invalid_argument(
          f'feature {name!r} has an element of unexpected JSON type: '
          f'{codec.preview(value)} (numbers, strings, booleans or '
          f'{{"b64": ...}})')
    if kind is not None and this != kind:
      raise status.invalid_argument(
          f'feature {name!r} mixes {kind.split("_")[0]} and '
          f'{this.split("_")[0]} values: {codec.preview(content)}')
    kind = this
    getattr(feature, this).value.append(value)
  return feature


def example_from_json(value: Any, where: str) -> tf.train.Example:
  """A JSON object (feature -> value or list) as a tf.Example.

  Raises:
    Status: not an object, or a feature of an unexpected kind.
  """
  if not isinstance(value, dict):
    raise status.invalid_argument(
        f'{where} must be a JSON object (feature -> value or list); got '
        f'{codec.preview(value)}')
  example = tf.train.Example()
  for name, content in value.items():
    example.features.feature[name].CopyFrom(_feature(name, content))
  return example


def parse_examples_body(body: Any, method: str
                        ) -> tuple[str, list[tf.train.Example],
                                   Optional[tf.train.Example]]:
  """A REST :classify or :regress body -> (signature name, examples,
  context or None).

  Raises:
    Status: INVALID_ARGUMENT: not an object, no "examples" list, an empty
      one, an example or context that is not an object of features.
  """
  signature = codec.signature_name_of(body)
  if 'examples' not in body:
    raise status.invalid_argument(
        f"a {method} request needs 'examples' (a list of objects, feature -> "
        f'value); got keys {sorted(body)}')
  examples = body['examples']
  if not isinstance(examples, list):
    raise status.invalid_argument(
        f"'examples' must be a list; got {codec.preview(examples)}")
  if not examples:
    raise status.invalid_argument("'examples' is an empty list")
  context = None
  if 'context' in body:
    context = example_from_json(body['context'], "'context'")
  return signature, [example_from_json(e, f'example {i}')
                     for i, e in enumerate(examples)], context


def serialized_examples(examples: list[tf.train.Example],
                        context: Optional[tf.train.Example]) -> np.ndarray:
  """The examples as the string tensor a classify or regress signature
  takes: each serialized after the context's serialization, so that the
  context's features are merged in (an example's own feature of the same
  name wins), as TF Serving does (servables/tensorflow/util.cc)."""
  prefix = context.SerializeToString() if context is not None else b''
  out = np.empty(len(examples), dtype=object)
  out[:] = [prefix + e.SerializeToString() for e in examples]
  return out
