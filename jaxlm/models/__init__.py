"""Models: pure-functional Flax linen modules, built from a config."""

from __future__ import annotations

import jax.numpy as jnp

from jaxlm.models.tufa import TUFA

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def build(model_config, datasets) -> TUFA:
  """Builds the model named by `model_config.name`.

  Args:
    model_config: the config's `model` field.
    datasets: ((name, num_points), ...) of the training datasets.
  """
  if model_config.name != 'tufa':
    raise ValueError(f'config key model.name: unknown model '
                     f'{model_config.name!r} (known: tufa)')
  if model_config.dtype not in _DTYPES:
    raise ValueError(f'config key model.dtype: {model_config.dtype!r} is not '
                     f'one of {sorted(_DTYPES)}')
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
