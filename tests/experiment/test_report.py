"""The comparison's report (tfp_vae/experiment/report.py)."""

from tfp_vae.experiment import comparison
from tfp_vae.config import settings as config_lib
from tfp_vae.family import members as family
from tfp_vae.experiment import report


def test_a_members_own_terms_reach_the_report(tmp_path):
  members = {'vae': family.create('vae'), 'mmd_vae': family.create('mmd_vae')}
  base = config_lib.TrainConfig.create()
  runs = [comparison.ComparedRun(label, seed, base) for label in members
          for seed in (0, 1)]
  per_run = {(r.label, r.seed): {'test_reconstruction_nll': 90.0 + r.seed,
                                 'test_loss': 95.0 + r.seed}
             for r in runs}
  for seed in (0, 1):
    per_run[('mmd_vae', seed)]['test_mmd'] = 0.25 + seed
  results = comparison.summarise(runs, per_run, members)
  assert results['models']['mmd_vae']['summary']['test_mmd']['mean'] == 0.75
  assert report.member_metrics(results, members) == [
      ('test_mmd', 'own objective term mmd of mmd_vae (as weighted in its '
       'loss; test split)', '')]
  page = report.write_report(str(tmp_path / 'report.html'), results, {}, {},
                             base, members=members)
  with open(page) as f:
    text = f.read()
  row = text.split('<code>test_mmd</code>', 1)[1].split('</tr>', 1)[0]
  assert 'own objective term mmd of mmd_vae' in row and '>0.75<' in row
