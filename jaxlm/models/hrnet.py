"""HRNetV2-W18 (Wang et al.), the SLPT / DSLPT backbone (thesis §4.3, §5.3).

Input 256 px -> a 64 x 64 map of `out_dim` channels (stride 4). Stem: two
3x3 stride-2 convolutions, four Bottleneck blocks; stages 2-4 with 2, 3 and 4
branches (18, 36, 72, 144 channels), four BasicBlocks per branch, fused by
summation (lower resolutions: 1x1 conv + BN, bilinearly upsampled with
half-pixel centres, torch's align_corners=False; higher: chains of 3x3
stride-2 conv + BN). The head concatenates the four branches upsampled to the
finest (270 channels) and maps them to `out_dim`:

  'lite' (SLPT's HRNetW18C-lite): one module in each of stages 2-4; head
      1x1 270->270, BN, ReLU, 1x1 270->out_dim.
  'full' (DSLPT's HRNetW18C): 1 / 4 / 3 modules; head one 1x1 270->out_dim.

Module names follow the official PyTorch keys with the sequence indices
joined by '_' (`stage3.2.fuse_layers.2.0.1.0.weight` ->
`stage3_2/fuse_layers_2_0_1_0/kernel`), which keeps the converter a rename.
BatchNorm as torch's (momentum 0.01 -> flax 0.99, eps 1e-5; `batch_norm`
and the blocks take another momentum for other networks); its statistics
live in the `batch_stats` collection. Convolutions start from N(0, 0.001) as
the official `init_weights` does.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm.models.materialize import materialize
from jaxlm.models.remat import checkpointed
from jaxlm.models.vit import normalize_images

conv_init = nn.initializers.normal(0.001)
VARIANTS = {'lite': (1, 1, 1), 'full': (1, 4, 3)}
WIDTHS = (18, 36, 72, 144)


def conv(x, features, kernel, stride=1, bias=False, name=None, dtype=None):
  """torch Conv2d with padding kernel // 2 (symmetric, as torch pads); 1x1
  kernels as a matrix product over channels (`PointwiseConv`)."""
  if kernel == 1:
    return PointwiseConv(features, stride, bias, dtype, name=name)(x)
  p = kernel // 2
  return nn.Conv(features, (kernel, kernel), (stride, stride),
                 padding=((p, p), (p, p)), use_bias=bias,
                 kernel_init=conv_init, dtype=dtype, name=name)(x)


@jax.custom_vjp
def channel_product(x, kernel):
  """x (..., in) @ kernel (in, out): a 1x1 convolution's product. Its
  gradient is autodiff's, except that the incoming gradient is
  materialised once (`materialize`) before both products read it: XLA:CPU
  otherwise evaluates the chain that produces it (BatchNorm's backward,
  residual sums) a second time inside the transposing copy that the kernel
  gradient's product wants."""
  return _contract_channels(x, kernel)


def _contract_channels(x, kernel):
  return jax.lax.dot_general(x, kernel, (((x.ndim - 1,), (0,)), ((), ())))


def _channel_product_fwd(x, kernel):
  # the product itself, not `channel_product`: jax.checkpoint's 'dots'
  # policy (`remat.POLICIES`) sees and saves a `dot_general` here, but not
  # the result of a nested custom-VJP call
  return _contract_channels(x, kernel), (x, kernel)


def _channel_product_bwd(residuals, g):
  x, kernel = residuals
  g = materialize(g)
  dx = jax.lax.dot_general(g, kernel, (((g.ndim - 1,), (1,)), ((), ())))
  dk = jax.lax.dot_general(x.reshape(-1, x.shape[-1]),
                           g.reshape(-1, g.shape[-1]), (((0,), (0,)), ((), ())))
  return dx.astype(x.dtype), dk.astype(kernel.dtype)


channel_product.defvjp(_channel_product_fwd, _channel_product_bwd)


