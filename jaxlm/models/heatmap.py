"""Heatmaps of the heatmap cascade (CD-ViT / LensMaster, paper 000):
soft-argmax, the Gaussian target, and the conversion to crop units.

Heatmap space: a landmark at (u, v) cells, u the column and v the row in
[0, H - 1], corner-aligned: cell centres sit at integer positions, the first
and last cells' centres on the first and last input pixels' centres (as the
official code's `lmk / 255 * 31` for 256 px crops and 32 cells).

Crop space (jaxlm's): c in [0, 1] = pixel / S with the image's top-left
corner at 0, so the centre of pixel i is at (i + 0.5) / S. The official
code's unit landmark is x01 = i / (S - 1) for pixel index i (its flip is
255 - x), i.e. x01 = (S c - 0.5) / (S - 1), and u = (H - 1) x01:

  u = (H - 1) (S c - 0.5) / (S - 1),   c = (u (S - 1) / (H - 1) + 0.5) / S.

Both directions are exact inverses (`to_heatmap`, `from_heatmap`).

Soft-argmax (`soft_argmax`): softmax over the H W cells (no temperature,
as the official `GetCoord`), then the expected column and row. It cannot
leave [0, H - 1], and near a border the softmax mass on the far side is cut
off, so a landmark near the border is biased inward. For the exact training
target (`benchmarks/lensmaster_synthetic.py`): +0.29 cells on the border,
+0.10 half a cell in, +0.02 one cell in, +0.003 at 1.5 cells and below 1e-3
from 2 cells on; a sampled Gaussian's expectation is then its centre.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# The official target: exp(-d^2 / 1.0), i.e. sigma = 1 / sqrt(2) cells,
# normalised to sum 1 (not peak 1).
TARGET_SIGMA = 2**-0.5


def to_heatmap(crop, heatmap_size: int, image_size: int):
  """Crop units (..., 2) -> heatmap cells (..., 2) (corner-aligned)."""
  h, s = heatmap_size, image_size
  return (h - 1) * (s * crop - 0.5) / (s - 1)


def from_heatmap(cells, heatmap_size: int, image_size: int):
  """Heatmap cells (..., 2) -> crop units (..., 2); inverse of
  `to_heatmap`."""
  h, s = heatmap_size, image_size
  return (cells * (s - 1) / (h - 1) + 0.5) / s


def soft_argmax(logits):
  """(B, H, W, N) logits -> ((B, N, 2) (u, v) cells, (B, N, H, W) softmax
  probabilities). Computed in float32 whatever the logits' dtype."""
  b, h, w, n = logits.shape
  x = jnp.moveaxis(logits.astype(jnp.float32), -1, 1).reshape(b, n, h * w)
  p = jax.nn.softmax(x, axis=-1).reshape(b, n, h, w)
  u = jnp.einsum('bnhw,w->bn', p, jnp.arange(w, dtype=jnp.float32))
  v = jnp.einsum('bnhw,h->bn', p, jnp.arange(h, dtype=jnp.float32))
  return jnp.stack([u, v], axis=-1), p


def gaussian_target(cells, height: int, width: int,
                    sigma: float = TARGET_SIGMA):
  """(B, N, 2) (u, v) cells -> (B, N, H, W) Gaussians of std `sigma`
  centred there, each normalised to sum 1 (the official target: its
  weight map's 0.2 threshold is relative to this normalisation).

  Computed as a softmax over the cells, so a landmark far outside the map
  (where every exp underflows) still gives a finite target, concentrated
  on the nearest border cells. (The public code never meets that case: it
  pads each image until its landmarks are inside; jaxlm does not.)"""
  u, v = cells[..., 0, None, None], cells[..., 1, None, None]
  cols = jnp.arange(width, dtype=jnp.float32)
  rows = jnp.arange(height, dtype=jnp.float32)[:, None]
  logits = -((cols - u)**2 + (rows - v)**2) / (2 * sigma**2)
  shape = logits.shape
  flat = jax.nn.softmax(logits.reshape(*shape[:-2], -1), axis=-1)
  return flat.reshape(shape)
