"""The local model server (trainers.serve) under load, end to end.

Trains a small run and exports it with `trainers.train`, starts
`python -m trainers.serve` on 127.0.0.1, and for every signature and
protocol (TF Serving's :predict, KServe V2's infer) drives it over REST
from 1, 8 and 32 concurrent clients (threads, one keep-alive
connection each) for a fixed time: requests/s, p50 and p99 latency, the
error count (expected 0) and the server's resident memory at the start and
the end of each run.  Beside each row, the same signature called in
process by as many threads (`tf.saved_model.load` in a fresh process,
benchlib): what TensorFlow alone does at that concurrency on these cores,
so the table shows what HTTP, JSON and the server add.  Last, `trainers.export`
writes a second version and the bench measures the seconds from its folder
appearing to the server answering with it (gRPC's PredictResponse names the
version that answered).

Every request targets 127.0.0.1; each run is bounded by --seconds and
--max_requests, each request by --request_timeout.  The clients share the
machine's cores with the server, as a sidecar or a node-local client would.

  python bench/serving_load.py --seconds=10
"""

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # pylint: disable=g-import-not-at-top,wrong-import-position

flags.DEFINE_float('seconds', 10.0, 'Duration of each (signature, clients) '
                   'run.')
flags.DEFINE_list('concurrency', ['1', '8', '32'], 'Concurrent clients.')
flags.DEFINE_list('protocols', ['v1', 'v2'], "v1: TF Serving's :predict "
                  "(row format; columnar for sample); v2: KServe V2's infer "
                  '(JSON tensors).')
flags.DEFINE_list('signatures', ['encode', 'decode', 'reconstruct', 'sample',
                                 'log_likelihood'], 'Signatures to drive.')
flags.DEFINE_integer('batch', 1, 'Images (codes, samples) per request.')
flags.DEFINE_integer('max_requests', 50000, 'Cap on requests per run.')
flags.DEFINE_float('request_timeout', 30.0, 'Seconds per request.')
flags.DEFINE_float('in_process_seconds', 3.0, 'Duration of each in-process '
                   '(signature, threads) run.')
flags.DEFINE_integer('exports', 3, 'New versions to time from '
                     'trainers.export to being served.')
flags.DEFINE_string('child', None, 'Internal: run one in-process timing.')
FLAGS = flags.FLAGS

HOST = '127.0.0.1'
MODEL = 'vae'


def _rss_mb(pid: int) -> float:
  with open(f'/proc/{pid}/status') as f:
    return int(re.search(r'VmRSS:\s+(\d+) kB', f.read()).group(1)) / 1024.0


def _machine() -> str:
  try:
    text = subprocess.run(['lscpu'], capture_output=True, text=True,
                          check=True).stdout
    model = re.search(r'Model name:\s+(.+)', text).group(1).strip()
  except (OSError, subprocess.CalledProcessError, AttributeError):
    model = 'unknown CPU'
  load = os.getloadavg()[0]
  return (f'{model}, {os.cpu_count()} cores, load average {load:.1f} at '
          'the start')


def _inputs(signature: str, batch: int, latent_dim: int) -> dict:
  """The same request values for the server and the in-process calls."""
  from tfp_vae.data import inputs  # pylint: disable=g-import-not-at-top
  from tfp_vae.data import loaders  # pylint: disable=g-import-not-at-top
  if signature == 'sample':
    return {'num_samples': batch, 'seed': 0}
  if signature == 'decode':
    codes = np.random.default_rng(0).normal(size=(batch, latent_dim))
    return {'codes': codes.astype(np.float32)}
  d = loaders.load_mnist_5k()
  return {'images': inputs.eval_images(d.test_images[:batch])}


# -- the in-process baseline (a fresh process, benchlib) -----------------------


def _in_process(spec: dict) -> dict:
  """{signature: {threads: [calls/s, p50 ms, p99 ms]}} of direct calls."""
  import gc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  signatures = tf.saved_model.load(spec['path']).signatures
  gc.collect()
  gc.freeze()  # as the server does
  out = {}
  for name in spec['signatures']:
    values = _inputs(name, spec['batch'], spec['latent_dim'])
    args = {k: tf.constant(v, tf.int64 if name == 'sample' else tf.float32)
            for k, v in values.items()}
    call = lambda: signatures[name](**args)  # pylint: disable=cell-var-from-loop
    for _ in range(5):
      call()
    out[name] = {}
    for threads in spec['concurrency']:
      ms, lock = [], threading.Lock()
      deadline = time.perf_counter() + spec['seconds']

      def worker():
        mine = []
        while time.perf_counter() < deadline:
          start = time.perf_counter()
          call()  # pylint: disable=cell-var-from-loop
          mine.append((time.perf_counter() - start) * 1e3)
        with lock:
          ms.extend(mine)

      pool = [threading.Thread(target=worker) for _ in range(threads)]
      start = time.perf_counter()
      for t in pool:
        t.start()
      for t in pool:
        t.join()
      rate = len(ms) / (time.perf_counter() - start)
      out[name][str(threads)] = [rate, float(np.percentile(ms, 50)),
                                 float(np.percentile(ms, 99))]
  return out