class PointwiseConv(nn.Module):
  """A 1x1 convolution (stride s: every s-th pixel) as one matrix product
  over channels. Same parameters as `nn.Conv` with a (1, 1) kernel (`kernel`
  (1, 1, in, out), `bias` (out,), same initialisers and names, so
  checkpoints and converters are unchanged) and the same numbers; XLA:CPU
  runs its forward and both gradients as plain matrix products, several
  times faster than as convolutions."""
  features: int
  stride: int = 1
  use_bias: bool = False
  dtype: jnp.dtype | None = None

  @nn.compact
  def __call__(self, x):
    kernel = self.param('kernel', conv_init,
                        (1, 1, x.shape[-1], self.features), jnp.float32)
    bias = (self.param('bias', nn.initializers.zeros, (self.features,),
                       jnp.float32) if self.use_bias else None)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias,
                                              dtype=self.dtype)
    if self.stride > 1:
      x = x[:, ::self.stride, ::self.stride]
    y = channel_product(x, kernel[0, 0])
    return y + bias if bias is not None else y


def batch_norm(x, train, name, momentum=0.99):
  """BatchNorm, eps 1e-5; flax `momentum` = 1 - torch's (0.99: SLPT's and
  HRNet's 0.01; 0.9: torch's default 0.1)."""
  return nn.BatchNorm(use_running_average=not train, momentum=momentum,
                      epsilon=1e-5, dtype=x.dtype, name=name)(x)


def upsample(x, height, width):
  """Bilinear resize with half-pixel centres (torch align_corners=False)."""
  return jax.image.resize(x, (x.shape[0], height, width, x.shape[-1]),
                          'bilinear')


class BasicBlock(nn.Module):
  features: int
  stride: int = 1
  downsample: bool = False
  dtype: jnp.dtype = jnp.float32
  momentum: float = 0.99  # of its BatchNorms (flax convention)

  @nn.compact
  def __call__(self, x, train=False):
    bn = lambda y, name: batch_norm(y, train, name, self.momentum)
    y = conv(x, self.features, 3, self.stride, name='conv1', dtype=self.dtype)
    y = nn.relu(bn(y, 'bn1'))
    y = bn(conv(y, self.features, 3, name='conv2', dtype=self.dtype), 'bn2')
    if self.downsample:
      x = bn(conv(x, self.features, 1, self.stride, name='downsample_0',
                  dtype=self.dtype), 'downsample_1')
    return nn.relu(y + x)


class Bottleneck(nn.Module):
  """1x1 -> 3x3 (stride) -> 1x1 (4x planes), torchvision's v1.5 layout."""
  planes: int
  stride: int = 1
  downsample: bool = False
  dtype: jnp.dtype = jnp.float32
  momentum: float = 0.99  # of its BatchNorms (flax convention)

  @nn.compact
  def __call__(self, x, train=False):
    bn = lambda y, name: batch_norm(y, train, name, self.momentum)
    y = nn.relu(bn(conv(x, self.planes, 1, name='conv1', dtype=self.dtype),
                   'bn1'))
    y = nn.relu(bn(conv(y, self.planes, 3, self.stride, name='conv2',
                        dtype=self.dtype), 'bn2'))
    y = bn(conv(y, 4 * self.planes, 1, name='conv3', dtype=self.dtype), 'bn3')
    if self.downsample:
      x = bn(conv(x, 4 * self.planes, 1, self.stride, name='downsample_0',
                  dtype=self.dtype), 'downsample_1')
    return nn.relu(y + x)


