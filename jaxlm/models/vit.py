"""DINO-style Vision Transformer encoder (TUFA's image encoder, thesis §6.2.1).

Matches facebookresearch/dino's `VisionTransformer` (and timm's
`vit_small_patch16_224`): patch-embedding convolution, CLS token, learned
absolute position embedding stored for a 224x224 input, pre-norm blocks with
one fused qkv projection (with bias), exact GELU, LayerNorm eps 1e-6, final
LayerNorm. For other input sizes the patch part of the position embedding is
resized bicubically (PyTorch's bicubic kernel, A = -0.75, so converted
checkpoints reproduce the reference numbers).

Input: images (B, H, W, 3), RGB in [0, 255]; normalised here with the
ImageNet mean/std DINO was trained with. Output: patch tokens after the final
norm (B, h*w, C) with the CLS token dropped, and the resized position
embedding of the patch tokens (1, h*w, C), which TUFA's decoder adds to its
cross-attention keys.
"""

from __future__ import annotations

import functools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models.attention import attend, dense_init
from jaxlm.models.remat import checkpointed
from jaxlm.models.structure_prompt import encode_prompts

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# width, depth, heads, mlp
_SIZES = {
    'Ti': (192, 12, 3, 768),
    'S': (384, 12, 6, 1536),
    'B': (768, 12, 12, 3072),
}


def decode_variant(variant: str) -> dict:
  """'S/16' -> dict(width=384, depth=12, num_heads=6, mlp_dim=1536, patch=16,
  registers=0, layerscale=0, pretrain=224).

  Overrides may follow colons: 'Ti/16:depth=4' (the tiny demo model),
  'S/14:pretrain=518:layerscale=1' (DINOv2), '...:registers=4' (DINOv2 with
  registers), 'S/16:layerscale=1:registers=4:rope=100:eps=5' (DINOv3: 2D
  RoPE with base 100 instead of a position embedding, LayerNorm eps 1e-5).
  `pretrain` is the image size the position embedding is stored for; `eps`
  the LayerNorm epsilon as a power of ten (default 6: 1e-6).
  """
  m = re.fullmatch(r'(Ti|S|B)/(\d+)((?::\w+=\d+)*)', variant)
  if not m:
    raise ValueError(f'unknown ViT variant {variant!r}; expected e.g. "S/16", '
                     f'"S/8", "B/16" or "Ti/16:depth=4" (sizes: '
                     f'{", ".join(_SIZES)})')
  width, depth, heads, mlp = _SIZES[m.group(1)]
  out = dict(width=width, depth=depth, num_heads=heads, mlp_dim=mlp,
             patch=int(m.group(2)), registers=0, layerscale=0, pretrain=224,
             rope=0, eps=6)
  for kv in filter(None, m.group(3).split(':')):
    k, v = kv.split('=')
    if k not in out:
      raise ValueError(f'unknown ViT variant override {k!r} in {variant!r} '
                       f'(known: {", ".join(out)})')
    out[k] = int(v)
  return out


def _cubic(x, a=-0.75):
  x = np.abs(x)
  return np.where(
      x <= 1, ((a + 2) * x - (a + 3)) * x * x + 1,
      np.where(x < 2, ((a * x - 5 * a) * x + 8 * a) * x - 4 * a, 0.0))


@functools.lru_cache(maxsize=64)
def bicubic_matrix(n_in: int, n_out: int, scale: float | None = None):
  """(n_out, n_in) matrix of PyTorch's bicubic resize along one axis.

  As `torch.nn.functional.interpolate(mode='bicubic', align_corners=False)`:
  source coordinate scale * (i + 0.5) - 0.5, four taps clamped at the border.
  `scale` is input pixels per output pixel; by default n_in / n_out (the
  `size=` call), DINO passes a `scale_factor`, making it n_in / (n_out + 0.1).
  """
  scale = n_in / n_out if scale is None else scale
  src = scale * (np.arange(n_out) + 0.5) - 0.5
  base = np.floor(src)
  t = src - base
  m = np.zeros((n_out, n_in))
  for k, w in enumerate([_cubic(t + 1), _cubic(t), _cubic(1 - t),
                         _cubic(2 - t)]):
    idx = np.clip(base.astype(int) - 1 + k, 0, n_in - 1)
    np.add.at(m, (np.arange(n_out), idx), w)
  return m.astype(np.float32)


@functools.lru_cache(maxsize=64)
def antialiased_bicubic_matrix(n_in: int, n_out: int):
  """(n_out, n_in) matrix of `interpolate(size=..., mode='bicubic',
  antialias=True)` along one axis (PyTorch's PIL-style filter: cubic a=-0.5,
  support widened by the scale when shrinking, weights normalised)."""
  scale = n_in / n_out
  support = 2.0 * max(scale, 1.0)
  inv = 1.0 / max(scale, 1.0)
  m = np.zeros((n_out, n_in))
  for i in range(n_out):
    centre = scale * (i + 0.5)
    lo = max(int(centre - support + 0.5), 0)
    hi = min(int(centre + support + 0.5), n_in)
    j = np.arange(lo, hi)
    w = _cubic((j - centre + 0.5) * inv, a=-0.5)
    m[i, lo:hi] = w / w.sum()
  return m.astype(np.float32)


