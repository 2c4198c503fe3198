"""A family member, a prior and a likelihood defined in this file alone,
each in one class, train, evaluate, export and compare through the public
entry points: in this process after `register`, and from the command line
as a plugin (the `tfp_vae.plugins` entry points of an installed
distribution, here a dist-info folder on PYTHONPATH that names this
module).  The declarations are all the package needs.

This module imports no TensorFlow at load time, as a plugin module should
not: the command line loads plugins before it checks its flags.
"""

import dataclasses
import json
import math
import os
import sys
from typing import ClassVar

import numpy as np
import pytest

from tests.helpers import REPO, run_cli
from tfp_vae.internal import checks
from tfp_vae.family import components
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.internal import registry
from tfp_vae.internal import testing


@dataclasses.dataclass(frozen=True)
class CapacityVAE(family.Member):
  """A beta-VAE that holds the rate at a target capacity C (Burgess et al.,
  "Understanding disentangling in beta-VAE"):
  loss = distortion + gamma * |rate - capacity|."""
  name: ClassVar[str] = 'capacity_vae'
  summary: ClassVar[str] = 'rate held at --capacity nats'
  encoder: ClassVar[str] = 'gaussian'
  terms: ClassVar[tuple[str, ...]] = ('loss', 'distortion', 'rate')
  loss_scales: ClassVar[tuple[str, ...]] = ('gamma',)

  gamma: float = family.setting(10.0, 'Weight of the capacity penalty.',
                                checks.finite_non_negative)
  capacity: float = family.setting(3.0, 'Target rate C in nats.',
                                   checks.finite_non_negative)

  def recorded(self):
    return {'capacity': self.capacity}

  def per_example(self, model, images, seed):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    from tfp_vae.nn import losses  # pylint: disable=g-import-not-at-top
    posterior = model.encode(images)
    codes = model.sample_codes(posterior, seed)
    distortion = losses.distortion(model.decode(codes), images)
    rate = losses.rate(posterior, model.prior_distribution(), codes)
    return {'loss': distortion + self.gamma * tf.abs(rate - self.capacity),
            'distortion': distortion, 'rate': rate}, codes


class LaplacePrior(components.Prior):
  """Independent Laplace units of variance 1: no closed-form KL to a
  Gaussian, so a VAE's rate is estimated."""
  name = 'laplace'
  summary = 'independent Laplace(0, 1/sqrt(2)) units'

  def layer(self, latent_dim, components_, encoder, image_shape):
    import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
    from tfp_vae.nn import priors  # pylint: disable=g-import-not-at-top
    tfd = tfp.distributions
    return priors.FixedPrior(lambda: tfd.Independent(tfd.Laplace(
        [0.0] * latent_dim, [1 / math.sqrt(2)] * latent_dim), 1),
                             name='prior')


class ContinuousBernoulli(components.Likelihood):
  """The continuous Bernoulli (Loaiza-Ganem & Cunningham 2019): the
  normalised density on [0, 1] that the Bernoulli of grey levels is not."""
  name = 'continuous_bernoulli'
  summary = 'continuous Bernoulli logits per pixel'

  def pixel_weight(self, scale):
    return 1.0

  def decoder(self, network, image_shape, scale):
    import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
    from tfp_vae.nn import decoders  # pylint: disable=g-import-not-at-top
    return decoders.Decoder(network, lambda out: (
        tfp.distributions.ContinuousBernoulli(logits=out)), name='decoder')


PLUGINS = {'capacity_vae': CapacityVAE, 'laplace': LaplacePrior,
           'continuous_bernoulli': ContinuousBernoulli}
REGISTRIES = {'capacity_vae': family.MEMBERS, 'laplace': components.PRIORS,
              'continuous_bernoulli': components.LIKELIHOODS}


@pytest.fixture
def registered():
  for name, cls in PLUGINS.items():
    REGISTRIES[name].register(cls)
  yield
  for name in PLUGINS:
    testing.unregister(REGISTRIES[name], name)


