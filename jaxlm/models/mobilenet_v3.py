"""MobileNetV3-Large / -Small image encoders (Howard et al., "Searching for
MobileNetV3", ICCV 2019).

The block tables are the paper's Table 1 (Large) and Table 2 (Small) as
torchvision's `mobilenet_v3_large` / `mobilenet_v3_small` implement them
(`BLOCKS`: input channels, kernel, expanded channels, output channels, SE,
activation RE = ReLU / HS = hard-swish, stride). Every block is the inverted
residual of §5.3 / Fig. 4 (MobileNetV2's bottleneck with squeeze-and-excite):

  [1x1 expand conv + BN + act]   (absent when expanded == input channels)
  -> kxk depthwise conv (stride s) + BN + act
  -> [SE: global average pool -> 1x1 conv to make_divisible(expanded / 4, 8)
      + ReLU -> 1x1 conv back to expanded + hard-sigmoid -> rescale] (§5.3)
  -> 1x1 project conv + BN (linear)
  -> + input when s == 1 and the input and output channels agree.

hard-swish(x) = x relu6(x + 3) / 6, hard-sigmoid(x) = relu6(x + 3) / 6
(§5.2). The whole network, for a (B, H, W, 3) input:

  images RGB in [0, 255] (uint8 or float), NHWC
    -> / 255, ImageNet mean/std (`vit.IMAGENET_MEAN` / `IMAGENET_STD`)
    -> `stem`: 3x3 conv stride 2 -> 16 channels + BN + hard-swish
    -> `block_0` .. `block_14` (Large; .. `block_10` Small), four of them
       with stride 2 (Large: blocks 1, 3, 6, 12; Small: 0, 1, 3, 8)
    -> `last_conv`: 1x1 conv -> 960 (Large) / 576 (Small) channels + BN
       + hard-swish: the feature map (B, ceil(H / 32), ceil(W / 32), C), the
       last one before pooling (`return_feature_map=True`)
    -> global average pool (B, C)
    -> `head`: the paper's efficient last stage (§5.1, Fig. 5), a 1x1 conv
       on the pooled 1x1 map, i.e. a Dense, -> 1280 (Large) / 1024 (Small)
       + hard-swish: the image descriptor
    -> [`classifier`: Dense(num_classes), only when num_classes > 0].

What matches torchvision (`torchvision.models.mobilenetv3`, width 1.0): the
block tables, the channel rounding `make_divisible(ch * width, 8)` (also of
the head's 1280 / 1024), the SE squeeze width, the activation functions,
BatchNorm eps 0.001 and momentum 0.01 (flax momentum 0.99) after every
convolution but SE's, convolutions without bias except SE's two, the head
Linear(960, 1280) + Hardswish ahead of Linear(1280, num_classes), the
initialisation (convolutions Kaiming-normal fan-out, BatchNorm scale 1 /
bias 0, Linears N(0, 0.01) / bias 0) and therefore the parameter count with
a 1000-class classifier: 5,483,032 (Large) / 2,542,856 (Small). At 224x224
XLA counts about 226M / 59M multiply-adds (the paper: 219M / 56M, Tables
3 and 4; XLA adds the element-wise work). torchvision's
Dropout(0.2) between head and classifier is left out (the classifier exists
only so the count can be checked). Padding is torch's symmetric
(k - 1) // 2 on each side, also for stride 2 (flax 'SAME' would pad the
bottom / right more); depthwise convolutions use feature_group_count.
BatchNorm running statistics live in `batch_stats` (not parameters, as
torch's buffers are not); `train=True` normalises with batch statistics and
updates them (pass mutable=['batch_stats']); flax averages the biased batch
variance, torch the unbiased one.

Parameter names: `stem`, `block_{i}` (i from 0, torchvision's
`features.{i + 1}`) with `expand`, `depthwise`, `se` (`fc1`, `fc2`),
`project`, then `last_conv`, `head`, `classifier`; every conv+BN pair is a
`ConvBN` with `conv` and `bn`.

No independent MobileNetV3 implementation is available here for a numerical
parity test (torchvision cannot be imported on this machine and transformers
has no MobileNetV3), so the tests check structure only: parameter counts
against torchvision's published figures, the shapes after each block against
the paper's tables, output shapes, BatchNorm behaviour.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.models.remat import checkpointed
from jaxlm.models.vit import normalize_images

# Per block: input channels, kernel, expanded channels, output channels,
# squeeze-and-excite, activation ('RE' ReLU, 'HS' hard-swish), stride.
BLOCKS = {
    # Table 1: MobileNetV3-Large
    'large': (
        (16, 3, 16, 16, False, 'RE', 1),
        (16, 3, 64, 24, False, 'RE', 2),
        (24, 3, 72, 24, False, 'RE', 1),
        (24, 5, 72, 40, True, 'RE', 2),
        (40, 5, 120, 40, True, 'RE', 1),
        (40, 5, 120, 40, True, 'RE', 1),
        (40, 3, 240, 80, False, 'HS', 2),
        (80, 3, 200, 80, False, 'HS', 1),
        (80, 3, 184, 80, False, 'HS', 1),
        (80, 3, 184, 80, False, 'HS', 1),
        (80, 3, 480, 112, True, 'HS', 1),
        (112, 3, 672, 112, True, 'HS', 1),
        (112, 5, 672, 160, True, 'HS', 2),
        (160, 5, 960, 160, True, 'HS', 1),
        (160, 5, 960, 160, True, 'HS', 1),
    ),
    # Table 2: MobileNetV3-Small
    'small': (
        (16, 3, 16, 16, True, 'RE', 2),
        (16, 3, 72, 24, False, 'RE', 2),
        (24, 3, 88, 24, False, 'RE', 1),
        (24, 5, 96, 40, True, 'HS', 2),
        (40, 5, 240, 40, True, 'HS', 1),
        (40, 5, 240, 40, True, 'HS', 1),
        (40, 5, 120, 48, True, 'HS', 1),
        (48, 5, 144, 48, True, 'HS', 1),
        (48, 5, 288, 96, True, 'HS', 2),
        (96, 5, 576, 96, True, 'HS', 1),
        (96, 5, 576, 96, True, 'HS', 1),
    ),
}
# descriptor width of the head (before the width multiplier)
HEAD_CHANNELS = {'large': 1280, 'small': 1024}
STEM_CHANNELS = 16
LAST_CONV_EXPANSION = 6  # last_conv: 6 x the last block's output channels
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # flax convention: torchvision's momentum 0.01

# torch's kaiming_normal_(mode='fan_out'): 'normal' is the untruncated one;
# the fan-out of a grouped kernel (k, k, in / groups, out) is k * k * out
# here as in torch
conv_init = nn.initializers.variance_scaling(2.0, 'fan_out', 'normal')
dense_init = nn.initializers.normal(0.01)


def make_divisible(value: float, divisor: int = 8) -> int:
  """Round to the nearest multiple of divisor (at least divisor), never more
  than 10% below value (torchvision's / the TF reference's rule)."""
  rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
  if rounded < 0.9 * value:
    rounded += divisor
  return rounded


def hard_swish(x):
  """x relu6(x + 3) / 6 (paper §5.2, torch's nn.Hardswish)."""
  return x * jax.nn.relu6(x + 3.0) / 6.0


def hard_sigmoid(x):
  """relu6(x + 3) / 6 (torch's nn.Hardsigmoid)."""
  return jax.nn.relu6(x + 3.0) / 6.0


ACTIVATIONS = {'RE': nn.relu, 'HS': hard_swish, None: lambda x: x}


def check_variant(variant: str):
  if variant not in BLOCKS:
    raise ValueError(f'unknown MobileNetV3 variant {variant!r}; known: '
                     f'{", ".join(BLOCKS)}')


def block_table(variant: str, width: float = 1.0):
  """BLOCKS[variant] with the channels scaled by width and rounded to
  multiples of 8 (torchvision's `adjust_channels`)."""
  check_variant(variant)
  ch = lambda c: make_divisible(c * width)
  return tuple((ch(cin), k, ch(exp), ch(cout), se, act, s)
               for cin, k, exp, cout, se, act, s in BLOCKS[variant])


def _conv(features, kernel, stride=1, groups=1, bias=False, name=None,
          dtype=None):
  """torch Conv2d with symmetric padding (kernel - 1) // 2."""
  p = (kernel - 1) // 2
  return nn.Conv(features, (kernel, kernel), (stride, stride),
                 padding=((p, p), (p, p)), feature_group_count=groups,
                 use_bias=bias, kernel_init=conv_init, dtype=dtype, name=name)


class ConvBN(nn.Module):
  """Conv (no bias) + BatchNorm + activation (torchvision's
  Conv2dNormActivation). activation: 'RE', 'HS' or None (linear)."""
  features: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  activation: str | None = None
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train=False):
    x = _conv(self.features, self.kernel, self.stride, self.groups,
              name='conv', dtype=self.dtype)(x)
    x = nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM,
                     epsilon=BN_EPSILON, dtype=self.dtype, name='bn')(x)
    return ACTIVATIONS[self.activation](x)


