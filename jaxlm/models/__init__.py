"""Models: pure-functional Flax linen modules, built from a config."""

from __future__ import annotations

import jax.numpy as jnp

from jaxlm.errors import JaxlmError
from jaxlm.models.dslpt import DSLPT
from jaxlm.models.slpt import SLPT
from jaxlm.models.tufa import TUFA

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
MODELS = ('tufa', 'slpt', 'dslpt')


def build(model_config, datasets):
  """Builds the model named by `model_config.name`.

  Args:
    model_config: the config's `model` field.
    datasets: ((name, num_points), ...) of the training datasets.
  """
  if model_config.name not in MODELS:
    raise JaxlmError(f'config key model.name: unknown model '
                     f'{model_config.name!r} (known: {", ".join(MODELS)})')
  if model_config.dtype not in _DTYPES:
    raise JaxlmError(f'config key model.dtype: {model_config.dtype!r} is not '
                     f'one of {sorted(_DTYPES)}')
  if model_config.name in ('slpt', 'dslpt'):
    return _build_slpt(model_config, tuple(datasets))
  return TUFA(variant=model_config.variant, datasets=tuple(datasets),
              decoder_layers=model_config.decoder_layers,
              decoder_heads=model_config.decoder_heads,
              decoder_mlp=model_config.decoder_mlp,
              head_hidden=model_config.head_hidden,
              pos_resize=model_config.pos_resize,
              pos_init=model_config.get('pos_init', 'random'),
              prompt_temperature=model_config.get('prompt_temperature',
                                                  10000.0),
              pos_init_scale=model_config.get('pos_init_scale', 1.0),
              dtype=_DTYPES[model_config.dtype])


def _build_slpt(c, datasets):
  """SLPT / DSLPT: one landmark layout; `model.variant` names the backbone
  ('hrnet_lite', 'hrnet', 'resnet34', 'resnet50', 'vit:<ViT variant>')."""
  if len(datasets) != 1:
    raise JaxlmError(f'config key data.train: {c.name} learns one landmark '
                     f'layout from one training dataset, got '
                     f'{", ".join(n for n, _ in datasets)}')
  cls = SLPT if c.name == 'slpt' else DSLPT
  kw = dict(num_points=int(datasets[0][1]), backbone=c.variant,
            width=c.width, num_heads=c.num_heads, num_layers=c.num_layers,
            mlp_dim=c.mlp_dim, dropout=c.dropout, patch=c.patch,
            half_sizes=tuple(float(h) for h in c.half_sizes),
            dtype=_DTYPES[c.dtype], pos_init=c.get('pos_init', 'random'),
            pos_init_scale=c.get('pos_init_scale', 1.0))
  if not kw['half_sizes']:
    raise JaxlmError('config key model.half_sizes: at least one stage')
  return cls(**kw)
