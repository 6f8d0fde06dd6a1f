"""The dual vision-transformer block of the Cascaded Dual Vision Transformer
(CD-ViT, Dang, Li, Liu, WACV 2025; the refinement network of LensMaster,
paper 000): a spatial-split and a channel-split transformer over one patch
embedding each, fused by a residual double convolution.

For a (B, S, S, C) map (C = 256, S = 32 in the paper) and patch p = 2:

  spatial branch: Conv(C -> D, p x p, stride p, bias), D = (C / 2) p^2
    -> (S / p)^2 tokens of width D (row-major), one pre-norm transformer
    layer -> un-patchify to (B, S, S, C / 2);
  channel branch: its own Conv(C -> D, p x p, stride p, bias) -> the D
    channels as tokens, each of width (S / p)^2 (its flattened map), one
    pre-norm transformer layer -> un-patchify to (B, S, S, C / 2);
  out = DoubleConv(C -> C)(concat[channel branch, spatial branch]).

A transformer layer is t + MHA(LN(t)), then t + FF(t) with FF = LN ->
Linear(d, d) -> GELU (exact) -> Linear(d, d): MLP ratio 1, 4 heads, LayerNorm
eps 1e-5, no position embedding, no class token, no dropout. Un-patchify is
depth-to-space with a token's features ordered (row in patch, column in
patch, channel), the channel fastest (the official reshape, not
PixelShuffle's channel-major order).

Behaviour read from the public code (Attention.py's `SA2SA1_2` with
`SelfAttention_block2` and `SelfAttention2_block`; the upstream repository
`Human3DAIGC/AccurateFacialLandmarkDetection` could not be fetched here, its
first two commits were read in a fork). The document's "shifted window
attention in stages 6-8" is not in that code: every stage uses this same
global attention, and so does jaxlm.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.attention import MultiHeadAttention, torch_linear_init
from jaxlm.models.double_conv import DoubleConv
from jaxlm.models.torch_defaults import conv
from jaxlm.models.vit import gelu

LN_EPS = 1e-5  # torch nn.LayerNorm's default


class TransformerLayer(nn.Module):
  """One pre-norm layer: t + MHA(LN(t)); t + Linear(GELU(Linear(LN(t))))."""
  num_heads: int = 4
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, t):
    d = t.shape[-1]
    ln = lambda name: nn.LayerNorm(LN_EPS, dtype=self.dtype, name=name)
    y = ln('norm1')(t)
    t = t + MultiHeadAttention(self.num_heads, self.dtype, name='attn')(
        y, y, y)
    k, b = torch_linear_init(d)
    y = nn.Dense(d, dtype=self.dtype, kernel_init=k, bias_init=b,
                 name='fc1')(ln('norm2')(t))
    return t + nn.Dense(d, dtype=self.dtype, kernel_init=k, bias_init=b,
                        name='fc2')(gelu(y))


def depth_to_space(x, patch: int):
  """(B, h, w, p * p * c) -> (B, h p, w p, c), features ordered (row in
  patch, column in patch, channel)."""
  b, h, w, d = x.shape
  c = d // (patch * patch)
  x = x.reshape(b, h, w, patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(b, h * patch, w * patch, c)


class DualViTBlock(nn.Module):
  """Spatial- and channel-split attention, then DoubleConv (docstring above).

  Attributes:
    num_heads: heads of both transformer layers (4).
    patch: the patch embedding's kernel and stride (2, `win_size`).
  """
  num_heads: int = 4
  patch: int = 2
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    b, s, s2, c = x.shape
    p = self.patch
    if s != s2 or s % p or c % 2:
      raise ValueError(f'dual block: a square map with side divisible by '
                       f'{p} and an even width, got {x.shape[1:]}')
    d, g = (c // 2) * p * p, s // p

    def embed(name):
      return conv(d, p, c, True, self.dtype, name, stride=p, padding=0)(x)

    # spatial split: (S/p)^2 tokens of width D
    t = embed('spatial_embed').reshape(b, g * g, d)
    t = TransformerLayer(self.num_heads, self.dtype, name='spatial')(t)
    spatial = depth_to_space(t.reshape(b, g, g, d), p)
    # channel split: D tokens, each the (S/p)^2 values of one channel
    t = embed('channel_embed').reshape(b, g * g, d).transpose(0, 2, 1)
    t = TransformerLayer(self.num_heads, self.dtype, name='channel')(t)
    channel = depth_to_space(t.transpose(0, 2, 1).reshape(b, g, g, d), p)
    fused = jnp.concatenate([channel, spatial], axis=-1)
    return DoubleConv(c, dtype=self.dtype, name='fuse')(fused, train)