class SqueezeExcite(nn.Module):
  """x * hard-sigmoid(fc2(relu(fc1(mean_hw x)))) (paper §5.3); fc1 / fc2 are
  1x1 convolutions with bias, to `squeeze` and back to x's channels."""
  squeeze: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x):
    s = jnp.mean(x, axis=(1, 2), keepdims=True)
    s = nn.relu(_conv(self.squeeze, 1, bias=True, name='fc1',
                      dtype=self.dtype)(s))
    s = _conv(x.shape[-1], 1, bias=True, name='fc2', dtype=self.dtype)(s)
    return x * hard_sigmoid(s)


class InvertedResidual(nn.Module):
  """MobileNetV3 bottleneck (paper Fig. 4): (B, H, W, in_channels) ->
  (B, ceil(H / stride), ceil(W / stride), out_channels)."""
  in_channels: int
  kernel: int
  expanded: int
  out_channels: int
  use_se: bool
  activation: str
  stride: int
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train=False):
    if x.shape[-1] != self.in_channels:
      raise ValueError(f'MobileNetV3 block of {self.in_channels} input '
                       f'channels got {x.shape[-1]}')
    y = x
    if self.expanded != self.in_channels:
      y = ConvBN(self.expanded, 1, activation=self.activation,
                 dtype=self.dtype, name='expand')(y, train)
    y = ConvBN(self.expanded, self.kernel, self.stride, self.expanded,
               self.activation, self.dtype, name='depthwise')(y, train)
    if self.use_se:
      y = SqueezeExcite(make_divisible(self.expanded // 4), self.dtype,
                        name='se')(y)
    y = ConvBN(self.out_channels, 1, dtype=self.dtype, name='project')(
        y, train)
    if self.stride == 1 and self.in_channels == self.out_channels:
      y = y + x
    return y


class MobileNetV3(nn.Module):
  """MobileNetV3 encoder: images (B, H, W, 3) RGB [0, 255] -> descriptor
  (B, 1280) Large / (B, 1024) Small, or logits (B, num_classes) when
  num_classes > 0.

  With return_feature_map=True, returns (output, feature_map): the map after
  `last_conv`, (B, ceil(H / 32), ceil(W / 32), 960) Large / 576 Small,
  before pooling. Outputs are float32 whatever the compute dtype.

  Attributes:
    variant: 'large' (Table 1) or 'small' (Table 2).
    num_classes: size of the optional classifier Dense; 0 = none.
    width: width multiplier (channels make_divisible(c * width, 8); 1.0 is
      the paper's and torchvision's default).
    dtype: compute dtype (parameters are float32).
    remat: rematerialisation of each inverted residual block
      (`remat.POLICIES`).
  """
  variant: str = 'large'
  num_classes: int = 0
  width: float = 1.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False, return_feature_map=False):
    table = block_table(self.variant, self.width)
    if images.shape[-1] != 3:
      raise ValueError(f'MobileNetV3 takes RGB images (B, H, W, 3), got '
                       f'shape {images.shape}')
    x = normalize_images(images, self.dtype)
    x = ConvBN(make_divisible(STEM_CHANNELS * self.width), 3, 2,
               activation='HS', dtype=self.dtype, name='stem')(x, train)
    block = checkpointed(InvertedResidual, self.remat,
                         static_argnums=(2,))  # (self, x, train)
    for i, row in enumerate(table):
      x = block(*row, dtype=self.dtype, name=f'block_{i}')(x, train)
    x = ConvBN(LAST_CONV_EXPANSION * table[-1][3], 1, activation='HS',
               dtype=self.dtype, name='last_conv')(x, train)
    feature_map = x
    x = jnp.mean(x, axis=(1, 2))
    x = hard_swish(nn.Dense(
        make_divisible(HEAD_CHANNELS[self.variant] * self.width),
        kernel_init=dense_init, dtype=self.dtype, name='head')(x))
    if self.num_classes > 0:
      x = nn.Dense(self.num_classes, kernel_init=dense_init, dtype=self.dtype,
                   name='classifier')(x)
    x = x.astype(jnp.float32)
    if return_feature_map:
      return x, feature_map.astype(jnp.float32)
    return x
