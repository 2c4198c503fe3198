"""One loaded version of a model (`Servable`): its signatures, their input
types, and running them.

Versions load with `tf.saved_model.load` (TF1 SavedModels too, whose
signatures it prunes out of the graph, or which run in a TF1 Session by
tensor name as TF Serving's session path runs them).  This module never
imports TensorFlow Probability.
"""

import os
import re
from typing import Any, Mapping, Optional

from absl import logging
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tfp_vae.internal import tensorflow_internals as tf_internals
from tfp_vae.serving import model_config
from tfp_vae.serving import status

CLASSIFY_METHOD = 'tensorflow/serving/classify'
REGRESS_METHOD = 'tensorflow/serving/regress'


def signature_error_message(error: tf.errors.OpError) -> str:
  """The signature's own message in a TensorFlow error, on one line.

  The in-graph checks (`tfp_vae.model.export`) fail with `tf.debugging.Assert`,
  whose error reads "Graph execution error: ... assertion failed:
  [<message>] [<data>] ... [[{{node ...}}]]"; this returns "<message>
  [<data>] ...".  Other errors give their first informative line.

  Args:
    error: raised by calling a signature.

  Returns:
    One line, e.g. "images must have values in [0, 1]; got min and max [2]
    [2]".
  """
  lines = [line.strip() for line in error.message.splitlines()]
  for line in lines:
    if line.startswith('assertion failed: '):
      # [message] [data] [data]: the message may hold brackets of its own,
      # the data items (shapes, scalars) do not.
      match = re.fullmatch(r'\[(.*?)\]((?: \[[^\[\]]*\])*)',
                           line[len('assertion failed: '):])
      if match:
        return match.group(1) + match.group(2)
  useful = [line for line in lines if line and not line.startswith((
      'Graph execution error', 'Detected at node', '<stack traces',
      '[[{{node'))]
  first = useful[0] if useful else type(error).__name__
  return re.sub(r'\s*\[Op:[^\]]*\]$', '', first)


def _signature_defs(path: str) -> dict[str, Any]:
  """The serving MetaGraph's SignatureDefs, as `saved_model_cli show` and
  TF Serving's metadata read them from saved_model.pb."""
  saved_model = saved_model_pb2.SavedModel()
  with tf.io.gfile.GFile(os.path.join(path, 'saved_model.pb'), 'rb') as f:
    saved_model.ParseFromString(f.read())
  graphs = [g for g in saved_model.meta_graphs
            if set(g.meta_info_def.tags) == {'serve'}] or [
                g for g in saved_model.meta_graphs
                if 'serve' in g.meta_info_def.tags]
  if not graphs:
    raise model_config.ServingError(
        f'{path}/saved_model.pb has no MetaGraph tagged "serve"')
  return dict(graphs[0].signature_def)


class Servable:
  """One loaded version: its SignatureDefs and signatures.

  Attributes:
    version: the version folder's number.
    path: the version folder.
    signature_defs: {name: SignatureDef proto} of saved_model.pb.
  """

  def __init__(self, version: int, path: str):
    """Loads the SavedModel in `path` (raises whatever loading raises).

    `tf.saved_model.load` first; a graph it cannot import (those of early
    TF 1.x releases, such as TF Serving's own half_plus_three, whose
    placeholders use the old "empty shape means unknown" convention) is
    loaded with the TF1 session loader, TF Serving's own path.
    """
    self.version = version
    self.path = path
    self.signature_defs = _signature_defs(path)
    self.loader = 'tf.saved_model.load'
    try:
      self._module = tf.saved_model.load(path, tags=['serve'])
      self._signatures = dict(self._module.signatures)
    except ValueError as e:
      logging.info('%s: tf.saved_model.load failed (%s); loading it with '
                   'the TF1 session loader', path, str(e).splitlines()[0])
      self._module = _SessionModel(path, self.signature_defs)
      self._signatures = self._module.signatures
      self.loader = 'tf.compat.v1.saved_model.loader'

  def signature_def(self, name: str):
    """The SignatureDef `name`.

    Raises:
      Status: INVALID_ARGUMENT, TF Serving's message plus the names there
        are.
    """
    found = self.signature_defs.get(name)
    if found is None or name not in self._signatures:
      raise status.invalid_argument(
          f'Serving signature name: "{name}" not found in signature def '
          f'(this model has: {", ".join(sorted(self._signatures))})')
    return found

  def input_dtypes(self, name: str) -> dict[str, tf.DType]:
    """{input name: dtype} of signature `name` (see `signature_def`)."""
    return {k: tf.as_dtype(v.dtype)
            for k, v in self.signature_def(name).inputs.items()}

  def run(self, name: str, arrays: Mapping[str, np.ndarray],
          output_filter: Optional[list[str]] = None
          ) -> dict[str, np.ndarray]:
    """Calls signature `name` on every one of its inputs.

    Args:
      name: e.g. 'serving_default'.
      arrays: {input name: array of the input's dtype}.
      output_filter: the outputs wanted (default: all).

    Returns:
      {output name: array}.

    Raises:
      Status: INVALID_ARGUMENT for an unknown signature or output, or the
        signature's own checks failing (their message); a TensorFlow error
        keeps its code (RESOURCE_EXHAUSTED, UNAVAILABLE, ...).
    """
    signature_def = self.signature_def(name)
    wanted = list(output_filter or [])
    for alias in wanted:
      if alias not in signature_def.outputs:
        raise status.invalid_argument(
            f'output tensor alias not found in signature: {alias} Outputs '
            f'expected to be in the set {{{",".join(sorted(signature_def.outputs))}}}.')
    if len(set(wanted)) != len(wanted):
      raise status.invalid_argument(
          f'duplicate output tensor alias in output_filter: {wanted}')
    try:
      outputs = self._signatures[name](
          **{k: tf.constant(v) for k, v in arrays.items()})
      if wanted:
        outputs = {k: outputs[k] for k in wanted}
    except tf.errors.OpError as e:
      raise status.from_tf_error(e.error_code, signature_error_message(e)
                                 ) from None
    except (TypeError, ValueError) as e:  # arguments the function refuses
      raise status.invalid_argument(
          f'signature {name!r} refused its inputs: '
          f'{str(e).splitlines()[0]}') from None
    return {k: t.numpy() for k, t in outputs.items()
            if not wanted or k in wanted}


class _SessionModel:
  """A SavedModel in a TF1 Session, its signatures run by tensor name as
  TF Serving's session path runs them.

  A request's value is fed whatever its shape, as TF Serving's C++
  Session::Run does: Python's Session.run refuses a feed whose shape
  differs from the tensor's static one (TF Serving's documented
  `{"instances": [1.0, 2.0, 5.0]}` on half_plus_three's [?, 1] input), so
  the session's run is called below that check.
  """

  def __init__(self, path: str, signature_defs: Mapping[str, Any]):
    self._graph = tf.Graph()
    self._session = tf.compat.v1.Session(graph=self._graph)
    tf.compat.v1.saved_model.loader.load(self._session, ['serve'], path)
    self.signatures = {name: self._signature(sd)
                       for name, sd in signature_defs.items()
                       if sd.inputs and sd.outputs}

  def _signature(self, signature_def):
    inputs = {k: self._graph.get_tensor_by_name(v.name)
              for k, v in signature_def.inputs.items()}
    names = sorted(signature_def.outputs)
    run = tf_internals.session_caller(
        self._session, inputs,
        [self._graph.get_tensor_by_name(signature_def.outputs[k].name)
         for k in names])

    def call(**arrays):
      return {k: tf.constant(v) for k, v in zip(names, run(**arrays))}

    return call
