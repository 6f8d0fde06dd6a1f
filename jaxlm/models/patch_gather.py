"""SLPT's sparse local patches: a K x K grid per landmark, sampled bilinearly
from a feature map (thesis §4.2.1, §5.2.1).

Coordinates are [0, 1] crop units, (x, y). For each landmark centre c and
half-size h a box [lo, lo + size] is chosen, K grid points per axis are
`linspace(lo, lo + size, K)` (endpoints included) and the patch is
(K_y, K_x, C): rows are y, columns x, as the official code feeds its patch
convolution.

Two official conventions (`convention`), both needed for checkpoint parity:

  'slpt':  lo = clip(c - h, 0, 1), hi = clip(c + h, 0, 1): patches shrink at
           the image border. Pixel coordinate u * (size - 1), clamped: torch
           grid_sample with align_corners=True and border padding.
  'dslpt': a box of fixed size 2h, shifted to stay inside [0, 1]. Pixel
           coordinate u * size - 0.5, clamped: align_corners=False with
           border padding.

The sample positions carry no gradient (the official code detaches them);
gradients reach the features only. Sampling is one vectorised gather of the
four neighbours of every point (no loop over landmarks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

CONVENTIONS = ('slpt', 'dslpt')


def _check(convention):
  if convention not in CONVENTIONS:
    raise ValueError(f'unknown patch convention {convention!r}; known: '
                     f'{", ".join(CONVENTIONS)}')


def patch_boxes(centres, half, convention: str):
  """(box_min, box_size), each (..., N, 2), of patches around `centres`.

  Args:
    centres: (..., N, 2) landmark positions in [0, 1] crop units.
    half: half-size in [0, 1] crop units: a scalar or an array broadcasting
      against `centres` (DSLPT's per-landmark sizes).
    convention: 'slpt' or 'dslpt' (see the module docstring).
  """
  _check(convention)
  centres = jax.lax.stop_gradient(centres)
  half = jax.lax.stop_gradient(jnp.broadcast_to(
      jnp.asarray(half, centres.dtype), centres.shape))
  lo = jnp.clip(centres - half, 0.0, 1.0)
  if convention == 'slpt':
    hi = jnp.clip(centres + half, 0.0, 1.0)
    return lo, hi - lo
  lo = jnp.where(lo > 1.0 - 2.0 * half, 1.0 - 2.0 * half, lo)
  return lo, 2.0 * half


def patch_grid(box_min, box_size, k: int):
  """(..., N, K, K, 2) sample points (x, y) of each box; axes (row y, col x).
  """
  t = jnp.linspace(0.0, 1.0, k, dtype=box_min.dtype)
  xs = box_min[..., 0, None] + box_size[..., 0, None] * t  # (..., N, K)
  ys = box_min[..., 1, None] + box_size[..., 1, None] * t
  shape = xs.shape[:-1] + (k, k)
  return jnp.stack([jnp.broadcast_to(xs[..., None, :], shape),
                    jnp.broadcast_to(ys[..., :, None], shape)], axis=-1)


def bilinear_sample(features, points, convention: str):
  """Features (B, P, C) at `points` (B, P, 2) in [0, 1] units (x, y).

  features: (B, H, W, C). Out-of-range points are clamped to the border
  (border padding). No gradient flows to `points`.
  """
  _check(convention)
  b, h, w, c = features.shape
  points = jax.lax.stop_gradient(points).astype(jnp.float32)
  size = jnp.array([w, h], jnp.float32)
  if convention == 'slpt':
    pix = points * (size - 1.0)
  else:
    pix = points * size - 0.5
  pix = jnp.clip(pix, 0.0, size - 1.0)
  p0 = jnp.floor(pix)
  frac = (pix - p0).astype(features.dtype)
  x0 = p0[..., 0].astype(jnp.int32)
  y0 = p0[..., 1].astype(jnp.int32)
  x1 = jnp.minimum(x0 + 1, w - 1)
  y1 = jnp.minimum(y0 + 1, h - 1)
  # One gather of the four neighbours: (B, 4P) flat indices into (B, HW, C).
  idx = jnp.concatenate([y0 * w + x0, y0 * w + x1, y1 * w + x0,
                         y1 * w + x1], axis=1)
  flat = features.reshape(b, h * w, c)
  vals = jnp.take_along_axis(flat, idx[..., None], axis=1, mode='clip')
  v00, v01, v10, v11 = jnp.split(vals, 4, axis=1)
  fx, fy = frac[..., 0:1], frac[..., 1:2]
  top = v00 + (v01 - v00) * fx
  bottom = v10 + (v11 - v10) * fx
  return top + (bottom - top) * fy


def gather_patches(features, box_min, box_size, k: int, convention: str):
  """(B, N, K, K, C) patches of the boxes (B, N, 2) from (B, H, W, C)."""
  b, n = box_min.shape[:2]
  grid = patch_grid(box_min, box_size, k).reshape(b, n * k * k, 2)
  out = bilinear_sample(features, grid, convention)
  return out.reshape(b, n, k, k, features.shape[-1])
