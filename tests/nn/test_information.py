"""The information metrics (tfp_vae/nn/information.py) on cases with known
answers, and as the test metrics report them."""

import math
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_vae.config import settings as config_lib
from tfp_vae.nn import information
from tfp_vae.evaluation import metrics
from tfp_vae.model import models as models_lib

tfd = tfp.distributions


def _linear_gaussian(n, latent, gain, noise, seed=0):
  """x ~ N(0, I), q(z|x) = N(gain x, noise^2 I): I(x; z) =
  latent/2 log(1 + gain^2/noise^2), q(z) = N(0, (gain^2 + noise^2) I)."""
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, latent))
  means = gain * x
  stddevs = np.full_like(means, noise)
  codes = means + noise * rng.normal(size=means.shape)
  prior = tfd.MultivariateNormalDiag(tf.zeros(latent, tf.float64))
  return codes, means, stddevs, prior.log_prob(codes).numpy()


def test_mutual_information_and_marginal_kl_of_a_linear_gaussian_encoder():
  latent, gain, noise = 2, 1.0, 1.0
  codes, means, stddevs, prior_lp = _linear_gaussian(4000, latent, gain,
                                                     noise)
  split = information.aggregate_posterior(codes, means, stddevs, prior_lp)
  exact_mi = latent / 2 * math.log(1 + gain**2 / noise**2)  # 0.693
  var = gain**2 + noise**2
  exact_kl = latent / 2 * (var - 1 - math.log(var))  # 0.307
  assert split['mutual_information'] == pytest.approx(exact_mi, abs=0.05)
  assert split['marginal_kl'] == pytest.approx(exact_kl, abs=0.05)
  # The two add up to the one-sample rate on the same codes, exactly.
  own = tfd.MultivariateNormalDiag(means, stddevs).log_prob(codes).numpy()
  assert (split['mutual_information'] + split['marginal_kl'] ==
          pytest.approx(np.mean(own - prior_lp), abs=1e-9))


def test_the_estimate_is_infonce_with_the_encoders_density_as_critic():
  codes, means, stddevs, prior_lp = _linear_gaussian(300, 3, 2.0, 0.5,
                                                     seed=1)
  scores = tfd.MultivariateNormalDiag(means, stddevs).log_prob(
      codes[:, None, :]).numpy()  # [i, n] = log q(z_i | x_n)
  infonce = float(tfp.vi.mutual_information.lower_bound_info_nce(scores))
  information.BLOCK, block = 7, information.BLOCK  # blocks do not matter
  try:
    split = information.aggregate_posterior(codes, means, stddevs, prior_lp)
  finally:
    information.BLOCK = block
  assert split['mutual_information'] == pytest.approx(infonce, abs=1e-6)


def test_the_estimate_stops_at_log_n_where_the_information_is_larger():
  # I = 3/2 log(1 + 1e6) = 20.7 nats, but 200 images can show log 200.
  codes, means, stddevs, prior_lp = _linear_gaussian(200, 3, 1.0, 1e-3)
  split = information.aggregate_posterior(codes, means, stddevs, prior_lp)
  assert split['mutual_information'] <= math.log(200) + 1e-9
  assert split['mutual_information'] > math.log(200) - 0.01


def test_an_encoder_equal_to_the_prior_has_no_information_and_no_holes():
  rng = np.random.default_rng(2)
  codes = rng.normal(size=(500, 4))
  prior_lp = tfd.MultivariateNormalDiag(tf.zeros(4, tf.float64)).log_prob(
      codes).numpy()
  split = information.aggregate_posterior(codes, np.zeros_like(codes),
                                          np.ones_like(codes), prior_lp)
  assert split['mutual_information'] == pytest.approx(0, abs=1e-9)
  assert split['marginal_kl'] == pytest.approx(0, abs=1e-9)
  assert information.kl_per_unit(np.zeros_like(codes),
                                 np.ones_like(codes)) == pytest.approx(0)


def test_the_other_image_is_never_the_image_itself():
  for n in (2, 3, 101):
    other = information.derangement(n, seed=5)
    assert sorted(other) == list(range(n))
    assert np.all(other != np.arange(n))
  with pytest.raises(ValueError, match='at least 2 images'):
    information.derangement(1, seed=0)


def _model(member, prior='normal'):
  cfg = config_lib.TrainConfig.create(
      model=member, latent_dim=3, architecture='mlp', prior=prior,
      prior_components=2).validate()
  return models_lib.build_model(cfg, (8, 8, 1), seed=0)