class HighResolutionModule(nn.Module):
  """Parallel branches of BasicBlocks, then every branch fused into each."""
  widths: tuple[int, ...]
  blocks: int = 4
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, xs, train=False):
    xs = list(xs)
    for i, width in enumerate(self.widths):
      for k in range(self.blocks):
        xs[i] = materialize(BasicBlock(width, dtype=self.dtype,
                                       name=f'branches_{i}_{k}')(xs[i], train))
    if len(xs) == 1:
      return xs
    xs = materialize(xs)  # each read by several fuse layers
    out = []
    for i, width in enumerate(self.widths):
      y = xs[i]
      for j in range(len(xs)):
        if j == i:
          continue
        if j > i:  # lower resolution: 1x1 conv + BN, then upsample
          z = conv(xs[j], width, 1, name=f'fuse_layers_{i}_{j}_0',
                   dtype=self.dtype)
          z = batch_norm(z, train, f'fuse_layers_{i}_{j}_1')
          z = upsample(z, y.shape[1], y.shape[2])
        else:  # higher resolution: i - j stride-2 3x3 convs
          z = xs[j]
          for k in range(i - j):
            last = k == i - j - 1
            z = conv(z, width if last else self.widths[j], 3, 2,
                     name=f'fuse_layers_{i}_{j}_{k}_0', dtype=self.dtype)
            z = batch_norm(z, train, f'fuse_layers_{i}_{j}_{k}_1')
            if not last:
              z = nn.relu(z)
        y = y + z
      out.append(nn.relu(y))
    return materialize(out)


class HRNet(nn.Module):
  """HRNetV2-W18 -> [(B, H/4, W/4, out_dim)] (a one-level feature list).

  `remat` rematerialises each stem Bottleneck and each HighResolutionModule
  (`remat.POLICIES`).
  """
  variant: str = 'full'
  out_dim: int = 256
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False):
    if self.variant not in VARIANTS:
      raise ValueError(f'unknown HRNet variant {self.variant!r}; known: '
                       f'{", ".join(VARIANTS)}')
    x = normalize_images(images).astype(self.dtype)
    # every block's output is materialised (`materialize`): the weight
    # gradient of the convolution that reads it wants it transposed, and
    # XLA would otherwise recompute the whole chain of BatchNorms, sums and
    # ReLUs since the last convolution inside that transposing copy
    x = materialize(nn.relu(batch_norm(
        conv(x, 64, 3, 2, name='conv1', dtype=self.dtype), train, 'bn1')))
    x = materialize(nn.relu(batch_norm(
        conv(x, 64, 3, 2, name='conv2', dtype=self.dtype), train, 'bn2')))
    # (self, x, train): train is static
    bottleneck = checkpointed(Bottleneck, self.remat, static_argnums=(2,))
    hr_module = checkpointed(HighResolutionModule, self.remat,
                             static_argnums=(2,))
    for k in range(4):
      x = materialize(bottleneck(64, downsample=k == 0, dtype=self.dtype,
                                 name=f'layer1_{k}')(x, train))
    xs, prev = [x], (256,)
    for stage, modules in zip((2, 3, 4), VARIANTS[self.variant]):
      widths = WIDTHS[:stage]
      new = []
      for i, width in enumerate(widths):
        name = f'transition{stage - 1}_{i}'
        if i < len(prev):
          if prev[i] == width:
            new.append(xs[i])
          else:
            new.append(nn.relu(batch_norm(
                conv(xs[i], width, 3, name=f'{name}_0', dtype=self.dtype),
                train, f'{name}_1')))
        else:  # a new, coarser branch from the coarsest existing one
          z = xs[-1]
          for j in range(i + 1 - len(prev)):
            out = width if j == i - len(prev) else prev[-1]
            z = conv(z, out, 3, 2, name=f'{name}_{j}_0', dtype=self.dtype)
            z = nn.relu(batch_norm(z, train, f'{name}_{j}_1'))
          new.append(z)
      xs = materialize(new)
      for m in range(modules):
        xs = hr_module(widths, dtype=self.dtype,
                       name=f'stage{stage}_{m}')(xs, train)
      prev = widths
    h, w = xs[0].shape[1:3]
    x = jnp.concatenate([xs[0]] + [upsample(z, h, w) for z in xs[1:]], -1)
    if self.variant == 'lite':
      x = conv(x, x.shape[-1], 1, bias=True, name='head_0', dtype=self.dtype)
      x = nn.relu(batch_norm(x, train, 'head_1'))
      x = conv(x, self.out_dim, 1, bias=True, name='head_3', dtype=self.dtype)
    else:
      x = conv(x, self.out_dim, 1, bias=True, name='head_0', dtype=self.dtype)
    return [x]
