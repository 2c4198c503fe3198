"""The model family: reductions to the ELBO, priors, kernels, likelihoods,
architectures, and every allowed (model, prior, likelihood, architecture)
combination."""

import itertools
import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.helpers import allowed_combinations, covering
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.nn import losses
from tfp_vae.model import models
from tfp_vae.runtime import plan
from tfp_vae.nn import priors
from tfp_vae.training import rundir

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int32)


@pytest.fixture(scope='session')
def images(mnist_5k):
  return tf.constant(mnist_5k.train_images[:48].astype(np.float32) / 255)


def _model(image_shape=(28, 28, 1), **kw):
  return models.build_model(config_lib.TrainConfig.create(**kw).validate(),
                            image_shape)


def _loss(model, images):
  loss, logs = model.objective(images, SEED)
  return float(loss), {k: float(v) for k, v in logs.items()}


def test_beta_one_is_the_elbo_and_beta_weights_the_rate(images):
  vae = _model(model='vae')
  loss, logs = _loss(vae, images)
  posterior = vae.encode(images)
  codes = vae.sample_codes(posterior, SEED)
  neg_elbo = (losses.distortion(vae.decode(codes), images) +
              losses.analytic_rate(posterior, vae.prior_distribution()))
  assert loss == pytest.approx(float(tf.reduce_mean(neg_elbo)), rel=1e-6)
  beta = _model(model='vae', beta=4.0)
  loss4, logs4 = _loss(beta, images)
  assert logs4['rate'] == pytest.approx(logs['rate'], rel=1e-5)
  assert loss4 == pytest.approx(logs['distortion'] + 4 * logs['rate'],
                                rel=1e-5)


def test_info_vae_with_alpha_0_lambda_1_is_the_elbo(images):
  vae_loss, _ = _loss(_model(model='vae'), images)
  info_loss, logs = _loss(_model(model='info_vae', alpha=0.0,
                                 info_lambda=1.0), images)
  assert info_loss == pytest.approx(vae_loss, rel=1e-6)
  assert logs['mmd'] == 0.0  # weight alpha + lambda - 1 = 0
  # alpha = 1: no KL, all MMD.
  mmd_only, logs = _loss(_model(model='info_vae', alpha=1.0,
                                info_lambda=5.0), images)
  assert mmd_only == pytest.approx(logs['distortion'] + logs['mmd'],
                                   rel=1e-5)


def test_iwae_with_one_sample_is_the_sampled_elbo_with_the_same_draw(images):
  iwae_loss, logs = _loss(_model(model='iwae', iwae_samples=1), images)
  vae_loss, _ = _loss(_model(model='vae', kl_estimator='sampled'), images)
  assert iwae_loss == pytest.approx(vae_loss, rel=1e-5)
  assert logs['neg_elbo'] == pytest.approx(iwae_loss, rel=1e-6)
  # More samples: a tighter bound (lower loss) at the same weights.
  k10, logs10 = _loss(_model(model='iwae', iwae_samples=10), images)
  assert k10 < logs10['neg_elbo']


def test_one_component_mixture_with_zero_means_is_the_standard_normal():
  mixture = priors.MixturePrior(3, 1, means_initializer='zeros')
  z = tf.random.stateless_normal([100, 3], seed=[1, 1]) * 2
  np.testing.assert_allclose(
      mixture.distribution().log_prob(z),
      priors.StandardNormalPrior(3).distribution().log_prob(z), rtol=1e-5)


def test_mixture_prior_falls_back_to_the_sampled_kl_and_trains(images):
  config = config_lib.TrainConfig.create(model='vae', prior='mixture')
  assert plan.resolve_member(config.model, (28, 28, 1))[0].kl_estimator == (
      'sampled')
  model = _model(model='vae', prior='mixture')
  names = {v.path for v in model.trainable_variables}
  assert any('means' in n for n in names), names
  with tf.GradientTape() as tape:
    loss, _ = model.objective(images, SEED)
  grads = tape.gradient(loss, model.prior.trainable_variables)
  assert all(g is not None and np.isfinite(g.numpy()).all() for g in grads)


