"""The members' objectives (tfp_vae/family/objectives.py): reductions to
the ELBO, the settings a member would ignore, the kernels and their old
name."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tests.helpers import build_model as _model
from tfp_vae.config import settings as config_lib
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.nn import losses

tfd = tfp.distributions
SEED = tf.constant([3, 4], tf.int32)


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