@pytest.fixture(scope='module')
def images():
  return np.random.default_rng(3).uniform(size=(60, 8, 8, 1)).astype(
      np.float32)


def test_a_decoder_that_ignores_its_code_gains_nothing_from_it(images):
  model = _model('vae')
  out, _ = metrics.test_set_metrics(model, images, seed=1)
  assert abs(out['test_code_gain']) > 1e-3  # this decoder reads its code
  first = next(layer for layer in model.decoder.network.layers
               if layer.weights)
  kernel, *rest = first.get_weights()
  first.set_weights([np.zeros_like(kernel), *rest])
  out, _ = metrics.test_set_metrics(model, images, seed=1)
  assert out['test_code_gain'] == pytest.approx(0, abs=1e-4)


def test_each_encoder_reports_what_is_defined_for_it(images):
  out, _ = metrics.test_set_metrics(_model('vae'), images, seed=0)
  assert 0 <= out['test_mutual_information'] <= math.log(len(images))
  assert out['test_marginal_kl'] > -0.1  # an estimate of a KL
  # Each unit's rate adds up to the closed-form rate.
  assert len(out['test_kl_per_unit']) == 3
  assert sum(out['test_kl_per_unit']) == pytest.approx(out['test_rate'],
                                                       rel=1e-4)
  # A point mass has no density: no mutual information, no marginal KL.
  out, _ = metrics.test_set_metrics(_model('mmd_vae'), images, seed=0)
  assert 'test_code_gain' in out and out['test_code_variance'] > 0
  for key in ('test_mutual_information', 'test_marginal_kl',
              'test_kl_per_unit'):
    assert key not in out
  # A prior that is not the standard normal: no per-unit split of the rate.
  out, _ = metrics.test_set_metrics(_model('vae', prior='mixture'), images,
                                    seed=0)
  assert 'test_mutual_information' in out
  assert 'test_kl_per_unit' not in out


def test_the_aggregate_variance_of_a_linear_gaussian_encoder():
  # q(z) = N(0, (gain^2 + noise^2) I): 2.25 + 0.25 per unit.
  codes, means, stddevs, _ = _linear_gaussian(20000, 3, 1.5, 0.5, seed=5)
  np.testing.assert_allclose(information.aggregate_variance(means, stddevs),
                             [2.5] * 3, rtol=0.03)
  # A point mass: the codes' own variance; the encoder's codes equal to the
  # prior's draws read 1.
  draws = np.random.default_rng(6).normal(size=(20000, 2))
  np.testing.assert_allclose(information.aggregate_variance(draws), [1, 1],
                             rtol=0.03)


def test_a_sample_of_the_codes_estimates_the_same_split():
  codes, means, stddevs, prior_lp = _linear_gaussian(3000, 2, 1.0, 1.0,
                                                     seed=4)
  every = information.aggregate_posterior(codes, means, stddevs, prior_lp)
  some = information.aggregate_posterior(codes, means, stddevs, prior_lp,
                                         max_codes=1000, seed=0)
  for key in every:
    assert some[key] == pytest.approx(every[key], abs=0.05)
    assert some[key] != every[key]  # a sample, not every code


def test_the_plane_places_each_run_and_draws_a_point_mass_as_a_line(
    tmp_path):
  from tfp_vae.evaluation import plots  # pylint: disable=g-import-not-at-top
  vae = [{'test_rate': r, 'test_reconstruction_nll': d,
          'test_mutual_information': r / 2, 'test_kl_per_unit': [r, 0.0]}
         for r, d in ((3.0, 250.0), (3.5, 248.0))]
  mmd = [{'test_reconstruction_nll': 240.0}]
  path = str(tmp_path / 'plane.png')
  fig = plots.rate_distortion({'vae': vae, 'mmd_vae': mmd}, path)
  plane, units = fig.axes
  (points,) = plane.collections
  np.testing.assert_allclose(points.get_offsets(), [[3.0, 250.0],
                                                    [3.5, 248.0]])
  assert [t.get_text() for t in plane.texts] == ['I=1.50', 'I=1.75']
  (line,) = plane.lines  # the point mass, at its distortion
  assert line.get_ydata()[0] == 240.0
  assert [tuple(l.get_ydata()) for l in units.lines] == [(3.0, 0.0)]
  assert os.path.getsize(path) > 1000
