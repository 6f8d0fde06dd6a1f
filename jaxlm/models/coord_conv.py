"""CoordConv of the Cascaded Dual Vision Transformer (paper 000's
refinement network; Liu et al. 2018's CoordConv with a radius channel).

Three constant channels are appended after the features, in the public
code's order: the row coordinate, the column coordinate (each 2 i / (n - 1)
- 1, in [-1, 1] from the first to the last cell) and the radius
sqrt(row^2 + col^2) / sqrt(2) (in [0, 1], 1 at the corners); then a 3x3
convolution with bias (padding 1, no BN, no activation). (The official
code names the row channel "xx": it varies along the height.)
(B, H, W, C) channels-last.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jaxlm.models.torch_defaults import conv


def coordinate_channels(height: int, width: int) -> np.ndarray:
  """(H, W, 3) float32: row, column in [-1, 1] and radius / sqrt 2."""
  row = 2 * np.arange(height) / max(height - 1, 1) - 1
  col = 2 * np.arange(width) / max(width - 1, 1) - 1
  rr, cc = np.meshgrid(row, col, indexing='ij')
  radius = np.sqrt(rr**2 + cc**2)
  radius = radius / radius.max()
  return np.stack([rr, cc, radius], -1).astype(np.float32)


class CoordConv(nn.Module):
  """concat[x, row, col, radius] -> Conv3x3(C + 3 -> features, bias)."""
  features: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    b, h, w, c = x.shape
    coords = jnp.broadcast_to(jnp.asarray(coordinate_channels(h, w), x.dtype),
                              (b, h, w, 3))
    x = jnp.concatenate([x, coords], axis=-1)
    return conv(self.features, 3, c + 3, True, self.dtype, 'conv')(x)
