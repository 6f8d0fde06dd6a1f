"""Multi-head attention shared by the ViT encoder and the transformer decoders.

Shapes: queries (B, T, C), keys/values (B, S, C); heads split C into
(num_heads, C // num_heads). The kernel is `jax.nn.dot_product_attention`,
which XLA fuses and which may use cuDNN flash attention on GPUs for bf16
inputs; on CPUs the same function written out head by head, which XLA:CPU
runs faster (`attend`).

Attention weights are never materialised by the normal forward. A module
built with `sow_weights=True` also computes them, as a separate softmax, only
when its caller made the 'intermediates' collection mutable
(`apply(..., mutable=['intermediates'])` or `capture_intermediates=True`);
it then sows them as 'attention_weights' (`attention_weights`). Otherwise
the traced program is exactly the plain one.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

# DINO's ViT and TUFA's head use trunc_normal_(std=0.02) with zero bias.
dense_init = nn.initializers.truncated_normal(0.02)


def torch_linear_init(fan_in: int):
  """(kernel_init, bias_init) of PyTorch's default nn.Linear:
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for both."""
  bound = 1.0 / fan_in**0.5
  init = lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)
  return init, init


def torch_mha_in_proj_init(width: int):
  """Xavier-uniform of nn.MultiheadAttention's packed (3C, C) in_proj."""
  bound = (6.0 / (width + 3 * width))**0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


def attend(q, k, v, num_heads: int):
  """Scaled dot-product attention of (B, T, C) q with (B, S, C) k, v: on
  CPUs `attend_per_head`, elsewhere `fused_attention`. Both compute the
  logits and the softmax in float32; they differ by rounding only."""
  if jax.default_backend() == 'cpu':
    return attend_per_head(q, k, v, num_heads)
  return fused_attention(q, k, v, num_heads)


def fused_attention(q, k, v, num_heads: int):
  """`attend` on GPUs and TPUs: `jax.nn.dot_product_attention` (XLA's fused
  attention, cuDNN's where it applies)."""
  b, t, c = q.shape
  s, h = k.shape[1], c // num_heads
  out = jax.nn.dot_product_attention(
      q.reshape(b, t, num_heads, h), k.reshape(b, s, num_heads, h),
      v.reshape(b, s, num_heads, h))
  return out.reshape(b, t, c)


def attend_per_head(q, k, v, num_heads: int, softmax=None):
  """`attend` on CPUs: one head at a time, each head's (B, T, C / heads)
  slices of q, k, v, products batched over B only, and a softmax whose
  gradient is written out, y (g - sum(g y)) (`softmax`: another function
  in its place, for `benchmarks/attention_cpu.py`).

  Why (2-core Zen 4, fp32, forward + backward, `benchmarks/attention_cpu.py`,
  `benchmarks/results/train_step_vs_official_cpu.md`): XLA:CPU's products
  batched over (B, heads) run at 40-80 GFLOP/s there against 180-200 for
  large ones. ViT-S/16 blocks (257 tokens, batch 8): 25.7 ms, against 59
  for (B, heads, T, S) products with `jax.nn.softmax`, 54 for the fused
  form, 35 with autodiff's softmax gradient, and 28 in torch. The decoders'
  shorter sequences gain 1.1-1.2x over the heads-first form (there
  autodiff's softmax gradient is about as fast).

  Limits: the written-out gradient is reverse mode only (`jax.jvp` through
  it raises; nothing in jaxlm uses forward mode). On a CPU mesh that shards
  C over 'tensor' (`train/sharding.py`; on CPUs only in tests) the per-head
  slices of C cost collectives; the numbers are the same.
  """
  softmax = softmax or _softmax
  h = q.shape[-1] // num_heads
  outs = []
  for i in range(num_heads):
    head = slice(i * h, (i + 1) * h)
    # float32 logits, scaled in float32, as jax.nn.dot_product_attention
    logits = jnp.einsum('btd,bsd->bts', q[..., head], k[..., head],
                        preferred_element_type=jnp.float32) * (h ** -0.5)
    p = softmax(logits).astype(v.dtype)
    outs.append(jnp.einsum('bts,bsd->btd', p, v[..., head]))
  return jnp.concatenate(outs, axis=-1)


@jax.custom_vjp
def _softmax(x):
  """softmax over the last axis; its gradient y (g - sum(g y)) written out
  (`attend_per_head`; reverse mode only)."""
  e = jnp.exp(x - jnp.max(x, axis=-1, keepdims=True))
  return e / jnp.sum(e, axis=-1, keepdims=True)


def _softmax_fwd(x):
  y = _softmax(x)
  return y, y


def _softmax_bwd(y, g):
  return (y * (g - jnp.sum(g * y, axis=-1, keepdims=True)),)


_softmax.defvjp(_softmax_fwd, _softmax_bwd)


def attention_weights(q, k, num_heads: int):
  """(B, heads, T, S) float32 softmax(q k^T / sqrt(C / heads)) over the S
  keys: the weights `attend` applies, computed on their own."""
  b, t, c = q.shape
  s = k.shape[1]
  h = c // num_heads
  logits = jnp.einsum('bthd,bshd->bhts',
                      q.reshape(b, t, num_heads, h).astype(jnp.float32),
                      k.reshape(b, s, num_heads, h).astype(jnp.float32))
  return jax.nn.softmax(logits / jnp.sqrt(jnp.float32(h)), axis=-1)


class MultiHeadAttention(nn.Module):
  """Attention with separate q, k, v projections (torch's MultiheadAttention).

  Torch packs the three projections into `in_proj_weight` (3C, C); they are
  kept apart here (`query`, `key`, `value`, `out`) so that each input can be
  a different tensor, as the DETR-style decoders need. Initialised as torch
  initialises nn.MultiheadAttention (xavier-uniform in_proj, zero biases,
  default nn.Linear weight for out_proj), as the official decoders are.

  sow_weights: sow the (B, heads, T, S) attention weights into
  'intermediates' as 'attention_weights' when that collection is mutable
  (see the module docstring); no effect on parameters or outputs.
  """
  num_heads: int
  dtype: jnp.dtype = jnp.float32
  sow_weights: bool = False

  @nn.compact
  def __call__(self, query, key, value):
    c = query.shape[-1]
    if c % self.num_heads:
      raise ValueError(f'width {c} is not divisible by {self.num_heads} heads')
    in_init = torch_mha_in_proj_init(c)
    dense = lambda name, init: nn.Dense(c, dtype=self.dtype, kernel_init=init,
                                        name=name)
    q = dense('query', in_init)(query)
    k = dense('key', in_init)(key)
    v = dense('value', in_init)(value)
    out = dense('out', torch_linear_init(c)[0])
    if self.sow_weights and self.is_mutable_collection('intermediates'):
      self.sow('intermediates', 'attention_weights',
               attention_weights(q, k, self.num_heads))
    return out(attend(q, k, v, self.num_heads))