def resize_pos_embed(grid, out_hw, mode: str = 'dino'):
  """Resizes a (h, w, C) position-embedding grid to out_hw bicubically.

  mode 'dino': DINO v1's (and DINOv2's) `interpolate_pos_encoding`
  (scale_factor with the +0.1 offset); 'size': resize to the target size
  (timm, transformers' ViT and DINOv2); 'size_aa': the same antialiased
  (DINOv2 with registers). Returns the grid unchanged when the size already
  matches (as they all do).
  """
  h, w, _ = grid.shape
  oh, ow = out_hw
  if (h, w) == (oh, ow):
    return grid
  if mode == 'dino':
    my = bicubic_matrix(h, oh, h / (oh + 0.1))
    mx = bicubic_matrix(w, ow, w / (ow + 0.1))
  elif mode == 'size':
    my, mx = bicubic_matrix(h, oh), bicubic_matrix(w, ow)
  elif mode == 'size_aa':
    my, mx = antialiased_bicubic_matrix(h, oh), antialiased_bicubic_matrix(
        w, ow)
  else:
    raise ValueError(f'unknown pos-embed resize mode {mode!r}')
  return jnp.einsum('yh,hwc,xw->yxc', my, grid, mx)


def gelu(x):
  """Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), PyTorch's nn.GELU formula.

  The same function as `jax.nn.gelu(approximate=False)`, whose erfc form
  makes XLA's CPU backward pass about 2x slower for the ViT MLP.
  """
  return 0.5 * x * (1.0 + jax.lax.erf(x * np.float32(1 / np.sqrt(2))))


