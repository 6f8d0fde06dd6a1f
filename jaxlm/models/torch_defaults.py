"""PyTorch's defaults for layers ported from PyTorch code (the heatmap
cascade's, paper 000): nn.Conv2d / nn.Linear initialisation and BatchNorm's
momentum, so untrained jaxlm modules start as the official ones do.
Channels-last (B, H, W, C); kernels HWIO.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

TORCH_BN_MOMENTUM = 0.9  # flax convention: torch's default momentum 0.1


def torch_conv_init(fan_in: int):
  """PyTorch's default Conv2d / Linear initialiser: U(+-1 / sqrt(fan_in))
  (kaiming-uniform with a = sqrt 5), for kernel and bias alike."""
  bound = fan_in**-0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


def conv(features: int, kernel: int, in_features: int, bias: bool,
         dtype, name: str, stride: int = 1, padding=None):
  """torch-initialised nn.Conv (`padding` kernel // 2 unless given)."""
  p = kernel // 2 if padding is None else padding
  init = torch_conv_init(in_features * kernel * kernel)
  return nn.Conv(features, (kernel, kernel), (stride, stride),
                 padding=((p, p), (p, p)), use_bias=bias, kernel_init=init,
                 bias_init=init, dtype=dtype, name=name)