# -- the server and its clients ------------------------------------------------


def _body(protocol: str, signature: str, values: dict) -> tuple[str, bytes]:
  """(path, JSON body) of one request in `protocol`."""
  if protocol == 'v2':
    inputs = []
    for name, value in sorted(values.items()):
      array = np.asarray(value)
      inputs.append({'name': name, 'shape': list(array.shape),
                     'datatype': 'INT64' if array.dtype.kind in 'iu'
                                 else 'FP32',
                     'data': array.reshape(-1).tolist()})
    return (f'/v2/models/{MODEL}/infer', json.dumps({
        'inputs': inputs,
        'parameters': {'signature_name': signature}}).encode())
  if signature == 'sample':
    body = {'signature_name': signature, 'inputs': values}
  else:
    body = {'signature_name': signature,
            'instances': next(iter(values.values())).tolist()}
  return f'/v1/models/{MODEL}:predict', json.dumps(body).encode()


def _drive(port: int, path: str, body: bytes, clients: int, seconds: float,
           max_requests: int, timeout: float) -> dict:
  """`clients` threads POST `body` until `seconds` pass or `max_requests`
  were sent; latencies in ms of successful requests, and the errors."""
  latencies, errors = [], []
  lock = threading.Lock()
  sent = [0]
  deadline = time.perf_counter() + seconds
  headers = {'Content-Type': 'application/json'}

  def client():
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    mine = []
    while time.perf_counter() < deadline:
      with lock:
        if sent[0] >= max_requests:
          break
        sent[0] += 1
      start = time.perf_counter()
      try:
        connection.request('POST', path, body, headers)
        reply = connection.getresponse()
        payload = reply.read()
        if reply.status == 200:
          mine.append((time.perf_counter() - start) * 1e3)
        else:
          with lock:
            errors.append(f'HTTP {reply.status}: {payload[:200]!r}')
      except (OSError, http.client.HTTPException) as e:
        with lock:
          errors.append(repr(e))
        connection.close()
        connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    connection.close()
    with lock:
      latencies.extend(mine)

  threads = [threading.Thread(target=client) for _ in range(clients)]
  start = time.perf_counter()
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  elapsed = time.perf_counter() - start
  return {'requests': len(latencies), 'seconds': elapsed,
          'latencies': latencies, 'errors': errors}


