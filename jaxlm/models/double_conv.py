"""DoubleConv: the residual convolution block of the Cascaded Dual Vision
Transformer (CD-ViT, the refinement network of LensMaster, paper 000).

  main  = Conv3x3(in -> mid, no bias) - BN - ReLU - Conv3x3(mid -> out, no
          bias) - BN
  short = identity if in == out else Conv3x3(in -> out, no bias), no BN
  y     = ReLU(main(x) + short(x))

(behaviour read from the public code's UNet2.py; padding 1, BatchNorm as
PyTorch's defaults: momentum 0.1, eps 1e-5). It closes every dual block
(256 -> 256, identity shortcut) and merges the long skip connection between
stages (512 -> 256, convolution shortcut). (B, H, W, C) channels-last.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.hrnet import batch_norm
from jaxlm.models.torch_defaults import TORCH_BN_MOMENTUM, conv

class DoubleConv(nn.Module):
  """Residual double 3x3 convolution (see the module docstring).

  Attributes:
    features: output channels; mid: the middle width (default `features`).
  """
  features: int
  mid: int | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    c_in, mid = x.shape[-1], self.mid or self.features
    y = conv(mid, 3, c_in, False, self.dtype, 'conv1')(x)
    y = nn.relu(batch_norm(y, train, 'bn1', TORCH_BN_MOMENTUM))
    y = conv(self.features, 3, mid, False, self.dtype, 'conv2')(y)
    y = batch_norm(y, train, 'bn2', TORCH_BN_MOMENTUM)
    short = x if c_in == self.features else conv(
        self.features, 3, c_in, False, self.dtype, 'shortcut')(x)
    return nn.relu(y + short.astype(y.dtype))
