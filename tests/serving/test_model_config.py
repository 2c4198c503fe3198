"""models.config parsing (tfp_vae/serving/model_config.py): version policies,
labels and errors."""

import pytest

from tfp_vae.serving import model_config


def test_model_config_file_policies_labels_and_errors(tmp_path):
  path = tmp_path / 'models.config'
  path.write_text('''
    model_config_list {
      config { name: "a" base_path: "/m/a" model_platform: "tensorflow" }
      config { name: "b" base_path: "/m/b"
               model_version_policy { latest { num_versions: 2 } } }
      config { name: "c" base_path: "/m/c"
               model_version_policy { specific { versions: 3 versions: 1 } }
               version_labels { key: "stable" value: 1 } }
      config { name: "d" base_path: "/m/d" model_version_policy { all {} } }
    }''')
  a, b, c, d = model_config.read_model_config_file(str(path))
  assert (a.name, a.base_path, a.policy) == (
      'a', '/m/a', model_config.VersionPolicy('latest', 1))
  on_disk = [1, 2, 3, 4]
  assert a.policy.select(on_disk) == [4]
  assert b.policy.select(on_disk) == [3, 4]
  assert c.policy.select(on_disk) == [1, 3] and c.labels == {'stable': 1}
  assert d.policy.select(on_disk) == on_disk
  for text, message in (
      ('model_config_list { config { name: "a" } } x', 'is not a text '
       'ModelServerConfig'),
      ('model_config_list { }', 'lists no model'),
      ('model_config_list { config { name: "a" base_path: "/x" } '
       'config { name: "a" base_path: "/y" } }', "names ['a'] more than once"),
      ('model_config_list { config { name: "a" base_path: "/x" '
       'model_platform: "onnx" } }', "model_platform 'onnx'"),
      ('model_config_list { config { name: "a" } }', 'base_path is empty'),
  ):
    path.write_text(text)
    with pytest.raises(model_config.ServingError) as e:
      model_config.read_model_config_file(str(path))
    assert message in str(e.value)