def test_vamp_prior_density_integrates_to_one_on_a_grid():
  model = _model(model='vae', prior='vamp', prior_components=5)
  prior = model.prior_distribution()
  assert prior.event_shape == [2]
  step = 0.02
  axis = np.arange(-8, 8, step, dtype=np.float32) + step / 2
  z1, z2 = np.meshgrid(axis, axis)
  grid = np.stack([z1.ravel(), z2.ravel()], 1)
  mass = float(tf.reduce_sum(tf.exp(prior.log_prob(grid)))) * step * step
  assert mass == pytest.approx(1.0, abs=0.01)
  # The pseudo-inputs are trained through the model's own encoder.
  assert any('pseudo_inputs' in v.path for v in model.trainable_variables)


def test_vamp_prior_needs_a_gaussian_encoder():
  with pytest.raises(errors.ConfigError, match='prior needs an encoder with a '
                     'density'):
    config_lib.TrainConfig.create(model='mmd_vae', prior='vamp').validate()


@pytest.mark.parametrize('kw,flag', [
    (dict(model='mmd_vae', beta=2.0), 'beta'),
    (dict(model='vae', alpha=0.5), 'alpha'),
    (dict(model='vae', info_lambda=3.0), 'lambda'),
    (dict(model='vae', iwae_samples=3), 'iwae_samples'),
    (dict(model='iwae', kernel='imq'), 'kernel'),
    (dict(model='mmd_vae', kernel='rbf', kernel_scales=(1.0, 2.0)),
     'kernel_scales'),
])
def test_settings_a_model_would_ignore_are_refused(kw, flag):
  with pytest.raises(errors.ConfigError) as e:
    config_lib.TrainConfig.create(**kw).validate()
  assert str(e.value).startswith(f'{flag} ')


def test_kernels_and_unbiased_mmd():
  x = tf.random.stateless_normal([400, 3], seed=[1, 2])
  y = tf.random.stateless_normal([400, 3], seed=[3, 4])
  for name, scales in (('gaussian_dim', ()), ('rbf', (1.5,)), ('imq', ())):
    kernel = losses.make_kernel(name, scales)
    k = kernel(x, x).numpy()
    np.testing.assert_allclose(np.diag(k), k.max(), rtol=1e-4)  # k(x,x) max
    eig = np.linalg.eigvalsh(k.astype(np.float64))
    assert eig.min() > -1e-6 * eig.max()  # PSD up to float32 rounding
    biased = float(losses.mmd(x, y, kernel))
    unbiased = float(losses.mmd(x, y, kernel, unbiased=True))
    shifted = float(losses.mmd(x + 1.0, y, kernel, unbiased=True))
    assert biased > unbiased  # the V-statistic's positive bias
    assert abs(unbiased) < 0.05 * shifted
  # RBF at distance 1 with bandwidth 1: exp(-1/2); IMQ at 0: number of scales.
  rbf = losses.rbf_kernel(1.0)(tf.zeros([1, 2]), tf.constant([[1.0, 0.0]]))
  assert float(rbf[0, 0]) == pytest.approx(np.exp(-0.5))
  imq = losses.imq_kernel()(tf.zeros([1, 2]), tf.zeros([1, 2]))
  assert float(imq[0, 0]) == pytest.approx(len(losses.IMQ_SCALES))


@pytest.mark.parametrize('likelihood,shape', [
    ('gaussian_learned', ()), ('gaussian_per_pixel', (28, 28, 1))])
def test_learned_gaussian_scale_is_trained(images, likelihood, shape):
  model = _model(model='vae', likelihood=likelihood, gaussian_scale=0.2)
  scale = model.decoder.scale()
  assert tuple(scale.shape) == shape
  np.testing.assert_allclose(scale, 0.2, rtol=1e-4)
  with tf.GradientTape() as tape:
    loss, _ = model.objective(images, SEED)
  grad = tape.gradient(loss, model.decoder.raw_scale)
  assert grad is not None and np.any(grad.numpy() != 0)


ALLOWED = allowed_combinations()


def _pairwise(combos):
  """A few combinations that hold every allowed pair of values of any two
  factors at least once (all-pairs testing): what the full suite runs."""
  def pairs(combo):
    return {(i, combo[i], j, combo[j])
            for i, j in itertools.combinations(range(len(combo)), 2)}
  needed = set().union(*map(pairs, combos))
  chosen = []
  while needed:
    best = max(combos, key=lambda c: len(pairs(c) & needed))
    chosen.append(best)
    needed -= pairs(best)
  return chosen


