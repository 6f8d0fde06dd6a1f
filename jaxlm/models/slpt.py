"""SLPT: the sparse local patch transformer, coarse to fine (thesis ch. 4).

image -> backbone -> feature map(s)
initial shape S0 (the training set's mean face) -> for each stage s:
  a K x K patch around every landmark of S_{s-1} (half-size h_s, bilinear,
  `patch_gather.py`) -> one token per landmark (a K x K convolution) ->
  inherent relation layers (pre-norm DETR decoder: target starts at zero,
  learnable landmark queries as query positions, learnable structure
  encodings added to the cross-attention keys, values the raw tokens, one
  final LayerNorm on every layer's output) -> Linear(d -> 2): the landmark's
  position inside its patch -> S_s = box_min + box_size * offset.

The patch convolution, transformer and head are shared by the stages; each
stage is centred on the previous stage's last-layer prediction, without
gradient. Half-sizes 0.125, 0.0625, 0.03125 of the image (8, 4, 2 pixels of
the 64 x 64 map). DSLPT (`dslpt.py`) changes the head and the patch sizes.

The inherent relation layers compute exactly the TUFA prompt decoder's
layer (`prompt_decoder.py`: queries in the role of the prompts, structure
encodings in that of the key positions), so that module is reused.

Model API shared with TUFA: `point_index` (B, N) selects the landmarks (and
their initial positions from the `constants` mean shape); `prompts` (B, N, 2)
gives initial positions for all N landmarks in order instead. Output: a dict
with `landmarks` (stages, layers, B, N, 2) in [0, 1] crop units, and
`box_min`, `box_size` (stages, B, N, 2) of the patches each stage used.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.errors import JaxlmError
from jaxlm.models import patch_gather
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.hrnet import HRNet
from jaxlm.models.prompt_decoder import PromptDecoder
from jaxlm.models.remat import remat_of
from jaxlm.models.resnet import ResNet
from jaxlm.models.vit import ViT

BACKBONES = ('hrnet_lite', 'hrnet', 'resnet34', 'resnet50', 'vit:<variant>')


def xavier_uniform_3d(num_points: int, width: int):
  """torch's xavier_uniform_ of a (1, N, d) parameter, stored as (N, d):
  fan_in = N * d, fan_out = d."""
  bound = (6.0 / ((num_points + 1) * width))**0.5
  return lambda key, shape, dtype=jnp.float32: jax.random.uniform(
      key, shape, dtype, -bound, bound)


class ViTMap(nn.Module):
  """A ViT's patch tokens as a (B, g, g, out_dim) map (1x1 projection when
  the ViT's width differs from out_dim)."""
  variant: str
  out_dim: int = 256
  dtype: jnp.dtype = jnp.float32
  pos_init: str = 'random'
  pos_init_scale: float = 1.0
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False):
    del train
    tokens, _ = ViT(self.variant, pos_init=self.pos_init,
                    pos_init_scale=self.pos_init_scale, dtype=self.dtype,
                    remat=self.remat, name='vit')(images)
    b, n, c = tokens.shape
    g = int(round(n**0.5))
    x = tokens.reshape(b, g, g, c)
    if c != self.out_dim:
      x = nn.Dense(self.out_dim, dtype=self.dtype, name='proj')(x)
    return [x]


def make_backbone(name: str, out_dim: int, dtype, pos_init='random',
                  pos_init_scale=1.0, remat='none'):
  if name == 'hrnet_lite':
    return HRNet('lite', out_dim, dtype, remat, name='backbone')
  if name == 'hrnet':
    return HRNet('full', out_dim, dtype, remat, name='backbone')
  if name in ('resnet34', 'resnet50'):
    return ResNet(int(name[6:]), out_dim, dtype, remat, name='backbone')
  if name.startswith('vit:'):
    return ViTMap(name[4:], out_dim, dtype, pos_init, pos_init_scale, remat,
                  name='backbone')
  raise ValueError(f'unknown SLPT backbone {name!r}; known: '
                   f'{", ".join(BACKBONES)}')


