"""The Cascaded Dual Vision Transformer's refinement network (CD-ViT, Dang,
Li, Liu, WACV 2025), LensMaster's heatmap cascade (paper 000).

For a backbone map F (B, S, S, C) (C = 256, S = 32 in the paper):

  x_0 = F;  x_i = DoubleConv(2C -> C)(concat[F, h_{i-1}])  (i > 0: the long
        skip connection; h is the previous stage's feature map, not its
        heatmaps)
  h_i = [CoordConv(C -> C) - DualViTBlock] x blocks_per_stage (x_i)
  logits_i = Conv1x1(C -> N, bias)(h_i)                     (B, S, S, N)

Every stage is supervised; the last one is the prediction. Default 8
stages of 2 blocks (the public code's nstack 8, num_dvit_per_pred_blk 2;
no weights shared). Components: `coord_conv.py`, `dual_vit.py`,
`double_conv.py` (PyTorch's initialisers: `torch_defaults.py`).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.coord_conv import CoordConv
from jaxlm.models.double_conv import DoubleConv
from jaxlm.models.dual_vit import DualViTBlock
from jaxlm.models.remat import checkpointed
from jaxlm.models.torch_defaults import conv


class CascadedDualViT(nn.Module):
  """F (B, S, S, C) -> per-stage heatmap logits (stages, B, S, S, N).

  Attributes:
    num_points: N heatmaps.
    stages: number of prediction stages (8).
    blocks_per_stage: CoordConv + dual block pairs per stage (2).
    num_heads, patch: of the dual blocks (4, 2).
    remat: rematerialisation of each dual block and stage merge
      (`remat.POLICIES`).
  """
  num_points: int
  stages: int = 8
  blocks_per_stage: int = 2
  num_heads: int = 4
  patch: int = 2
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, f, train: bool = False):
    c = f.shape[-1]
    # (self, x, train): train is static
    merge = checkpointed(DoubleConv, self.remat, static_argnums=(2,))
    dual = checkpointed(DualViTBlock, self.remat, static_argnums=(2,))
    logits, h = [], None
    for i in range(self.stages):
      x = f if i == 0 else merge(c, dtype=self.dtype, name=f'merge_{i}')(
          jnp.concatenate([f, h], axis=-1), train)
      for j in range(self.blocks_per_stage):
        x = CoordConv(c, self.dtype, name=f'stage_{i}_coord_{j}')(x)
        x = dual(self.num_heads, self.patch, self.dtype,
                 name=f'stage_{i}_dual_{j}')(x, train)
      h = x
      logits.append(conv(self.num_points, 1, c, True, self.dtype,
                         f'head_{i}')(h))
    return jnp.stack(logits)
