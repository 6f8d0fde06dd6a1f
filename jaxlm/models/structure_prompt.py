"""Structure prompt encoder: sin/cos features of 2D anchors (thesis Eq. 6.1-6.3).

An anchor (x, y) in [0, 1] crop units is mapped to c = 2c' - 1 in [-1, 1];
each axis gets width/2 features with d_i = tau^(2 floor(i/2) / (width/2)),
interleaved [sin(c/d_0), cos(c/d_1), sin(c/d_2), cos(c/d_3), ...] (no 2*pi
factor), and the prompt is concat(y-features, x-features), as in the official
`Gen_2D_embedding_from_vector`.

Shifting an anchor by (dx, dy) rotates every (sin, cos) pair by the angle
d/d_i (Eq. 6.4-6.5): the prompt of a shifted anchor is a fixed linear map of
the prompt of the original one, which is what lets the semantic alignment
offsets (§6.2.2) move prompts smoothly on the plane.
"""

from __future__ import annotations

import jax.numpy as jnp


def axis_frequencies(width: int, temperature: float = 10000.0):
  """(width/2,) divisors d_i = tau^(2 floor(i/2) / (width/2))."""
  if width % 4:
    raise ValueError(f'prompt width must be a multiple of 4, got {width}')
  n = width // 2
  i = jnp.arange(n, dtype=jnp.float32)
  return temperature**(2 * jnp.floor(i / 2) / n)


def _encode_axis(c, d):
  phase = c[..., None] / d  # (..., n)
  even = jnp.arange(d.shape[0]) % 2 == 0
  return jnp.where(even, jnp.sin(phase), jnp.cos(phase))


def encode_prompts(anchors, width: int, temperature: float = 10000.0):
  """Structure prompts (..., width) of anchors (..., 2) in [0, 1] crop units."""
  c = anchors.astype(jnp.float32) * 2.0 - 1.0
  d = axis_frequencies(width, temperature)
  return jnp.concatenate([_encode_axis(c[..., 1], d),
                          _encode_axis(c[..., 0], d)], axis=-1)
