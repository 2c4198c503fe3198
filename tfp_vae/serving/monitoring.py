"""TF Serving's Prometheus metrics, under TF Serving's names, for its
monitoring path (/monitoring/prometheus/metrics by default).

TF Serving exports its TensorFlow monitoring metrics with '/' turned into
':' (util/prometheus_exporter.cc); the ones a dashboard for TF Serving
reads first are kept here:

  :tensorflow:serving:request_count{model_name, status}      counter
  :tensorflow:serving:request_latency{model_name, API, entrypoint}
                                      histogram, microseconds
  :tensorflow:cc:saved_model:load_attempt_count{model_path, status}  counter

The page is written here in Prometheus' text format rather than through
prometheus_client, whose counters would gain a `_total` suffix that TF
Serving's names do not have.  KServe's own metrics stay at /metrics.
"""

import bisect
import threading

# TF Serving's request_latency buckets: 10 us growing by 1.8x, 33 of them.
_BOUNDS = [10 * 1.8**i for i in range(33)]
_LATENCY = ':tensorflow:serving:request_latency'
_REQUESTS = ':tensorflow:serving:request_count'
_LOADS = ':tensorflow:cc:saved_model:load_attempt_count'


def _labels(pairs) -> str:
  return ','.join('{}="{}"'.format(
      k, str(v).replace('\\', '\\\\').replace('"', '\\"').replace('\n', ' '))
                  for k, v in pairs)


class Metrics:
  """The counters and histograms, updated from any thread."""

  def __init__(self):
    self._lock = threading.Lock()
    self._requests: dict[tuple, int] = {}
    self._loads: dict[tuple, int] = {}
    self._latency: dict[tuple, list] = {}

  def record_request(self, model_name: str, api: str, entrypoint: str,
                     code: str, micros: float) -> None:
    """One request: its status code ('OK' or an error code) and, when OK,
    its latency (TF Serving records the latency of successes only)."""
    with self._lock:
      key = (('model_name', model_name), ('status', code))
      self._requests[key] = self._requests.get(key, 0) + 1
      if code == 'OK':
        key = (('model_name', model_name), ('API', api),
               ('entrypoint', entrypoint))
        counts = self._latency.setdefault(key, [[0] * (len(_BOUNDS) + 1),
                                                0.0])
        counts[0][bisect.bisect_left(_BOUNDS, micros)] += 1
        counts[1] += micros

  def record_load(self, model_path: str, code: str) -> None:
    with self._lock:
      key = (('model_path', model_path), ('status', code))
      self._loads[key] = self._loads.get(key, 0) + 1

  def page(self) -> str:
    """The Prometheus text page."""
    with self._lock:
      lines = [f'# TYPE {_REQUESTS} counter']
      lines += [f'{_REQUESTS}{{{_labels(k)}}} {v}'
                for k, v in sorted(self._requests.items())]
      lines.append(f'# TYPE {_LOADS} counter')
      lines += [f'{_LOADS}{{{_labels(k)}}} {v}'
                for k, v in sorted(self._loads.items())]
      lines.append(f'# TYPE {_LATENCY} histogram')
      for key, (counts, total) in sorted(self._latency.items()):
        cumulative = 0
        for bound, count in zip(_BOUNDS + [float('inf')], counts):
          cumulative += count
          le = '+Inf' if bound == float('inf') else f'{bound:g}'
          lines.append(f'{_LATENCY}_bucket{{{_labels(key)},le="{le}"}} '
                       f'{cumulative}')
        lines.append(f'{_LATENCY}_sum{{{_labels(key)}}} {total:g}')
        lines.append(f'{_LATENCY}_count{{{_labels(key)}}} {cumulative}')
    return '\n'.join(lines) + '\n'
