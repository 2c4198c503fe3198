"""Helpers for tests of the package and of plugins, and for the benchmarks
in bench/, not for training: undoing what a test registered, the plain
training step the trainer is compared against, and the model server as a
real process (`python -m trainers.serve`, started the same way by the bench
and the tests).

This module does not import TensorFlow at import.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from typing import Optional
import urllib.error
import urllib.request

from tfp_vae.internal import registry as registry_lib

# The folder holding tfp_vae/ and trainers/ (a checkout), where
# `python -m trainers.serve` runs.
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def unregister(registry: registry_lib.Registry, name: str) -> None:
  """Removes `name` from `registry` (a test that registered its own class
  leaves the registry as it found it)."""
  registry._entries.pop(name, None)  # pylint: disable=protected-access


def plain_train_step(model, optimizer, jit_compile: bool = False):
  """The baseline loop's step: a `tf.function` + `tf.GradientTape` step on
  `model.objective`, outside Keras fit, with the trainer's noise seeds:
  step(images) -> loss.  `jit_compile`: compiled by XLA."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  @tf.function(jit_compile=jit_compile)
  def step(images):
    seed = tf.stack([tf.constant(model.seed, tf.int32),
                     tf.cast(optimizer.iterations, tf.int32)])
    with tf.GradientTape() as tape:
      loss, _ = model.objective(images, seed)
    grads = tape.gradient(loss, model.trainable_variables)
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss
  return step


def _free_port(host: str = '127.0.0.1') -> int:
  with socket.socket() as s:
    s.bind((host, 0))
    return s.getsockname()[1]


class ServerProcess:
  """`python -m trainers.serve` as a real process, its log in a file, ready
  when it returns (the bench and the tests start it the same way).

  Args:
    export_dir: --export_dir (None: `flags` name the models).
    log_path: where its stdout and stderr go.
    *flags: more of its flags.
    ready: the models to wait for (default: export_dir's name).
    defaults: no --host or port flags, as a user runs it (ports 8501 and
      8500 on every interface); else 127.0.0.1 on free ports.
    timeout: seconds to wait for readiness.

  Raises:
    RuntimeError: it exited, or was not ready in time (with its log's tail).
  """

  def __init__(self, export_dir: Optional[str], log_path: str, *flags: str,
               ready: Optional[list[str]] = None, defaults: bool = False,
               timeout: float = 240):
    if defaults:
      self.rest_port, self.grpc_port = 8501, 8500
    else:
      self.rest_port, self.grpc_port = _free_port(), _free_port()
      while self.grpc_port == self.rest_port:
        self.grpc_port = _free_port()
      flags = ('--host=127.0.0.1', f'--rest_api_port={self.rest_port}',
               f'--grpc_port={self.grpc_port}', *flags)
    if export_dir is not None:
      flags = (f'--export_dir={export_dir}', *flags)
    self.url = f'http://127.0.0.1:{self.rest_port}'
    self.grpc = f'127.0.0.1:{self.grpc_port}'
    self.log_path = log_path
    self._log = open(log_path, 'w')  # pylint: disable=consider-using-with
    self.proc = subprocess.Popen(  # pylint: disable=consider-using-with
        [sys.executable, '-m', 'trainers.serve', *flags],
        cwd=CHECKOUT, stdout=self._log, stderr=subprocess.STDOUT)
    for name in ready or [os.path.basename(export_dir)]:
      self._wait_ready(name, timeout)

  def log(self) -> str:
    with open(self.log_path) as f:
      return f.read()

  def _wait_ready(self, name: str, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
      if self.proc.poll() is not None:
        raise RuntimeError(f'server exited with {self.proc.returncode}:\n'
                           f'{self.log()[-3000:]}')
      try:
        with urllib.request.urlopen(f'{self.url}/v2/models/{name}/ready',
                                    timeout=5) as reply:
          if reply.status == 200:
            return
      except (urllib.error.URLError, ConnectionError, TimeoutError):
        pass
      time.sleep(0.2)
    self.stop()
    raise RuntimeError(f'server not ready in {seconds:g} s:\n'
                       f'{self.log()[-3000:]}')

  def stop(self) -> int:
    """SIGTERM, then SIGKILL after 60 s; returns its exit code."""
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(60)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self._log.close()
    return self.proc.returncode
