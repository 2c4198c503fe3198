"""Commands run k at a time as child processes on one machine, each with
its share of the cores.

A comparison of M members over N seeds is M x N independent trainings
(`tfp_vae.experiment.comparison`).  With `--parallel=k`, k of them run at once,
each a `python -m trainers.train` (then `trainers.evaluate`) child of its own,
the commands a user would type; TensorFlow's thread pools in each child are
sized to cores // k (TF_NUM_INTRAOP_THREADS, OMP_NUM_THREADS) so the children do
not oversubscribe the machine.  A failing child's last line of stderr is its
error (the trainers print one line); the others finish first.

This module does not import TensorFlow.
"""

import dataclasses
import os
import subprocess
import sys
import time
from typing import Callable, Optional, Sequence

from tfp_vae.internal import errors

# The directory that holds tfp_vae/ (three up from tfp_vae/internal/).
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


@dataclasses.dataclass
class Job:
  """Commands run one after another in one slot (train, then evaluate)."""
  name: str
  commands: list[list[str]]
  log_path: str
  seconds: float = 0.0
  returncode: Optional[int] = None
  error: str = ''


def thread_env(parallel: int, cores: Optional[int] = None) -> dict[str, str]:
  """The environment of a child when `parallel` run at once."""
  cores = cores or os.cpu_count() or 1
  threads = str(max(1, cores // max(1, parallel)))
  return {'TF_NUM_INTRAOP_THREADS': threads, 'OMP_NUM_THREADS': threads,
          'TF_NUM_INTEROP_THREADS': '1' if parallel > 1 else '0'}


def module_command(module: str, args: Sequence[str]) -> list[str]:
  """`python -m module args` with this interpreter."""
  return [sys.executable, '-m', module, *args]


def _start(job: Job, command: list[str], env: dict) -> subprocess.Popen:
  log = open(job.log_path, 'a')  # pylint: disable=consider-using-with
  log.write(f'$ {" ".join(command)}\n')
  log.flush()
  return subprocess.Popen(command, cwd=REPO, env=env, stdout=log,
                          stderr=subprocess.STDOUT)


def _last_error(path: str) -> str:
  with open(path, errors='replace') as f:
    lines = [l.strip() for l in f if l.strip()]
  errors_ = [l for l in lines if l.startswith('error:')]
  return (errors_ or lines or ['(no output)'])[-1]


def run(jobs: list[Job], parallel: int,
        on_done: Callable[[Job], None] = lambda job: None,
        poll: float = 0.5) -> list[Job]:
  """Runs `jobs` `parallel` at a time; returns them with their times and
  return codes.

  Raises:
    TfpVaeError: some job failed (after every started one finished),
      naming each with its error line and log; a RetryableError when each
      failed one exited with the retryable code (a full disk, preemption).
  """
  env = {**os.environ, **thread_env(parallel)}
  pending, running = list(jobs), {}
  try:
    _run_all(pending, running, env, parallel, on_done, poll)
  finally:
    for _, _, proc in running.values():  # an error here: no orphans
      proc.terminate()
    for _, _, proc in running.values():
      proc.wait()
  failed = [j for j in jobs if j.returncode]
  if failed:
    retryable = all(j.returncode == errors.RETRYABLE_EXIT_CODE
                    for j in failed)
    error = errors.RetryableError if retryable else errors.TfpVaeError
    raise error('; '.join(
        f'{j.name} failed ({j.error}; log {j.log_path})' for j in failed))
  return jobs


def _run_all(pending, running, env, parallel, on_done, poll) -> None:
  while pending or running:
    while pending and len(running) < parallel:
      job = pending.pop(0)
      job.seconds = -time.perf_counter()
      running[job.name] = (job, 0, _start(job, job.commands[0], env))
    for name, (job, step, proc) in list(running.items()):
      code = proc.poll()
      if code is None:
        continue
      if code == 0 and step + 1 < len(job.commands):
        running[name] = (job, step + 1, _start(job, job.commands[step + 1],
                                               env))
        continue
      del running[name]
      job.seconds += time.perf_counter()
      job.returncode = code
      if code:
        job.error = _last_error(job.log_path)
      on_done(job)
    time.sleep(poll)
