"""The registries (tfp_vae/internal/registry.py): an unknown name is refused
listing the known ones."""

import pytest

from tfp_vae.family import components
from tfp_vae.internal import errors
from tfp_vae.family import members as family
from tfp_vae.internal import registry


REGISTRIES = (family.MEMBERS, components.LIKELIHOODS, components.PRIORS,
              components.ARCHITECTURES, components.ENCODERS)


def test_each_registry_refuses_an_unknown_name_listing_the_known():
  for reg in REGISTRIES:
    with pytest.raises(errors.ConfigError,
                       match=rf'{reg.setting} must be one of \['):
      reg.get('no_such_part')
    assert reg.default in reg.names()
    assert reg.describe().count(':') >= len(reg.names())
  assert registry.registry_of('prior') is components.PRIORS