# The fast tier runs these, the full suite all of them.
FAST = set(covering(ALLOWED))
# Every allowed combination (220) costs about 6 min of one core, a tenth of
# the suite; the pairs catch an interaction of any two parts.
# TFP_VAE_ALL_COMBINATIONS=1 (make test-all-combinations) runs all of them.
PAIRS = FAST | set(_pairwise(ALLOWED))
RUN_COMBINATIONS = (ALLOWED if os.environ.get('TFP_VAE_ALL_COMBINATIONS')
                    else [c for c in ALLOWED if c in PAIRS])


def test_allowed_combinations_are_all_but_vamp_with_a_point_mass():
  # 5 likelihoods, 4 architectures, 4 members by 3 priors but one.
  assert len(ALLOWED) == 5 * 4 * (3 * 4 - 1)


@pytest.mark.parametrize('combo', [
    pytest.param(c, marks=() if c in FAST else pytest.mark.slow)
    for c in RUN_COMBINATIONS], ids='-'.join)
def test_every_allowed_combination_trains_serves_and_evaluates(combo):
  """For each allowed combination: one Adam step (finite loss, a gradient
  for every variable), every serving endpoint run eagerly (the SavedModel's
  functions, without writing one), and the IWAE evaluation's importance
  weights.  SavedModels themselves are written by
  test_family_members_train_export_and_evaluate."""
  from tfp_vae.model import export  # pylint: disable=g-import-not-at-top
  from tfp_vae.model import likelihood as likelihood_lib  # pylint: disable=g-import-not-at-top
  import keras  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  model_name, prior, likelihood, arch = combo
  shape = (32, 32, 3) if arch == 'conv_deep' else (28, 28, 1)
  x = tf.constant(rng.uniform(size=(4, *shape)).astype(np.float32))
  model = _model(shape, model=model_name, prior=prior,
                 likelihood=likelihood, architecture=arch,
                 prior_components=2, latent_dim=3)
  where = combo
  with tf.GradientTape() as tape:
    loss, _ = model.objective(x, SEED)
  variables = model.trainable_variables
  grads = tape.gradient(loss, variables)
  assert np.isfinite(float(loss)), where
  missing = [v.path for v, g in zip(variables, grads) if g is None]
  assert not missing, (where, missing)
  keras.optimizers.Adam(1e-3).apply_gradients(zip(grads, variables))
  fns = export.endpoints(model, shape)
  outs = {'encode': fns['encode'][0](x),
          'decode': fns['decode'][0](tf.zeros([2, 3])),
          'reconstruct': fns['reconstruct'][0](x),
          'sample': fns['sample'][0](tf.constant(2), tf.constant(0)),
          'log_likelihood': fns['log_likelihood'][0](x)}
  for name, out in outs.items():
    for key, value in out.items():
      assert np.all(np.isfinite(value.numpy())), (where, name, key)
  assert outs['sample']['images'].shape == (2, *shape), where
  log_w = likelihood_lib.log_importance_weights(model, x, 2, SEED)
  assert log_w.shape == (2, 4) and np.all(np.isfinite(log_w)), where


def test_conv_deep_refuses_images_it_cannot_downsample():
  with pytest.raises(errors.ConfigError, match='divisible by 8'):
    _model((28, 28, 1), architecture='conv_deep')


FAMILY_RUNS = [
    dict(model='vae', beta=2.0, prior='normal', likelihood='gaussian_learned',
         architecture='conv_dense16'),
    dict(model='info_vae', alpha=0.5, info_lambda=100.0, prior='mixture',
         likelihood='gaussian_per_pixel', architecture='mlp', kernel='rbf',
         kernel_scales=(1.0,)),
    dict(model='iwae', iwae_samples=3, prior='vamp', likelihood='bernoulli',
         architecture='conv'),
    dict(model='mmd_vae', prior='mixture', likelihood='gaussian',
         architecture='mlp', kernel='imq', unbiased_mmd=True),
    dict(model='info_vae', prior='vamp', likelihood='gaussian',
         architecture='conv_deep', dataset='cifar10'),
]


@pytest.mark.parametrize('kw', FAMILY_RUNS,
                         ids=lambda kw: '-'.join(str(v) for v in kw.values()))