class PatchEmbed(nn.Module):
  """A K x K 'valid' convolution over each K x K patch, i.e. one token per
  patch. Computed as one matmul over the flattened patch (the same numbers,
  and XLA's convolution gradients are slow for this shape on CPU); the
  kernel keeps a convolution's (K, K, C_in, C_out) layout."""
  features: int
  use_bias: bool = False
  dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, patches):  # (B, N, K, K, C)
    k, c = patches.shape[-2], patches.shape[-1]
    # torch's xavier_uniform_ of a conv weight: both fans include K x K
    bound = (6.0 / (k * k * (c + self.features)))**0.5
    kernel = self.param('kernel', lambda key, shape: jax.random.uniform(
        key, shape, jnp.float32, -bound, bound), (k, k, c, self.features))
    flat = patches.reshape(patches.shape[:2] + (k * k * c,)).astype(
        self.dtype)
    out = flat @ kernel.reshape(k * k * c, self.features).astype(self.dtype)
    if self.use_bias:
      out = out + self.param('bias', nn.initializers.zeros,
                             (self.features,)).astype(self.dtype)
    return out


class SLPT(nn.Module):
  """SLPT (thesis ch. 4) on an HRNet / ResNet / ViT backbone.

  Attributes:
    num_points: N landmarks of the (single) training layout.
    backbone: 'hrnet_lite' (thesis default), 'hrnet', 'resnet34',
      'resnet50' or 'vit:<variant>'.
    width, num_heads, num_layers, mlp_dim, dropout: the transformer
      (d 256, 8 heads, 6 layers, FFN 1024, dropout 0.1).
    patch: K, the samples per patch side (7).
    half_sizes: per-stage patch half-size in crop units (DSLPT: the first
      stage's only; later ones follow the predicted variances).
    dtype: compute dtype.
    remat: rematerialisation of the backbone's blocks and the transformer's
      layers (`remat.POLICIES`).
  """
  num_points: int = 98
  backbone: str = 'hrnet_lite'
  width: int = 256
  num_heads: int = 8
  num_layers: int = 6
  mlp_dim: int = 1024
  dropout: float = 0.1
  patch: int = 7
  half_sizes: tuple[float, ...] = (0.125, 0.0625, 0.03125)
  dtype: jnp.dtype = jnp.float32
  pos_init: str = 'random'  # ViT backbones from scratch: 'sincos' helps
  pos_init_scale: float = 1.0
  remat: str = 'none'

  convention = 'slpt'  # patch_gather convention
  patch_bias = False  # bias of the patch convolution

  # -- the parts DSLPT changes -------------------------------------------
  def make_head(self):
    return nn.Dense(2, kernel_init=nn.initializers.xavier_uniform(),
                    name='head')

  def apply_head(self, head, feats):
    """{'offset': (L, B, N, 2)} in patch units, plus any extra outputs."""
    return {'offset': head(feats)}

  def next_half(self, stage, half, outputs):
    del half, outputs
    return self.half_sizes[stage + 1]

  # ------------------------------------------------------------------------
  def mean_shape(self):
    return self.variable('constants', 'mean_shape', jnp.zeros,
                         (self.num_points, 2), jnp.float32).value

  @nn.compact
  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    if (prompts is None) == (point_index is None):
      raise ValueError('give exactly one of prompts and point_index')
    b = images.shape[0]
    mean = self.mean_shape()
    queries = self.param('landmark_query',
                         xavier_uniform_3d(self.num_points, self.width),
                         (self.num_points, self.width))
    structure = self.param('structure_encoding',
                           xavier_uniform_3d(self.num_points, self.width),
                           (self.num_points, self.width))
    if prompts is None:
      index = point_index % self.num_points  # one layout: offsets are 0
      centres = mean[index]
      queries, structure = queries[index], structure[index]
    else:
      if prompts.ndim == 2:
        prompts = jnp.broadcast_to(prompts, (b,) + prompts.shape)
      if prompts.shape[-2] != self.num_points:
        raise ValueError(f'{prompts.shape[-2]} initial points for a model of '
                         f'{self.num_points} landmarks')
      centres = prompts.astype(jnp.float32)
      queries = jnp.broadcast_to(queries, (b,) + queries.shape)
      structure = structure[None]
    feature_maps = make_backbone(self.backbone, self.width, self.dtype,
                                 self.pos_init, self.pos_init_scale,
                                 self.remat)(images, train)
    embed = PatchEmbed(self.width, self.patch_bias, self.dtype,
                       name='patch_embed')
    decoder = PromptDecoder(self.num_layers, self.num_heads, self.mlp_dim,
                            self.dropout, self.dtype, self.remat,
                            name='transformer')
    head = self.make_head()
    half = self.half_sizes[0]
    stages = []
    for s in range(len(self.half_sizes)):
      box_min, box_size = patch_gather.patch_boxes(centres, half,
                                                   self.convention)
      patches = jnp.concatenate([
          patch_gather.gather_patches(f, box_min, box_size, self.patch,
                                      self.convention)
          for f in feature_maps], axis=-1)  # (B, N, K, K, C)
      tokens = embed(patches)  # (B, N, width)
      feats = decoder(tokens, structure, queries, deterministic=not train)
      out = self.apply_head(head, feats.astype(jnp.float32))
      out['landmarks'] = box_min + box_size * out['offset']
      out['box_min'], out['box_size'] = box_min, box_size
      stages.append(out)
      if s + 1 < len(self.half_sizes):
        centres = jax.lax.stop_gradient(out['landmarks'][-1])
        half = self.next_half(s, half, out)
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *stages)

  def dataset_prompts(self, name: str):
    """(N, 2) initial shape (the training mean face); one layout only."""
    del name
    return self.get_variable('constants', 'mean_shape')