@pytest.fixture(scope='session')
def plugin_path(tmp_path_factory):
  """PYTHONPATH on which an installed distribution declares this module's
  classes as `tfp_vae.plugins` entry points (what `pip install` of a
  plugin package leaves in site-packages)."""
  root = tmp_path_factory.mktemp('site')
  info = root / 'tfp_vae_test_plugin-0.1.dist-info'
  info.mkdir()
  (info / 'METADATA').write_text(
      'Metadata-Version: 2.1\nName: tfp-vae-test-plugin\nVersion: 0.1\n')
  (info / 'entry_points.txt').write_text('[tfp_vae.plugins]\n' + ''.join(
      f'{name} = {__name__}:{cls.__name__}\n'
      for name, cls in PLUGINS.items()))
  return f'{root}{os.pathsep}{REPO}'


@pytest.mark.slow
def test_a_member_declared_in_one_class_trains_evaluates_and_exports(
    tmp_path, registered):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_vae.experiment import evaluate as evaluation  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  del registered
  config = config_lib.TrainConfig.create(
      model='capacity_vae', gamma=5.0, capacity=2.0, epochs=2,
      prior='laplace', likelihood='continuous_bernoulli',
      train_examples=300, batch_size=100, plot_every=0, verbose=False,
      model_dir=str(tmp_path / 'run'), export_dir=str(tmp_path / 'export'))
  metrics = training.run(config)
  assert metrics['epochs_completed'] == 2 and metrics['capacity'] == 2.0
  assert np.isfinite(metrics['train_rate']) and np.isfinite(
      metrics['test_neg_elbo'])
  # The test loss is the member's own objective on the test set.
  assert metrics['test_loss'] > metrics['test_reconstruction_nll']
  # Settings it does not declare are refused, naming who uses them.
  with pytest.raises(errors.ConfigError, match='beta is used only by'):
    config_lib.TrainConfig.create(model='capacity_vae', beta=2.0)
  with pytest.raises(errors.ConfigError, match='gamma must be a finite'):
    config_lib.TrainConfig.create(model='capacity_vae', gamma=-1.0).validate()
  result = evaluation.evaluate_run(
      config.runtime.model_dir,
      config_lib.EvalConfig(iwae_samples=3, cache_dir=str(tmp_path / 'c')))
  assert np.isfinite(result.metrics['test_iwae_log_likelihood'])
  assert 0 <= result.metrics['test_knn_accuracy'] <= 1
  loaded = tf.saved_model.load(str(tmp_path / 'export' / '1'))
  x = tf.constant(np.full((2, 28, 28, 1), 0.5, np.float32))
  out = loaded.signatures['log_likelihood'](images=x)['log_likelihood']
  assert out.shape == (2,) and np.all(np.isfinite(out.numpy()))
  # The prior's samples come from the plugin's Laplace.
  codes = loaded.signatures['sample'](
      num_samples=tf.constant(2000, tf.int64),
      seed=tf.constant(1, tf.int64))['codes'].numpy()
  kurtosis = np.mean(codes**4, axis=0) / np.mean(codes**2, axis=0)**2
  assert np.all(kurtosis > 4.5), kurtosis  # Laplace 6, Gaussian 3
  # config.json names the member and its settings; a rerun resumes it.
  again = training.run(config)
  assert again['epochs_completed'] == 2


def test_a_declaration_missing_what_generic_code_needs_is_refused():
  @dataclasses.dataclass(frozen=True)
  class Nameless(family.Member):
    pass

  with pytest.raises(ValueError, match='needs a name and a summary'):
    family.register(Nameless)

  @dataclasses.dataclass(frozen=True)
  class Undeclared(family.Member):
    name: ClassVar[str] = 'undeclared'
    summary: ClassVar[str] = 'scales a loss with a setting it lacks'
    loss_scales: ClassVar[tuple[str, ...]] = ('weight',)

  with pytest.raises(ValueError, match="declares 'weight'"):
    family.register(Undeclared)
  with pytest.raises(ValueError, match='already taken'):
    components.PRIORS.register(type('Other', (components.Prior,), {
        'name': 'normal', 'summary': 'a second normal'}))
  with pytest.raises(ValueError, match='must subclass Prior'):
    components.PRIORS.register(ContinuousBernoulli)