@pytest.mark.slow
def test_family_members_train_export_and_evaluate(tmp_path, kw):
  """Every model, prior, likelihood and architecture value at least once,
  through the trainer, the SavedModel and trainers.evaluate."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tfp_vae.experiment import evaluate as evaluation  # pylint: disable=g-import-not-at-top
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  cifar = kw.get('dataset') == 'cifar10'
  config = config_lib.TrainConfig.create(
      epochs=1, batch_size=20 if cifar else 100,
      train_examples=0 if cifar else 200, prior_components=3, latent_dim=3,
      plot_every=0, verbose=False, model_dir=str(tmp_path / 'run'),
      export_dir=str(tmp_path / 'export'), data_dir=str(tmp_path / 'tfds'),
      **kw)
  # mock_data mocks TFDS's reading, not `is_prepared`.
  os.makedirs(tmp_path / 'tfds' / kw.get('dataset', 'mnist_5k'),
              exist_ok=True)
  with tfds.testing.mock_data(num_examples=40), mock.patch.object(
      tfds.core.DatasetBuilder, 'is_prepared', return_value=True):
    metrics = training.run(config)
    result = evaluation.evaluate_run(config.runtime.model_dir,
                                     config_lib.EvalConfig(
                                         iwae_samples=2,
                                         cache_dir=str(tmp_path / 'cache')))
  assert metrics['epochs_completed'] == 1
  for key in ('test_reconstruction_nll', 'test_loss',
              'test_iwae_log_likelihood', 'test_knn_accuracy',
              'test_classifier_frechet_distance'):
    assert np.isfinite(result.metrics[key]), key
  loaded = tf.saved_model.load(str(tmp_path / 'export' / '1'))
  shape = (32, 32, 3) if cifar else (28, 28, 1)
  x = tf.constant(np.full((2, *shape), 0.5, np.float32))
  codes = loaded.signatures['encode'](images=x)['code_mean']
  assert codes.shape == (2, 3)
  out = loaded.signatures['log_likelihood'](images=x)['log_likelihood']
  assert np.all(np.isfinite(out.numpy()))
  samples = loaded.signatures['sample'](
      num_samples=tf.constant(4, tf.int64),
      seed=tf.constant(1, tf.int64))['images']
  assert samples.shape == (4, *shape)


@pytest.mark.slow
def test_early_stopping_on_a_validation_split_keeps_the_best_weights(
    tmp_path):
  """Source 003's convenience: a held-out validation split (never the test
  split), patience, the best epoch's weights; a rerun does not retrain."""
  from tfp_vae.training import run as training  # pylint: disable=g-import-not-at-top
  config = config_lib.TrainConfig.create(
      model='vae', epochs=40, batch_size=100, train_examples=300,
      validation_examples=100, early_stopping_patience=1,
      learning_rate=0.02, lr_schedule='cosine', plot_every=0,
      verbose=False, model_dir=str(tmp_path / 'run'))
  metrics = training.run(config)
  history = rundir.read_history(config.runtime.model_dir)
  val = [r['val_loss'] for r in history]
  assert len(history) < 40, 'never stopped'
  best = int(np.argmin(val)) + 1
  assert metrics['early_stopped_best_epoch'] == best
  assert metrics['early_stopped_best_val_loss'] == pytest.approx(min(val),
                                                                 rel=1e-5)
  assert len(history) == best + 1  # patience 1
  again = training.run(config)
  assert again['epochs_completed'] == len(history)
  assert len(rundir.read_history(config.runtime.model_dir)) == len(history)
  with pytest.raises(errors.ConfigError, match='needs validation_examples'):
    config_lib.TrainConfig.create(early_stopping_patience=2).validate()


def test_the_kernels_old_name_is_accepted_with_a_deprecation_line(caplog):
  """--kernel=sources was renamed gaussian_dim: the old value (a flag, a
  spec, a recorded run's config) still means the same kernel."""
  from tfp_vae.family import specs  # pylint: disable=g-import-not-at-top
  with caplog.at_level('WARNING'):
    member = family.create('mmd_vae', kernel='sources')
  assert member.kernel == 'gaussian_dim'
  assert member == family.create('mmd_vae')
  assert '--kernel=sources is deprecated' in caplog.text
  assert specs.parse('info_vae:kernel=sources').kernel == 'gaussian_dim'
