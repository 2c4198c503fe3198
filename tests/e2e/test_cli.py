"""The command line as a user meets it: --help lists each command's own
flags by group, flag errors come before TensorFlow loads, a CPU-only run
prints no start-up noise, errors print once, progress reads well in a log
file."""

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, run_cli

COMMANDS = {
    'trainers.train': ('tfp-vae-train', ['--model=', '--latent_dim=',
                                         '--dataset=', '--epochs=',
                                         '--model_dir=', '--strategy=']),
    'trainers.evaluate': ('tfp-vae-evaluate', ['--model_dir=',
                                               '--eval_iwae_samples=']),
    'trainers.compare': ('tfp-vae-compare', ['--output_dir=', '--epochs=',
                                             '--mmd_weight=',
                                             '--eval_iwae_samples=']),
    'trainers.export': ('tfp-vae-export', ['--model_dir=', '--export_dir=',
                                           '--max_batch=']),
    'trainers.serve': ('tfp-vae-serve', ['--export_dir=', '--rest_api_port=',
                                         '--max_batch=']),
}


@pytest.mark.parametrize('module', sorted(COMMANDS))
def test_help_lists_the_commands_own_flags_by_group(module):
  script, expected = COMMANDS[module]
  console = os.path.join(os.path.dirname(sys.executable), script)
  outs = []
  for argv in ([sys.executable, '-m', module, '--help'],
               [sys.executable, '-m', module, '--helpshort'],
               [console, '--help']):
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr[-2000:]
    out = r.stdout
    outs.append(out)
    for flag in expected:
      assert flag in out, (argv, flag)
    assert '--helpfull' in out and 'usage:' in out
    assert 'source document' not in out and 'absl.flags' not in out
  if module == 'trainers.train':
    for title in ('What is trained', 'What it is trained on',
                  'How it is trained', 'Where and how it runs'):
      assert title in out
    assert '[--model=mmd_vae]' in out  # which model a setting belongs to


_NO_TENSORFLOW = 'raise ImportError("TensorFlow was imported")\n'


@pytest.mark.parametrize('module,args,message', [
    ('trainers.train', ['--latent_dim=-3'],
     'latent_dim must be a positive integer, got -3'),
    ('trainers.train', ['--model=mmd_vae', '--beta=2'],
     'beta is used only by --model=vae'),
    # Given at its default value, a setting the member lacks is refused too.
    ('trainers.train', ['--model=mmd_vae', '--beta=1'],
     'beta is used only by --model=vae'),
    ('trainers.compare', ['--output_dir=x', '--models=vae,mmd_vae:beta=2'],
     'sets beta, which --model=mmd_vae does not have'),
    ('trainers.compare', ['--output_dir=x', '--iwae_samples=3'],
     'iwae_samples is a setting of iwae, none of which is compared'),
    ('trainers.train', ['--model=gan'], 'value should be one of'),
    ('trainers.compare', ['--output_dir=x', '--batch_size=0'],
     'batch_size must be a positive integer'),
    ('trainers.evaluate', ['--model_dir=x', '--eval_iwae_samples=-1'],
     'eval_iwae_samples must be >= 0'),
    ('trainers.serve', ['--export_dir=x', '--rest_api_port=0'],
     'rest_api_port must be a port'),
])
def test_flag_errors_come_before_tensorflow_is_imported(tmp_path, module,
                                                        args, message):
  """A `tensorflow` package that fails on import stands first on the path:
  the flag error must be printed before anything imports it."""
  (tmp_path / 'tensorflow').mkdir()
  (tmp_path / 'tensorflow' / '__init__.py').write_text(_NO_TENSORFLOW)
  env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), REPO]))
  r = subprocess.run([sys.executable, '-m', module, *args], cwd=REPO,
                     env=env, capture_output=True, text=True, timeout=60)
  assert r.returncode == 1
  lines = [l for l in r.stderr.splitlines() if l.strip()]
  assert len(lines) == 1 and lines[0].startswith('error: '), r.stderr
  assert message in lines[0]


@pytest.mark.parametrize('module, args', [
    ('trainers.train', []),
    ('trainers.evaluate', ['--model_dir=x']),
    ('trainers.compare', ['--output_dir=x']),
    ('trainers.export', ['--model_dir=x', '--export_dir=y']),
    ('trainers.serve', ['--export_dir=x']),
])
def test_an_argument_that_is_not_a_flag_is_refused(module, args):
  """Every command (`common.run`) refuses a stray argument before it does
  anything: absl's usage and the argument, exit 1."""
  r = run_cli(module, *args, 'extra', timeout=60)
  assert r.returncode == 1
  assert r.stderr.strip().splitlines()[-1] == "unexpected arguments: ['extra']"


_NOISE = ('absl::InitializeLog', 'cuInit', 'cuda drivers', 'oneDNN custom',
          'this task None', 'unsupported characters', 'cpu_feature_guard',
          'Writing fingerprint', 'retracing', 'E0000', 'W0000', 'I0000',
          'Traceback')


@pytest.mark.slow
def test_a_cpu_only_run_prints_no_start_up_noise(tmp_path):
  r = run_cli('trainers.train', '--epochs=1', '--train_examples=200',
              f'--model_dir={tmp_path}/run', f'--export_dir={tmp_path}/exp')
  assert r.returncode == 0, r.stderr[-3000:]
  for noise in _NOISE:
    assert noise not in r.stderr, noise
  # The package's own lines are there, readable in a log file.
  assert 'strategy default strategy with 1 replica(s)' in r.stderr
  assert 'exported SavedModel to' in r.stderr
  assert 'step - distortion:' in r.stdout and '\x1b[' not in r.stdout + r.stderr
  # --verbosity=1 brings TensorFlow's own lines back.
  loud = run_cli('trainers.train', '--epochs=1', '--train_examples=200',
                 f'--model_dir={tmp_path}/run2', '--verbosity=1')
  assert loud.returncode == 0
  assert 'oneDNN custom operations' in loud.stderr


@pytest.mark.slow
def test_an_error_is_printed_once(tmp_path):
  r = run_cli('trainers.train', '--dataset=not_a_set',
              f'--model_dir={tmp_path}/run')
  assert r.returncode == 1
  assert r.stderr.count("unknown dataset 'not_a_set'") == 1


@pytest.mark.slow
def test_progress_of_a_long_step_reads_well_in_a_log_file(compared_pair):
  _, _, stderr = compared_pair  # trainers.compare's, run as a process
  for line in ('compare: 6/6 steps (100%)',
               'IWAE log-likelihood (k=3): 1,000/1,000 images (100%)',
               'training the Frechet feature classifier on 200 images: 5/5 '
               'epochs (100%)'):
    assert line in stderr, line
  assert '\x1b[' not in stderr and '\b' not in stderr
