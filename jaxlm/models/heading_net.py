"""HeadingNet: the convolutional backbone of the Cascaded Dual Vision
Transformer (the baseline backbone of LensMaster, paper 000).

Three groups of three IR-SE bottleneck units (ArcFace's `bottleneck_IR_SE`),
widths (32, 64, 256), the first unit of each with stride 2 and no stem
convolution: a 256 px crop gives a (32, 32, 256) map. A unit is

  res   = BN - WSConv3x3(in -> d) - PReLU(d) - WSConv3x3(d -> d, stride s)
          - BN - SE(d, reduction 16)
  short = x[::s, ::s] (max-pool 1 x 1, stride s) if in == d else
          WSConv1x1(in -> d, stride s) - BN
  y     = res + short                     (no activation after the sum)

SE: global average pool - WSConv1x1(d -> d // 16) - ReLU - WSConv1x1(d // 16
-> d) - sigmoid, multiplying x. "WSConv" in the public code is not weight
standardisation: a bias-free convolution whose output is multiplied by the
constant sqrt(2 / fan_in), with PyTorch's default kernel initialisation
(behaviour read from the public code's helpers.py). PReLU per channel,
initialised to 0.25. BatchNorm as PyTorch's defaults. Input: the already
normalised (x / 255 - 0.5) / 0.5 image, (B, H, W, 3) channels-last.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.hrnet import batch_norm
from jaxlm.models.remat import checkpointed
from jaxlm.models.torch_defaults import TORCH_BN_MOMENTUM, conv

WIDTHS = (32, 64, 256)
UNITS_PER_GROUP = 3
SE_REDUCTION = 16


def ws_conv(x, features: int, kernel: int, stride: int, dtype, name: str):
  """Bias-free conv times sqrt(2 / fan_in) (the public code's WSConv2d)."""
  fan_in = x.shape[-1] * kernel * kernel
  y = conv(features, kernel, x.shape[-1], False, dtype, name,
           stride=stride)(x)
  return y * jnp.asarray((2.0 / fan_in)**0.5, y.dtype)


class PReLU(nn.Module):
  """max(0, x) + a min(0, x) with one learned slope per channel (0.25)."""

  @nn.compact
  def __call__(self, x):
    a = self.param('alpha', nn.initializers.constant(0.25), (x.shape[-1],))
    return jnp.where(x >= 0, x, a.astype(x.dtype) * x)


class IRSEUnit(nn.Module):
  features: int
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = False):
    d, s = self.features, self.stride
    y = batch_norm(x, train, 'bn1', TORCH_BN_MOMENTUM)
    y = PReLU(name='prelu')(ws_conv(y, d, 3, 1, self.dtype, 'conv1'))
    y = batch_norm(ws_conv(y, d, 3, s, self.dtype, 'conv2'), train, 'bn2',
                   TORCH_BN_MOMENTUM)
    se = y.mean(axis=(1, 2), keepdims=True)
    se = nn.relu(ws_conv(se, max(d // SE_REDUCTION, 1), 1, 1, self.dtype,
                         'se_fc1'))
    y = y * nn.sigmoid(ws_conv(se, d, 1, 1, self.dtype, 'se_fc2'))
    if x.shape[-1] == d:
      short = x[:, ::s, ::s]
    else:
      short = batch_norm(ws_conv(x, d, 1, s, self.dtype, 'shortcut'), train,
                         'shortcut_bn', TORCH_BN_MOMENTUM)
    return y + short.astype(y.dtype)


class HeadingNet(nn.Module):
  """(B, H, W, 3) normalised image -> (B, H / 8, W / 8, widths[-1])."""
  widths: tuple[int, ...] = WIDTHS
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'  # of each unit (`remat.POLICIES`)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.astype(self.dtype)
    unit = checkpointed(IRSEUnit, self.remat, static_argnums=(2,))  # train
    for g, d in enumerate(self.widths):
      for u in range(UNITS_PER_GROUP):
        x = unit(d, 2 if u == 0 else 1, self.dtype,
                 name=f'group{g}_unit{u}')(x, train)
    return x
