"""What the benchmarks share: fresh-process runs, the machine's matmul
FLOP/s, FLOPs of a traced function, peak memory, table printing, and, from
`tfp_vae.internal.testing` (the tests use them too), the plain training step
and the model server as a process.

Each measured run happens in a fresh Python process (`run_child`): TensorFlow
reads TF_ENABLE_ONEDNN_OPTS and its thread pools once per process, peak RSS
is per process, and one run's traced functions and allocator state do not
leak into the next.
"""

import json
import os
import resource
import subprocess
import sys
import time
from typing import Any, Optional

from tfp_vae.internal.testing import ServerProcess, plain_train_step  # pylint: disable=unused-import,g-bad-import-order

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