def normalize_images(images, dtype=jnp.float32):
  """RGB in [0, 255] (uint8 or float) -> ImageNet-normalised float."""
  x = images.astype(jnp.float32) / 255.0
  x = (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
  return x.astype(dtype)


def patch_centres(gh: int, gw: int) -> np.ndarray:
  """(gh * gw, 2) (y, x) patch centres in [0, 1], row-major."""
  cy, cx = (np.arange(gh) + 0.5) / gh, (np.arange(gw) + 0.5) / gw
  yy, xx = np.meshgrid(cy, cx, indexing='ij')
  return np.stack([yy.ravel(), xx.ravel()], axis=-1)


def rope_tables(gh: int, gw: int, head_dim: int, base: float):
  """(cos, sin), each (gh * gw, head_dim), of DINOv3's 2D rotary embedding.

  Patch centres in [-1, 1] (y, x); head_dim / 4 frequencies base^-(4j /
  head_dim); angle 2 pi coord freq, laid out [y freqs, x freqs] twice.
  """
  coords = 2.0 * patch_centres(gh, gw) - 1.0
  inv_freq = 1.0 / base ** np.arange(0, 1, 4 / head_dim)
  angles = 2 * np.pi * coords[:, :, None] * inv_freq[None, None, :]
  angles = np.tile(angles.reshape(len(coords), -1), 2)
  return np.cos(angles).astype(np.float32), np.sin(angles).astype(np.float32)


def apply_rope(x, cos, sin, num_heads: int, prefix: int):
  """Rotates the patch tokens (after `prefix` tokens) of (B, T, C) x."""
  b, t, c = x.shape
  x = x.reshape(b, t, num_heads, c // num_heads)
  head, patches = x[:, :prefix], x[:, prefix:]
  half = patches.shape[-1] // 2
  rotated = jnp.concatenate([-patches[..., half:], patches[..., :half]], -1)
  cos, sin = cos[None, :, None].astype(x.dtype), sin[None, :, None].astype(
      x.dtype)
  patches = patches * cos + rotated * sin
  return jnp.concatenate([head, patches], axis=1).reshape(b, t, c)


class Block(nn.Module):
  """Pre-norm ViT block: x + ls1 attn(norm1(x)); x + ls2 mlp(norm2(x)).

  LayerScale (ls1, ls2: per-channel gains, DINOv2) only when `layerscale`.
  `rope_prefix`: the tokens before the patches (CLS, registers) that the
  rotary embedding leaves alone.
  """
  num_heads: int
  mlp_dim: int
  dtype: jnp.dtype = jnp.float32
  layerscale: bool = False
  eps: float = 1e-6
  rope_prefix: int = 0

  @nn.compact
  def __call__(self, x, rope=None):
    """rope: None or (cos, sin) to rotate q and k (DINOv3)."""
    c = x.shape[-1]
    ln = lambda name: nn.LayerNorm(self.eps, dtype=self.dtype, name=name)
    dense = lambda n, name: nn.Dense(n, dtype=self.dtype,
                                     kernel_init=dense_init, name=name)
    scale = lambda name: (self.param(name, nn.initializers.ones, (c,)).astype(
        self.dtype) if self.layerscale else 1.0)
    y = ln('norm1')(x)
    q, k, v = jnp.split(dense(3 * c, 'qkv')(y), 3, axis=-1)
    if rope is not None:
      cos, sin = rope
      q = apply_rope(q, cos, sin, self.num_heads, self.rope_prefix)
      k = apply_rope(k, cos, sin, self.num_heads, self.rope_prefix)
    x = x + scale('ls1') * dense(c, 'proj')(attend(q, k, v, self.num_heads))
    y = ln('norm2')(x)
    y = gelu(dense(self.mlp_dim, 'fc1')(y))
    return x + scale('ls2') * dense(c, 'fc2')(y)


def sincos_pos_embed_init(grid: int, temperature: float = 10000.0,
                          scale: float = 1.0):
  """Initialiser of a (1, 1 + grid^2, C) position embedding with the
  structure-prompt encoding (Eq. 6.1-6.3) of each patch centre.

  A from-scratch aid: the decoder's prompts and its cross-attention keys then
  start in one coordinate system. `scale` > 1 keeps the position visible in
  the tokens next to the patch embedding (about 3x larger for real images);
  without it the untrained decoder cannot tell where a token is. DINO
  weights replace it when converted.
  """

  def init(key, shape, dtype=jnp.float32):
    del key
    c = shape[-1]
    centres = (jnp.arange(grid) + 0.5) / grid
    yy, xx = jnp.meshgrid(centres, centres, indexing='ij')
    pe = encode_prompts(jnp.stack([xx, yy], -1).reshape(-1, 2), c,
                        temperature)
    pe = scale * pe
    return jnp.concatenate([jnp.zeros((1, c)), pe])[None].astype(dtype)

  return init


class ViT(nn.Module):
  """DINO ViT returning (patch tokens, patch position embedding).

  pos_init: 'random' (truncated normal, as DINO) or 'sincos' (see
  `sincos_pos_embed_init`); only matters when not loading weights.
  remat: rematerialisation of the blocks (`remat.POLICIES`).
  """
  variant: str = 'S/16'
  pos_resize: str = 'dino'
  pos_init: str = 'random'
  pos_temperature: float = 10000.0
  pos_init_scale: float = 1.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images):
    cfg = decode_variant(self.variant)
    c, p = cfg['width'], cfg['patch']
    b, hh, ww, _ = images.shape
    if hh % p or ww % p:
      raise ValueError(f'input {hh}x{ww} is not a multiple of patch {p}')
    x = normalize_images(images, self.dtype)
    x = nn.Conv(c, (p, p), strides=(p, p), padding='VALID', dtype=self.dtype,
                name='patch_embed')(x)
    gh, gw = hh // p, ww // p
    x = x.reshape(b, gh * gw, c)
    r, eps = cfg['registers'], 10.0 ** -cfg['eps']
    if cfg['rope']:
      # DINOv3: no absolute embedding; rotary q/k in every block. The
      # decoder's cross-attention keys get the structure-prompt encoding of
      # each patch centre, the coordinate system of the prompts themselves.
      cos, sin = rope_tables(gh, gw, c // cfg['num_heads'], cfg['rope'])
      rope = (cos, sin)
      centres = jnp.asarray(patch_centres(gh, gw)[:, ::-1])  # (x, y)
      patch_pos = encode_prompts(centres, c, self.pos_temperature)[None]
      cls = self.param('cls_token', dense_init, (1, 1, c))
      x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c)).astype(x.dtype),
                           x], axis=1)
    else:
      rope = None
      g0 = cfg['pretrain'] // p
      if self.pos_init not in ('random', 'sincos'):
        raise ValueError(f'unknown pos_init {self.pos_init!r}')
      pos_init = (sincos_pos_embed_init(g0, self.pos_temperature,
                                        self.pos_init_scale)
                  if self.pos_init == 'sincos' else dense_init)
      pos = self.param('pos_embed', pos_init, (1, 1 + g0 * g0, c))
      cls = self.param('cls_token', dense_init, (1, 1, c))
      patch_pos = resize_pos_embed(pos[0, 1:].reshape(g0, g0, c), (gh, gw),
                                   self.pos_resize).reshape(1, gh * gw, c)
      x = jnp.concatenate([jnp.broadcast_to(cls, (b, 1, c)).astype(x.dtype),
                           x], axis=1)
      x = x + jnp.concatenate([pos[:, :1], patch_pos], axis=1).astype(x.dtype)
    if r:  # register tokens after CLS, without a position embedding
      reg = self.param('register_tokens', dense_init, (1, r, c))
      x = jnp.concatenate([x[:, :1], jnp.broadcast_to(reg, (b, r, c)).astype(
          x.dtype), x[:, 1:]], axis=1)
    block = checkpointed(Block, self.remat)
    for i in range(cfg['depth']):
      x = block(cfg['num_heads'], cfg['mlp_dim'], self.dtype,
                bool(cfg['layerscale']), eps, 1 + r, name=f'blocks_{i}')(
                    x, rope)
    x = nn.LayerNorm(eps, dtype=self.dtype, name='norm')(x)
    return x[:, 1 + r:], patch_pos
