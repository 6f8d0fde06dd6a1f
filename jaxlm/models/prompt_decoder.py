"""TUFA's prompt decoder (thesis §6.2.1, Eq. 6.6-6.11).

Pre-norm transformer decoder layers; the target t starts at zero and is
refined by
  self-attention:  q = k = LN(t) + E, v = LN(t)           (Eq. 6.6)
  cross-attention: q = LN(t) + E, k = F + P, v = F        (Eq. 6.9)
  FFN:             Linear -> ReLU -> Linear
with E the structure prompts, F the encoder's patch tokens and P its position
embedding. Parameters start from PyTorch's default initialisation, as in the
official code (whose trunc-normal init reaches only the head). One final LayerNorm (eps 1e-5), shared, is applied to *every*
layer's output, so each layer's output can be supervised.

Shapes: memory (B, L, C), memory_pos (1 or B, L, C), prompts (B, N, C).
Output: (num_layers, B, N, C).

Each layer's cross-attention sows its weights (B, heads, N, L) into the
'intermediates' collection when the caller makes it mutable (`attention.py`);
`cross_attention_weights` stacks them per call and layer.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.attention import MultiHeadAttention, torch_linear_init
from jaxlm.models.remat import checkpointed


class PromptDecoderLayer(nn.Module):
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, t, prompts, memory, memory_pos, deterministic=True):
    ln = lambda name: nn.LayerNorm(1e-5, dtype=self.dtype, name=name)
    drop = nn.Dropout(self.dropout, deterministic=deterministic)
    y = ln('norm1')(t)
    qk = y + prompts
    t = t + drop(MultiHeadAttention(self.num_heads, self.dtype,
                                    name='self_attn')(qk, qk, y))
    y = ln('norm2')(t)
    t = t + drop(MultiHeadAttention(self.num_heads, self.dtype,
                                    sow_weights=True, name='cross_attn')(
                                        y + prompts, memory + memory_pos,
                                        memory))
    y = ln('norm3')(t)
    c = t.shape[-1]
    k1, b1 = torch_linear_init(c)
    k2, b2 = torch_linear_init(self.mlp_dim)
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, kernel_init=k1, bias_init=b1,
                 name='linear1')(y)
    y = drop(nn.relu(y))
    y = nn.Dense(c, dtype=self.dtype, kernel_init=k2, bias_init=b2,
                 name='linear2')(y)
    return t + drop(y)


def cross_attention_weights(intermediates):
  """(calls, num_layers, B, heads, N, L) cross-attention weights of the
  prompts (queries) over the memory tokens, from a PromptDecoder's subtree of
  the 'intermediates' collection (one entry per call of the decoder: SLPT's
  stages share theirs). Each row sums to 1 over the L tokens."""
  names = sorted((k for k in intermediates if k.startswith('layers_')),
                 key=lambda k: int(k.split('_')[1]))
  if not names:
    raise ValueError('no decoder layers in these intermediates; apply the '
                     "model with mutable=['intermediates']")
  return jnp.stack([jnp.stack(intermediates[k]['cross_attn'][
      'attention_weights']) for k in names], axis=1)


class PromptDecoder(nn.Module):
  """`num_layers` PromptDecoderLayers, each output through the shared final
  LayerNorm; `remat` rematerialises each layer (`remat.POLICIES`)."""
  num_layers: int = 6
  num_heads: int = 6
  mlp_dim: int = 1536
  dropout: float = 0.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, memory, memory_pos, prompts, deterministic=True):
    memory = memory.astype(self.dtype)
    memory_pos = memory_pos.astype(self.dtype)
    prompts = prompts.astype(self.dtype)
    t = jnp.zeros_like(prompts)
    norm = nn.LayerNorm(1e-5, dtype=self.dtype, name='norm')
    outs = []
    # (self, t, prompts, memory, memory_pos, deterministic): 5 is static
    layer = checkpointed(PromptDecoderLayer, self.remat, static_argnums=(5,))
    for i in range(self.num_layers):
      t = layer(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                name=f'layers_{i}')(t, prompts, memory, memory_pos,
                                    deterministic)
      outs.append(norm(t))
    return jnp.stack(outs)
