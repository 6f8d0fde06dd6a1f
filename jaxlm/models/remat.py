"""Rematerialisation (gradient checkpointing) of repeated blocks, opt-in by
`model.remat`.

Training keeps every intermediate of the forward pass for the backward pass;
for a ViT at batch 8 and 256 px those activations, not the parameters, are
what fills memory. With remat a block keeps only what the setting saves and
recomputes the rest during the backward pass (`jax.checkpoint`, lifted to
Flax by `nn.remat`): less memory for about one more forward pass of
compute. Parameters, their names and the numbers computed are unchanged, so
a run may switch it on or off between resumes.

Settings (`POLICIES`, the only table of them; every family reads it through
`remat_of` and `checkpointed`):

  'none'   nothing recomputed (the default);
  'blocks' each repeated block (ViT / transformer blocks, decoder layers,
           HRNet modules, ResNet / ConvNeXt / MobileNet blocks, cascade dual
           blocks) keeps only its inputs and recomputes its inside;
  'dots'   as 'blocks', but a block also keeps the results of its matrix
           products without batch dimensions (the Dense layers:
           `jax.checkpoint_policies.dots_with_no_batch_dims_saveable`) and
           recomputes the cheap rest (norms, activations, attention scores
           and softmax, convolutions). Between the two in memory and time.
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxlm.errors import JaxlmError

# setting -> the jax.checkpoint policy of a wrapped block (None: save
# nothing but the block's inputs); 'none' wraps nothing
POLICIES = {
    'none': None,
    'blocks': None,
    'dots': jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


def remat_of(model_config) -> str:
  """`model.remat` of a model config (default 'none'), or JaxlmError naming
  the key and the accepted values."""
  value = model_config.get('remat', 'none')
  if value not in POLICIES:
    raise JaxlmError(f'config key model.remat: {value!r} is not one of '
                     f'{", ".join(POLICIES)}')
  return value


def checkpointed(module_class, remat: str, static_argnums=()):
  """`module_class`, rematerialised as setting `remat` says.

  Args:
    module_class: a Flax module class whose `__call__` is one block.
    remat: a key of `POLICIES`.
    static_argnums: positions of `__call__`'s Python-valued arguments
      (`train`, `deterministic`), counting `self` as 0; pass them
      positionally. Array arguments may be any pytree.

  Returns:
    `module_class` itself for 'none', else its `nn.remat` version (call it
    with an explicit `name=`: an automatic name would follow the wrapped
    class's name and change the parameter paths).
  """
  if remat not in POLICIES:
    raise ValueError(f'unknown remat setting {remat!r} (known: '
                     f'{", ".join(POLICIES)})')
  if remat == 'none':
    return module_class
  return nn.remat(module_class, policy=POLICIES[remat],
                  static_argnums=tuple(static_argnums))
