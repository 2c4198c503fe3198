"""What the benchmarks share: fresh-process runs, the machine's matmul
FLOP/s, FLOPs of a traced function, peak memory, table printing, the plain
training step and the model server as a process (the tests use the last two
as well: tests/helpers.py).

Each measured run happens in a fresh Python process (`run_child`): TensorFlow
reads TF_ENABLE_ONEDNN_OPTS and its thread pools once per process, peak RSS
is per process, and one run's traced functions and allocator state do not
leak into the next.
"""

import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from typing import Any, Optional
import urllib.error
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_RESULT = 'BENCH-RESULT '

def run_child(script: str, spec: dict[str, Any],
              env: Optional[dict[str, str]] = None,
              pythonpath: Optional[str] = None) -> dict[str, Any]:
  """Runs `script --child=<spec as JSON>` in a fresh process; its result.

  Args:
    script: the benchmark file (it handles --child by calling `report`).
    spec: what to measure, passed as JSON.
    env: extra environment variables (e.g. TF_ENABLE_ONEDNN_OPTS).
    pythonpath: import `tfp_vae` from this tree instead of this checkout
      (to measure an earlier commit side by side).

  Raises:
    RuntimeError: the child failed; its last lines of stderr are included.
  """
  full_env = dict(os.environ)
  full_env.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  full_env.update(env or {})
  full_env['PYTHONPATH'] = os.pathsep.join(
      p for p in (pythonpath or REPO, full_env.get('PYTHONPATH')) if p)
  proc = subprocess.run(
      [sys.executable, script, f'--child={json.dumps(spec)}'],
      env=full_env, capture_output=True, text=True, check=False)
  for line in proc.stdout.splitlines():
    if line.startswith(_RESULT):
      return json.loads(line[len(_RESULT):])
  tail = '\n'.join(proc.stderr.strip().splitlines()[-15:])
  raise RuntimeError(f'benchmark child {spec} exited {proc.returncode}:\n'
                     f'{tail}')

def report(result: dict[str, Any]) -> None:
  """Called by a child: hands `result` (plus peak RSS) to the parent."""
  result = dict(result, peak_rss_mb=peak_rss_mb())
  print(_RESULT + json.dumps(result), flush=True)

def peak_rss_mb() -> float:
  """This process's peak resident set size (Linux reports KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

def matmul_flops_per_second(n: int = 2048, seconds: float = 3.0) -> float:
  """FLOP/s of a float32 n x n matmul in a tf.function: the machine's
  practical peak for dense float32 work under this TensorFlow build."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  a = tf.random.normal([n, n])
  b = tf.random.normal([n, n])
  matmul = tf.function(tf.matmul)
  matmul(a, b).numpy()
  best = 0.0
  deadline = time.perf_counter() + seconds
  while time.perf_counter() < deadline:
    start = time.perf_counter()
    for _ in range(5):
      c = matmul(a, b)
    c.numpy()
    best = max(best, 5 * 2 * n**3 / (time.perf_counter() - start))
  return best

def flops_of(concrete_function) -> float:
  """Floating-point operations of one call of a traced function, as
  TensorFlow's profiler counts them (ops with registered FLOP statistics:
  convolutions and their gradients, matmuls, element-wise arithmetic)."""
  from tensorflow.python.profiler import model_analyzer  # pylint: disable=g-import-not-at-top
  from tensorflow.python.profiler import option_builder  # pylint: disable=g-import-not-at-top
  options = option_builder.ProfileOptionBuilder.float_operation()
  options['output'] = 'none'
  return float(model_analyzer.profile(
      concrete_function.graph, options=options).total_float_ops)

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

def default_train_variants(machine) -> list[str]:
  """What bench/train_throughput.py measures by default on `machine` (a
  `hardware.Machine`): the plain loop, and the trainer at the settings its
  auto decisions choose between there: 1 and 10 steps per call, XLA, and
  where the machine has 16-bit units (a GPU, or a CPU with AMX or AVX-512
  BF16) float32 against mixed_bfloat16 (and mixed_float16 on a GPU)."""
  variants = ['plain', 'trainer:spe=1', 'trainer', 'trainer:xla=on']
  if machine.gpus or machine.cpu_class in ('cpu-amx', 'cpu-avx512-bf16'):
    variants += ['trainer:precision=float32',
                 'trainer:precision=mixed_bfloat16']
  if machine.gpus:
    variants.append('trainer:precision=mixed_float16')
  return variants


def machine_line() -> str:
  """The machine the figures were measured on: CPU model, ISA, cores,
  GPUs, TensorFlow's version and whether its oneDNN kernels are on (as the
  trainers run it)."""
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '1')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  from tfp_vae.runtime import hardware  # pylint: disable=g-import-not-at-top
  machine = hardware.this_machine()
  return (f'Machine: {machine.describe()}; class {machine.cpu_class}; '
          f'TensorFlow {tf.__version__}, oneDNN '
          f'{"on" if _pywrap_util_port.IsMklEnabled() else "off"}; '
          f'--precision=auto picks '
          f'{hardware.decide_precision(machine)[0]} here.')


def print_table(header: list[str], rows: list[list[Any]]) -> None:
  print('| ' + ' | '.join(header) + ' |')
  print('|' + '---|' * len(header))
  for row in rows:
    print('| ' + ' | '.join(str(c) for c in row) + ' |')


def free_port(host: str = '127.0.0.1') -> int:
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
      self.rest_port, self.grpc_port = free_port(), free_port()
      while self.grpc_port == self.rest_port:
        self.grpc_port = free_port()
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
        cwd=REPO, stdout=self._log, stderr=subprocess.STDOUT)
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
