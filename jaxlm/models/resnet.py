"""torchvision's ResNet trunks: SLPT's multi-level ResNet-34 / ResNet-50
(thesis Fig. 4.4) and the plain ResNet-18 trunk of direct regression
(paper 003, `direct_regression.py`).

The trunk is torchvision's (7x7 stride-2 stem without bias, BatchNorm, ReLU,
3x3 stride-2 max-pool with padding 1, stages C2-C5 of BasicBlocks [2, 2, 2, 2]
for ResNet-18, [3, 4, 6, 3] for ResNet-34 or Bottlenecks [3, 4, 6, 3] for
ResNet-50, widths 64-128-256-512 (x4 for Bottlenecks), stride in the 3x3
convolution, 1x1 stride-2 shortcut with BatchNorm), with torchvision's module
names (`layer2_0/conv1`, `layer2_0/downsample_0`, ...).

`ResNet` (SLPT): ImageNet-normalised RGB input; each stage's output C2..C5
(strides 4, 8, 16, 32) goes through a 1x1 convolution `lateral_k` to
out_dim / 4 channels; SLPT crops every landmark's patch from each of the
four levels at the same relative position and concatenates them on channels
(out_dim).

`ResNetTrunk` (ResNet-18): an already-normalised (B, H, W, in_channels)
input -> the C5 map (B, ceil(H / 32), ceil(W / 32), 512), with its
BatchNorm momentum as a setting (flax convention; 0.9 = torch's default
0.1, eps 1e-5 throughout).

With BatchNorm after every convolution the initial scale of the kernels does
not matter for the forward pass; they start from the same N(0, 0.001) as the
HRNet's.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.hrnet import BasicBlock, Bottleneck, batch_norm, conv
from jaxlm.models.remat import checkpointed
from jaxlm.models.vit import normalize_images

DEPTHS = {18: ('basic', (2, 2, 2, 2)), 34: ('basic', (3, 4, 6, 3)),
          50: ('bottleneck', (3, 4, 6, 3))}


def check_depth(depth: int):
  if depth not in DEPTHS:
    raise ValueError(f'unknown ResNet depth {depth}; known: '
                     f'{", ".join(map(str, DEPTHS))}')


def stages(x, depth: int, train: bool, dtype, momentum: float = 0.99,
           remat: str = 'none'):
  """Stem and stages C2..C5 of ResNet-`depth`, as submodules of the calling
  module (torchvision's names); x is the normalised input; `remat`
  rematerialises each block (`remat.POLICIES`). -> [C2..C5]."""
  kind, counts = DEPTHS[depth]
  # (self, x, train): train is static
  basic = checkpointed(BasicBlock, remat, static_argnums=(2,))
  bottleneck = checkpointed(Bottleneck, remat, static_argnums=(2,))
  x = nn.relu(batch_norm(conv(x, 64, 7, 2, name='conv1', dtype=dtype), train,
                         'bn1', momentum))
  x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
  levels, channels = [], 64
  for stage, count in enumerate(counts):
    planes = 64 * 2**stage
    for k in range(count):
      stride = 2 if (k == 0 and stage > 0) else 1
      name = f'layer{stage + 1}_{k}'
      if kind == 'basic':
        down = k == 0 and (stride != 1 or channels != planes)
        x = basic(planes, stride, down, dtype, momentum, name=name)(x, train)
        channels = planes
      else:
        down = k == 0 and (stride != 1 or channels != 4 * planes)
        x = bottleneck(planes, stride, down, dtype, momentum, name=name)(
            x, train)
        channels = 4 * planes
    levels.append(x)
  return levels


class ResNet(nn.Module):
  """ResNet-{34, 50} (SLPT; 18 works too) -> [C2, C3, C4, C5] each reduced
  to out_dim // 4."""
  depth: int = 34
  out_dim: int = 256
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False):
    check_depth(self.depth)
    if self.out_dim % 4:
      raise ValueError(f'ResNet out_dim {self.out_dim} is not divisible by '
                       f'its 4 levels')
    x = normalize_images(images).astype(self.dtype)
    return [conv(c, self.out_dim // 4, 1, bias=True, name=f'lateral_{k}',
                 dtype=self.dtype)
            for k, c in enumerate(stages(x, self.depth, train, self.dtype,
                                         remat=self.remat))]


class ResNetTrunk(nn.Module):
  """ResNet-`depth` (default 18) trunk: normalised (B, H, W, in_channels)
  -> C5 (B, H/32, W/32, 512 or 2048 for ResNet-50).

  Attributes:
    depth: 18, 34 or 50.
    in_channels: channels the input must have (1: greyscale).
    momentum: BatchNorm momentum, flax convention (0.9 = torch's 0.1).
    dtype: compute dtype.
    remat: rematerialisation of each block (`remat.POLICIES`).
  """
  depth: int = 18
  in_channels: int = 3
  momentum: float = 0.9
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, x, train=False):
    check_depth(self.depth)
    if x.shape[-1] != self.in_channels:
      raise ValueError(f'ResNet trunk of {self.in_channels} input channels '
                       f'got an input of {x.shape[-1]}')
    return stages(x.astype(self.dtype), self.depth, train, self.dtype,
                  self.momentum, self.remat)[-1]