def _export_to_served(run_dir: str, export_dir: str,
                      server: benchlib.ServerProcess,
                      version: int) -> tuple[float, float]:
  """Runs trainers.export (writing `version`) while serving; returns
  (seconds from the version folder appearing to a default :predict answered
  by it, seconds from starting trainers.export to that answer)."""
  import grpc  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import predict_pb2  # pylint: disable=g-import-not-at-top
  from tensorflow_serving.apis import prediction_service_pb2_grpc  # pylint: disable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = MODEL
  request.model_spec.signature_name = 'decode'
  request.inputs['codes'].CopyFrom(tf.make_tensor_proto(
      np.zeros((1, 2), np.float32)))
  folder = os.path.join(export_dir, str(version))
  started = time.perf_counter()
  exporter = subprocess.Popen(  # pylint: disable=consider-using-with
      [sys.executable, '-m', 'trainers.export', f'--model_dir={run_dir}',
       f'--export_dir={export_dir}'], cwd=benchlib.REPO,
      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.perf_counter() + 600
  while not os.path.isdir(folder):
    if time.perf_counter() > deadline or exporter.poll() not in (None, 0):
      raise RuntimeError(f'trainers.export wrote no version {version}')
    time.sleep(0.005)
  written = time.perf_counter()
  with grpc.insecure_channel(f'{HOST}:{server.grpc_port}') as channel:
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    while time.perf_counter() < deadline:
      reply = stub.Predict(request, timeout=30)
      if reply.model_spec.version.value == version:
        answered = time.perf_counter()
        break
      time.sleep(0.02)
    else:
      raise RuntimeError(f'the server never answered with version '
                         f'{version}')
  exporter.wait(600)
  return answered - written, answered - started


def _load_rows(server: benchlib.ServerProcess, in_process: dict,
               clients: list[int], latent_dim: int) -> list[list]:
  """A table row per (signature, protocol, clients): the server under load
  beside the in-process rate and latency."""
  rows = []
  for signature, protocol in [(s, p) for s in FLAGS.signatures
                              for p in FLAGS.protocols]:
    values = _inputs(signature, FLAGS.batch, latent_dim)
    path, body = _body(protocol, signature, values)
    warm = _drive(server.rest_port, path, body, 1, 1.0, 20,
                  FLAGS.request_timeout)
    if warm['errors']:
      raise RuntimeError(f'{protocol} {signature}: {warm["errors"][0]}')
    for n in clients:
      rss_start = _rss_mb(server.proc.pid)
      r = _drive(server.rest_port, path, body, n, FLAGS.seconds,
                 FLAGS.max_requests, FLAGS.request_timeout)
      rss_end = _rss_mb(server.proc.pid)
      p50, p99 = (np.percentile(r['latencies'], [50, 99])
                  if r['latencies'] else (float('nan'),) * 2)
      rate, ip50, ip99 = in_process[signature][str(n)]
      rows.append([signature, protocol, n,
                   f'{r["requests"] / r["seconds"]:.0f}',
                   f'{p50:.1f} / {p99:.1f}', len(r['errors']),
                   f'{rss_start:.0f} / {rss_end:.0f}', f'{rate:.0f}',
                   f'{ip50:.1f} / {ip99:.1f}'])
      if r['errors']:
        print(f'{signature} {protocol} x{n}: {len(r["errors"])} errors, '
              f'first: {r["errors"][0]}', file=sys.stderr)
  return rows


def _print(rows, machine, latent_dim, rss, states, code, served) -> None:
  print(f'\ntrainers.serve on {HOST}: VAE (latent {latent_dim}), '
        f'{FLAGS.batch} image(s) per request, {FLAGS.seconds:g} s per '
        f'row; {machine}')
  benchlib.print_table(
      ['signature', 'protocol', 'clients', 'requests/s', 'p50 / p99 ms',
       'errors', 'server RSS MB start / end', 'in-process calls/s',
       'in-process p50 / p99 ms'], rows)
  print(f'\nserver RSS {rss[0]:.0f} MB after start, {rss[1]:.0f} MB '
        f'at the end ({states.count("AVAILABLE")} of the {len(states)} '
        f'versions written loaded, the policy serving the latest); exit code '
        f'{code} after SIGTERM')
  if served:
    print('trainers.export -> served (--poll_seconds=1): '
          + ', '.join(f'{s:.2f}' for s, _ in served) + ' s from the '
          'version folder appearing to a default :predict answered by '
          'that version; '
          + ', '.join(f'{t:.1f}' for _, t in served)
          + ' s from starting trainers.export')


def main(_):
  if FLAGS.child:
    benchlib.report(_in_process(json.loads(FLAGS.child)))
    return
  machine = _machine()
  clients = [int(c) for c in FLAGS.concurrency]
  tmp = tempfile.mkdtemp(prefix='serving-load-')
  run_dir = os.path.join(tmp, 'run')
  export_dir = os.path.join(tmp, 'export', MODEL)
  try:
    # A real run: one epoch on 500 examples, exported by trainers.train.
    subprocess.run(
        [sys.executable, '-m', 'trainers.train', '--model=vae',
         '--epochs=1', '--train_examples=500', '--batch_size=100',
         '--plot_every=0', '--noverbose', f'--model_dir={run_dir}',
         f'--export_dir={export_dir}'], cwd=benchlib.REPO, check=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latent_dim = 2
    in_process = benchlib.run_child(__file__, {
        'path': os.path.join(export_dir, '1'), 'batch': FLAGS.batch,
        'signatures': FLAGS.signatures, 'latent_dim': latent_dim,
        'concurrency': clients, 'seconds': FLAGS.in_process_seconds})
    server = benchlib.ServerProcess(
        export_dir, os.path.join(tmp, 'server.log'), '--poll_seconds=1',
        timeout=300)
    try:
      rss_first = _rss_mb(server.proc.pid)
      rows = _load_rows(server, in_process, clients, latent_dim)
      served = [_export_to_served(run_dir, export_dir, server, v)
                for v in range(2, 2 + FLAGS.exports)]
      rss_last = _rss_mb(server.proc.pid)
      with urllib.request.urlopen(f'{server.url}/v1/models/{MODEL}',
                                  timeout=30) as reply:
        states = [s['state'] for s in json.load(reply)[
            'model_version_status']]
    finally:
      code = server.stop()
    _print(rows, machine, latent_dim, (rss_first, rss_last), states, code,
           served)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
  app.run(main)
