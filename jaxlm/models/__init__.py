"""Models: pure-functional Flax linen modules, one family per module.

`FAMILIES` is the only place that knows which model families exist; the
rest of jaxlm reaches a family through `get(name)` / `family_of(config)` and
its hooks (`family.py`). Adding a family: a module with its Flax module and
a `FAMILY` record, and one line below.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.errors import JaxlmError
from jaxlm.models import (direct_regression, dslpt, infinite3d, lensmaster,
                          queries3d, slpt, tufa)
from jaxlm.models.family import Family

FAMILIES: dict[str, Family] = {f.name: f for f in (
    tufa.FAMILY,
    slpt.FAMILY,
    dslpt.FAMILY,
    direct_regression.FAMILY,
    queries3d.FAMILY,
    infinite3d.FAMILY,
    lensmaster.FAMILY,
)}


def get(name: str) -> Family:
  """The family registered as `name`, or JaxlmError naming the known ones."""
  if name not in FAMILIES:
    raise JaxlmError(f'config key model.name: unknown model {name!r} '
                     f'(known: {", ".join(FAMILIES)})')
  return FAMILIES[name]


def family_of(model_config) -> Family:
  return get(model_config.name)


def build(model_config, datasets):
  """The Flax module of `model_config` (missing keys at the family's
  defaults) for the training datasets ((name, num_points), ...)."""
  family = family_of(model_config)
  return family.build(family.complete(model_config), tuple(datasets))


def init_variables(model, rng, image_size: int, num_points: int = 1):
  """Variables of `model` initialised on a (1, S, S, 3) image."""
  return model.init(rng, jnp.zeros((1, image_size, image_size, 3), jnp.uint8),
                    point_index=jnp.zeros((1, num_points), jnp.int32))


def abstract_variables(model, image_size: int):
  """Shapes and dtypes of `model`'s variables (nothing is computed)."""
  return jax.eval_shape(lambda: init_variables(model, jax.random.key(0),
                                               image_size))


def variables(params, constants, batch_stats=None) -> dict:
  """The variables dict `model.apply` takes."""
  out = {'params': params, 'constants': constants}
  if batch_stats is not None:
    out['batch_stats'] = batch_stats
  return out


def num_params(tree) -> int:
  return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(tree)))