def defaults(backbone: str = 'hrnet_lite'):
  """Model settings of SLPT (thesis ch. 4) and DSLPT (ch. 5)."""
  return dict(
      variant=backbone,  # hrnet_lite | hrnet | resnet34 | resnet50 | vit:<v>
      width=256, num_heads=8, num_layers=6, mlp_dim=1024, dropout=0.1,
      patch=7,  # K: samples per patch side
      # Per-stage half-sizes (crop units); DSLPT uses the first only and
      # sizes later patches from the predicted variances.
      half_sizes=(0.125, 0.0625, 0.03125),
      # position embedding of a ViT backbone trained from scratch
      pos_init='random', pos_init_scale=1.0,
      dtype='float32',
      remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def builder(cls):
  """(model config, datasets) -> `cls` (SLPT or DSLPT): one landmark layout
  from one training dataset; `model.variant` names the backbone."""
  def build(c, datasets):
    if len(datasets) != 1:
      raise JaxlmError(f'config key data.train: {c.name} learns one landmark '
                       f'layout from one training dataset, got '
                       f'{", ".join(n for n, _ in datasets)}')
    if not c.half_sizes:
      raise JaxlmError('config key model.half_sizes: at least one stage')
    return cls(num_points=int(datasets[0][1]), backbone=c.variant,
               width=c.width, num_heads=c.num_heads, num_layers=c.num_layers,
               mlp_dim=c.mlp_dim, dropout=c.dropout, patch=c.patch,
               half_sizes=tuple(float(h) for h in c.half_sizes),
               dtype=compute_dtype(c), pos_init=c.pos_init,
               pos_init_scale=c.pos_init_scale, remat=remat_of(c))
  return build


def vit_backbone(c):
  """(params path, ViT variant) of a `vit:<variant>` backbone, else None."""
  if c.variant.startswith('vit:'):
    return ('backbone', 'vit'), c.variant[len('vit:'):]
  return None


def last_landmarks(outputs):
  """(B, N, 2): the last stage's last layer."""
  return outputs['landmarks'][-1, -1]


def _loss(model, train_layouts):
  """Inter-ocular-normalised L2 over stages and layers (thesis §4.3)."""
  del model
  eyes = tuple(train_layouts[0].outer_eye_corners)

  def slpt_loss(out, batch):
    loss, stages = losses.normalized_l2(out['landmarks'], batch['target'],
                                        batch['weight'], eyes)
    return loss, {f'nme_stage{i + 1}': v for i, v in enumerate(stages)}
  return slpt_loss


FAMILY = Family(name='slpt', defaults=defaults, build=builder(SLPT),
                loss=_loss, landmarks=last_landmarks, encoder=vit_backbone)