@dataclasses.dataclass(frozen=True)
class BetaSixVAE(family.Member):
  """A plugin member reusing the VAE's `beta` with its own default: one
  --beta flag cannot show both defaults, so it is refused."""
  name: ClassVar[str] = 'beta_six_vae'
  summary: ClassVar[str] = 'a beta-VAE whose beta defaults to 6'
  beta: float = family.setting(6.0, 'Weight of the rate.')

  def per_example(self, model, images, seed):
    raise NotImplementedError


def test_a_setting_reusing_a_members_name_must_declare_it_alike():
  with pytest.raises(ValueError, match=r"BetaSixVAE declares setting 'beta' "
                     r"with default 6\.0 \(--model=vae has 1\.0\)"):
    family.register(BetaSixVAE)
  assert 'beta_six_vae' not in family.names()

  @dataclasses.dataclass(frozen=True)
  class IntBeta(family.Member):
    name: ClassVar[str] = 'int_beta'
    summary: ClassVar[str] = 'beta as an integer'
    beta: int = family.setting(1, 'Weight of the rate.')

  with pytest.raises(ValueError, match="type <class 'int'>"):
    family.register(IntBeta)

  @dataclasses.dataclass(frozen=True)
  class RenamedKernel(family.Member):
    name: ClassVar[str] = 'renamed_kernel'
    summary: ClassVar[str] = 'kernel under another flag'
    kernel: str = family.setting('gaussian_dim', 'Kernel.', flag='my_kernel')

  with pytest.raises(ValueError, match="flag 'my_kernel'"):
    family.register(RenamedKernel)

  # Declared as the VAE declares it, it is the same flag: accepted.
  @dataclasses.dataclass(frozen=True)
  class SameBeta(family.Member):
    name: ClassVar[str] = 'same_beta'
    summary: ClassVar[str] = 'beta as the VAE has it'
    beta: float = family.setting(1.0, 'Weight of the rate in my model.')

  family.register(SameBeta)
  try:
    assert family.create('same_beta', beta=4.0).beta == 4.0
    assert family.all_settings()['beta'][1] == ['vae', 'same_beta']
  finally:
    testing.unregister(family.MEMBERS, 'same_beta')


