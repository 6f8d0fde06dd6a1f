"""ResNet-34 / ResNet-50 with SLPT's multi-level output (thesis Fig. 4.4).

The trunk is torchvision's (7x7 stride-2 stem, 3x3 stride-2 max-pool, stages
C2-C5 of BasicBlocks [3, 4, 6, 3] for ResNet-34 or Bottlenecks for ResNet-50,
stride in the 3x3 convolution), with torchvision's module names (`layer2_0/
conv1`, `layer2_0/downsample_0`, ...). Each stage's output C2..C5 (strides
4, 8, 16, 32) goes through a 1x1 convolution `lateral_k` to out_dim / 4
channels; SLPT crops every landmark's patch from each of the four levels at
the same relative position and concatenates them on channels (out_dim).

With BatchNorm after every convolution the initial scale of the kernels does
not matter for the forward pass; they start from the same N(0, 0.001) as the
HRNet's.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.models.hrnet import (BasicBlock, Bottleneck, batch_norm, conv,
                                normalize_images)

DEPTHS = {34: ('basic', (3, 4, 6, 3)), 50: ('bottleneck', (3, 4, 6, 3))}


class ResNet(nn.Module):
  """ResNet-{34, 50} -> [C2, C3, C4, C5] each reduced to out_dim // 4."""
  depth: int = 34
  out_dim: int = 256
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images, train=False):
    if self.depth not in DEPTHS:
      raise ValueError(f'unknown ResNet depth {self.depth}; known: '
                       f'{", ".join(map(str, DEPTHS))}')
    if self.out_dim % 4:
      raise ValueError(f'ResNet out_dim {self.out_dim} is not divisible by '
                       f'its 4 levels')
    kind, counts = DEPTHS[self.depth]
    x = normalize_images(images).astype(self.dtype)
    x = nn.relu(batch_norm(conv(x, 64, 7, 2, name='conv1', dtype=self.dtype),
                           train, 'bn1'))
    x = nn.max_pool(x, (3, 3), (2, 2), padding=((1, 1), (1, 1)))
    levels, channels = [], 64
    for stage, count in enumerate(counts):
      planes = 64 * 2**stage
      for k in range(count):
        stride = 2 if (k == 0 and stage > 0) else 1
        name = f'layer{stage + 1}_{k}'
        if kind == 'basic':
          down = k == 0 and (stride != 1 or channels != planes)
          x = BasicBlock(planes, stride, down, self.dtype, name=name)(x, train)
          channels = planes
        else:
          down = k == 0 and (stride != 1 or channels != 4 * planes)
          x = Bottleneck(planes, stride, down, self.dtype, name=name)(x, train)
          channels = 4 * planes
      levels.append(conv(x, self.out_dim // 4, 1, bias=True,
                         name=f'lateral_{stage}', dtype=self.dtype))
    return levels
