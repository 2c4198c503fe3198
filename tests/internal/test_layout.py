"""The version-folder layout (tfp_vae/internal/layout.py)."""

import os

from tfp_vae.internal import layout


def test_version_folders_may_have_leading_zeros(tmp_path):
  for name in ('00000123', '7', '.tmp-1-x', '0042'):
    os.makedirs(tmp_path / name)
  (tmp_path / '9').write_text('a file, not a version')
  assert layout.version_dirs(str(tmp_path)) == {7: '7', 42: '0042',
                                                123: '00000123'}
  assert layout.versions(str(tmp_path)) == [7, 42, 123]
  assert layout.versions(str(tmp_path / 'missing')) == []