def _install_plugin(tmp_path, monkeypatch, name: str, entry_point: str):
  """A distribution `name` on sys.path declaring one tfp_vae.plugins entry
  point, found by the next discovery."""
  info = tmp_path / f"{name.replace('-', '_')}-0.1.dist-info"
  info.mkdir()
  (info / 'METADATA').write_text(
      f'Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n')
  (info / 'entry_points.txt').write_text(
      f'[tfp_vae.plugins]\n{entry_point}\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  registry.reset_discovery()


def test_a_plugin_reusing_a_setting_differently_is_named_where_it_matters(
    tmp_path, monkeypatch):
  _install_plugin(tmp_path, monkeypatch, 'beta-plugin',
                  f'six = {__name__}:BetaSixVAE')
  try:
    with pytest.raises(errors.ConfigError,
                       match=r"failed to load \(ValueError: BetaSixVAE "
                       r"declares setting 'beta' with default 6\.0"):
      config_lib.TrainConfig.create(model='beta_six_vae')
  finally:
    monkeypatch.undo()
    registry.reset_discovery()


def test_plugins_are_flags_with_help_on_the_command_line(plugin_path):
  r = run_cli('trainers.train', '--help', env={'PYTHONPATH': plugin_path})
  assert r.returncode == 0, r.stderr[-2000:]
  text = ' '.join(r.stdout.split())  # unwrapped
  assert '<vae|mmd_vae|info_vae|iwae|capacity_vae>' in text
  assert 'capacity_vae: rate held at --capacity nats' in text
  assert '--gamma=10.0' in text and '[--model=capacity_vae]' in text
  assert 'laplace: independent Laplace' in text
  assert 'continuous_bernoulli: continuous Bernoulli' in text
  # Without the plugin, the names are unknown, and said so.
  r = run_cli('trainers.train', '--model=capacity_vae')
  assert r.returncode == 1 and 'capacity_vae' in r.stderr
  # A setting the plugin's member lacks is refused at any value.
  r = run_cli('trainers.train', '--model=capacity_vae', '--beta=1',
              env={'PYTHONPATH': plugin_path})
  assert r.returncode == 1
  assert 'beta is used only by --model=vae' in r.stderr, r.stderr


@pytest.mark.slow
def test_a_plugin_trains_from_the_command_line_and_compares(
    tmp_path, plugin_path):
  env = {'PYTHONPATH': plugin_path}
  common = ('--epochs=1', '--train_examples=200', '--batch_size=50',
            '--plot_every=0')
  r = run_cli('trainers.train', '--model=capacity_vae', '--gamma=5',
              '--prior=laplace', '--likelihood=continuous_bernoulli',
              f'--model_dir={tmp_path / "run"}',
              f'--export_dir={tmp_path / "export"}', *common, env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  with open(tmp_path / 'run' / 'config.json') as f:
    recorded = json.load(f)
  assert recorded['model']['settings'] == {'gamma': 5.0, 'capacity': 3.0}
  assert recorded['plan']['member']['name'] == 'capacity_vae'
  assert os.path.isdir(tmp_path / 'export' / '1')
  out = tmp_path / 'compare'
  r = run_cli('trainers.compare', '--models=vae,capacity_vae:gamma=2',
              f'--output_dir={out}', '--eval_iwae_samples=2', *common,
              env=env)
  assert r.returncode == 0, r.stderr[-3000:]
  with open(out / 'metrics.json') as f:
    metrics = json.load(f)
  assert metrics['order'] == ['vae', 'capacity_vae:gamma=2']
  assert metrics['models']['capacity_vae:gamma=2']['seeds']['0'][
      'capacity'] == 3.0
  with open(out / 'capacity_vae_gamma=2' / 'config.json') as f:
    assert json.load(f)['model']['settings']['gamma'] == 2.0
  assert 'capacity_vae:gamma=2' in (out / 'report.html').read_text()


def test_a_plugin_that_fails_to_load_is_named_where_it_matters(
    tmp_path, monkeypatch):
  _install_plugin(tmp_path, monkeypatch, 'broken-plugin',
                  'mine = no_such_module_here:Member')
  try:
    with pytest.raises(errors.ConfigError,
                       match=r'plugin mine = no_such_module_here:Member '
                       r'failed to load \(ModuleNotFoundError'):
      family.get('mine')
  finally:
    monkeypatch.undo()
    registry.reset_discovery()


_MODULE_PLUGIN = '''"""A plugin module: importing it registers what it defines."""
from tfp_vae.family import components


@components.LIKELIHOODS.register
class ModuleDeclaredBernoulli(components.Likelihood):
  name = 'module_declared_bernoulli'
  summary = 'a likelihood registered by importing its module'

  def pixel_weight(self, scale):
    return 1.0

  def decoder(self, network, image_shape, scale):
    raise NotImplementedError
'''


def test_a_module_entry_point_registers_what_its_module_defines(
    tmp_path, monkeypatch):
  """docs/extending.md: an entry point may name a module, which is imported
  and whose decorators register what it defines (here a likelihood)."""
  module = 'tfp_vae_module_plugin_for_tests'
  name = 'module_declared_bernoulli'
  assert name not in components.LIKELIHOODS.names()
  (tmp_path / f'{module}.py').write_text(_MODULE_PLUGIN)
  info = tmp_path / 'module_plugin-0.1.dist-info'
  info.mkdir()
  (info / 'METADATA').write_text(
      'Metadata-Version: 2.1\nName: module-plugin\nVersion: 0.1\n')
  (info / 'entry_points.txt').write_text(
      f'[tfp_vae.plugins]\nparts = {module}\n')
  monkeypatch.syspath_prepend(str(tmp_path))
  registry.reset_discovery()
  try:
    assert name in components.LIKELIHOODS.names()
    cls = components.LIKELIHOODS.get(name)
    assert cls.__module__ == module and cls.__name__ == (
        'ModuleDeclaredBernoulli')
    assert cls.summary == 'a likelihood registered by importing its module'
  finally:
    testing.unregister(components.LIKELIHOODS, name)
    monkeypatch.undo()
    sys.modules.pop(module, None)
    registry.reset_discovery()
