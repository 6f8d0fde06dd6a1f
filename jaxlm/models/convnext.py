"""ConvNeXt image encoder (Liu et al. 2022, "A ConvNet for the 2020s": the
design of §2, its block in Fig. 4; the T/S/B sizes of §3).

Stem: 4x4 stride-4 convolution -> LayerNorm. Four stages of `depths` blocks
at widths `dims` (strides 4, 8, 16, 32); stages 2-4 start with LayerNorm ->
2x2 stride-2 convolution. Block: 7x7 depthwise convolution (padding 3) ->
LayerNorm -> Dense(4C) -> exact GELU (`vit.gelu`) -> Dense(C) ->
per-channel layer scale `gamma` (init 1e-6) -> stochastic depth (rate
increasing linearly from 0 at the first block to `drop_path` at the last)
-> residual. Every LayerNorm has
eps 1e-6. An input side that is not a multiple of 32 loses its trailing
rows / columns at each downsampling (floor, as PyTorch's convolutions).

Input: images (B, H, W, 3), RGB in [0, 255] (uint8 or float), NHWC;
normalised here with the ImageNet mean/std. `__call__` returns the pooled
descriptor f (B, dims[-1]): the global average of the last stage, THEN a
final LayerNorm `final_norm` (the official classifier's `norm(x.mean(...))`
and transformers' `ConvNextModel.pooler_output`). `features` returns the
last stage's map (B, H/32, W/32, dims[-1]) before pooling and norm
(transformers' `last_hidden_state`, NHWC instead of NCHW):

  f = model.apply(v, images)
  fmap = model.apply(v, images, method='features')

Both outputs are float32 whatever the compute dtype; params are float32.
Weights of transformers' ConvNextModel / ConvNextForImageClassification and
of facebookresearch/ConvNeXt convert with `jaxlm.convert.convnext` (their
final LayerNorm differs only in eps: transformers' config default is 1e-12).
"""

from __future__ import annotations

import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models.attention import dense_init
from jaxlm.models.remat import checkpointed
from jaxlm.models.vit import gelu, normalize_images

EPS = 1e-6
# name -> (depths, dims)
VARIANTS = {
    'tiny': ((3, 3, 9, 3), (96, 192, 384, 768)),
    'small': ((3, 3, 27, 3), (96, 192, 384, 768)),
    'base': ((3, 3, 27, 3), (128, 256, 512, 1024)),
}


def decode_variant(variant: str) -> dict:
  """'tiny' -> dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768)).

  Overrides may follow colons, as dash-separated integers, one per stage:
  'tiny:depths=1-1-2-1:dims=32-64-128-256' (a tiny demo model). Variants:
  'tiny', 'small', 'base'.
  """
  m = re.fullmatch(r'(\w+)((?::\w+=\d+(?:-\d+)*)*)', variant)
  if not m or m.group(1) not in VARIANTS:
    raise ValueError(f'unknown ConvNeXt variant {variant!r}; expected one of '
                     f'{", ".join(VARIANTS)}, optionally with overrides as in '
                     f'"tiny:depths=1-1-2-1:dims=32-64-128-256"')
  depths, dims = VARIANTS[m.group(1)]
  out = dict(depths=depths, dims=dims)
  for kv in filter(None, m.group(2).split(':')):
    k, v = kv.split('=')
    if k not in out:
      raise ValueError(f'unknown ConvNeXt variant override {k!r} in '
                       f'{variant!r} (known: {", ".join(out)})')
    out[k] = tuple(int(n) for n in v.split('-'))
  if len(out['depths']) != len(out['dims']):
    raise ValueError(f'ConvNeXt variant {variant!r}: {len(out["depths"])} '
                     f'depths but {len(out["dims"])} dims')
  return out


class Block(nn.Module):
  """x + drop_path(gamma * pwconv2(gelu(pwconv1(norm(dwconv(x))))))."""
  drop_path: float = 0.0
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x, train=False):
    c = x.shape[-1]
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype,
                                     kernel_init=dense_init, name=name)
    y = nn.Conv(c, (7, 7), padding=3, feature_group_count=c,
                dtype=self.dtype, kernel_init=dense_init, name='dwconv')(x)
    y = nn.LayerNorm(EPS, dtype=self.dtype, name='norm')(y)
    y = dense(c, 'pwconv2')(gelu(dense(4 * c, 'pwconv1')(y)))
    y = y * self.param('gamma', nn.initializers.constant(1e-6),
                       (c,)).astype(self.dtype)
    if train and self.drop_path > 0:  # drop the whole branch per sample
      keep = 1.0 - self.drop_path
      mask = jax.random.bernoulli(self.make_rng('dropout'), keep,
                                  (x.shape[0], 1, 1, 1))
      y = jnp.where(mask, y / keep, 0).astype(y.dtype)
    return x + y


class Stage(nn.Module):
  """[downsample_norm -> 2x2 stride-2 downsample_conv] -> block_0..."""
  dim: int
  rates: tuple[float, ...]  # stochastic depth of each block
  downsample: bool
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'  # of each block (`remat.POLICIES`)

  @nn.compact
  def __call__(self, x, train=False):
    if self.downsample:
      x = nn.LayerNorm(EPS, dtype=self.dtype, name='downsample_norm')(x)
      x = nn.Conv(self.dim, (2, 2), strides=2, padding='VALID',
                  dtype=self.dtype, kernel_init=dense_init,
                  name='downsample_conv')(x)
    block = checkpointed(Block, self.remat, static_argnums=(2,))  # train
    for j, rate in enumerate(self.rates):
      x = block(rate, self.dtype, name=f'block_{j}')(x, train)
    return x


class ConvNeXt(nn.Module):
  """ConvNeXt (see the module docstring): images -> f (B, dims[-1]).

  Attributes:
    variant: 'tiny', 'small', 'base', with overrides (`decode_variant`).
    drop_path: stochastic depth rate of the last block (train=True draws
      from the 'dropout' rng).
    dtype: compute dtype.
    remat: rematerialisation of each block (`remat.POLICIES`).
  """
  variant: str = 'tiny'
  drop_path: float = 0.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def setup(self):
    cfg = decode_variant(self.variant)
    depths, dims = cfg['depths'], cfg['dims']
    rates = np.linspace(0.0, self.drop_path, sum(depths)).tolist()
    starts = np.cumsum((0,) + depths)
    self.stem_conv = nn.Conv(dims[0], (4, 4), strides=4, padding='VALID',
                             dtype=self.dtype, kernel_init=dense_init)
    self.stem_norm = nn.LayerNorm(EPS, dtype=self.dtype)
    self.stages = [Stage(d, tuple(rates[starts[i]:starts[i + 1]]), i > 0,
                         self.dtype, self.remat) for i, d in enumerate(dims)]
    self.final_norm = nn.LayerNorm(EPS, dtype=jnp.float32)

  def features(self, images, train=False):
    """(B, H, W, 3) -> the last stage's map (B, H/32, W/32, dims[-1])."""
    x = self.stem_norm(self.stem_conv(normalize_images(images, self.dtype)))
    for stage in self.stages:
      x = stage(x, train)
    return x.astype(jnp.float32)

  def __call__(self, images, train=False):
    """(B, H, W, 3) -> final_norm(mean over the last map) (B, dims[-1])."""
    return self.final_norm(self.features(images, train).mean(axis=(1, 2)))
