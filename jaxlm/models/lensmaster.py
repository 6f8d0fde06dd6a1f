"""LensMaster (paper 000): the Cascaded Dual Vision Transformer's heatmap
cascade on a frozen DINOv3 backbone, or on CD-ViT's own HeadingNet.

  images (B, S, S, 3) RGB [0, 255]
    backbone 'dinov3': bilinear resize to `backbone_input` (the paper: 256
      -> 512 px) -> ViT (`vit.py`, DINOv3 variant; ImageNet-normalised
      inside; CLS and register tokens dropped) -> (B, g, g, 384) token map,
      g = backbone_input / 16 -> Conv1x1(384 -> width) - BN - ReLU;
    backbone 'heading_net': (x / 255 - 0.5) / 0.5 -> HeadingNet
      (`heading_net.py`) -> (B, S / 8, S / 8, width);
  -> CascadedDualViT (`cascaded_dual_vit.py`): per-stage logits (T, B, H, H,
     N) -> soft-argmax (`heatmap.py`) -> per-stage landmarks.

Outputs: dict(stages=(T, B, N, 2) crop units, heatmaps=(T, B, N, H, H)
softmax probabilities); the last stage is the prediction. Heatmap cells
convert to crop units in `heatmap.py` only (corner-aligned, exact inverses).

Freezing the backbone is a training setting (`train.frozen = ('encoder',)`,
`train/frozen.py`), not part of the model: the LensMaster configs set it, and
'!encoder/blocks_9' ... patterns fine-tune the last blocks (the paper's
ablation). Where the document and the public code disagree, jaxlm follows
the code and says so: no shifted-window attention (`dual_vit.py`), and the
SmoothL1 term's beta (`smooth_l1_beta`).

Loss (`_loss`), per stage i of T, weighted 1.2^-(T - 1 - i):
  heatmap_weight x mean over cells of AWing(softmax heatmap, target) x
    (10 [maxpool3x3(target) >= 0.2] + 1), the target a sum-1 Gaussian of
    sigma 1 / sqrt 2 cells at the landmark (`heatmap.gaussian_target`);
  + coord_weight x SmoothL1_beta(soft-argmax, target) on the official unit
    coordinates cells / (H - 1).
Per-landmark weights (`batch['weight']`, 0 for a missing point) weight
both means; with all weights 1 they are the public code's plain means. The
public code calls `F.smooth_l1_loss(pred, target, 0.001)`, whose third
positional argument is `size_average`, so it trains with PyTorch's default
beta 1.0 (a squared loss on [0, 1] coordinates); the document says 0.001.
`smooth_l1_beta` defaults to 1.0, what the published numbers were trained
with; set 0.001 for the document's loss.

Model API (`family.py`): one layout; `point_index` (B, N') selects points
(`index % N`); `prompts` only fix N. BatchNorm statistics live in
`batch_stats`; under `jax.jit` over a mesh they are those of the global
batch (the public code's are per GPU, 16 faces, without SyncBN), and flax
averages the biased batch variance where torch keeps the unbiased one.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.errors import JaxlmError
from jaxlm.models import heatmap
from jaxlm.models.cascaded_dual_vit import CascadedDualViT
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.heading_net import HeadingNet
from jaxlm.models.hrnet import batch_norm
from jaxlm.models.remat import remat_of
from jaxlm.models.torch_defaults import TORCH_BN_MOMENTUM, conv
from jaxlm.models.vit import ViT, decode_variant

BACKBONES = ('dinov3', 'heading_net')
# DINOv3 ViT-S/16: LayerScale, 4 registers, 2D RoPE base 100, LN eps 1e-5
DINOV3_S16 = 'S/16:layerscale=1:registers=4:rope=100:eps=5'


class LensMaster(nn.Module):
  """Backbone -> heatmap cascade -> soft-argmax (module docstring).

  Attributes:
    num_points: N landmarks of the training layout.
    backbone: 'dinov3' or 'heading_net'.
    variant: the ViT variant of the 'dinov3' backbone.
    backbone_input: the side the 'dinov3' backbone sees (512: the crop is
      resized so that a /16 ViT gives a 32 x 32 map).
    width: channels of the cascade (256).
    stages, blocks_per_stage, num_heads, patch: of the cascade.
    heatmap_weight, coord_weight, smooth_l1_beta, stage_base: the loss's
      settings (read by the family's loss, not by the forward pass).
    remat: rematerialisation of the backbone's blocks and the cascade's
      dual blocks (`remat.POLICIES`).
  """
  num_points: int = 98
  backbone: str = 'dinov3'
  variant: str = DINOV3_S16
  backbone_input: int = 512
  width: int = 256
  stages: int = 8
  blocks_per_stage: int = 2
  num_heads: int = 4
  patch: int = 2
  heatmap_weight: float = 10.0
  coord_weight: float = 1.0
  smooth_l1_beta: float = 1.0
  stage_base: float = 1.2
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def backbone_map(self, images, train: bool = False):
    """(B, S, S, 3) RGB -> the (B, H, H, width) map the cascade refines
    (call inside `__call__`: its modules are `__call__`'s)."""
    b = images.shape[0]
    if self.backbone == 'dinov3':
      s = self.backbone_input
      x = images.astype(jnp.float32)
      if x.shape[1:3] != (s, s):
        x = jax.image.resize(x, (b, s, s, 3), 'bilinear')
      tokens, _ = ViT(self.variant, dtype=self.dtype, remat=self.remat,
                      name='encoder')(x)
      g = int(round(tokens.shape[1]**0.5))
      f = conv(self.width, 1, tokens.shape[-1], True, self.dtype,
               'projector')(tokens.reshape(b, g, g, -1))
      return nn.relu(batch_norm(f, train, 'projector_bn', TORCH_BN_MOMENTUM))
    x = (images.astype(jnp.float32) / 255.0 - 0.5) / 0.5
    return HeadingNet((32, 64, self.width), self.dtype, self.remat,
                      name='encoder')(x, train)

  @nn.compact
  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    if self.backbone not in BACKBONES:
      raise ValueError(f'unknown backbone {self.backbone!r} (known: '
                       f'{", ".join(BACKBONES)})')
    if prompts is not None and prompts.shape[-2] != self.num_points:
      raise ValueError(f'{prompts.shape[-2]} prompts for a model of '
                       f'{self.num_points} landmarks (the heatmap cascade '
                       f'predicts its one layout; prompt positions are '
                       f'ignored)')
    self.variable('constants', 'mean_shape', jnp.zeros, (self.num_points, 2),
                  jnp.float32)
    f = self.backbone_map(images, train)
    logits = CascadedDualViT(self.num_points, self.stages,
                             self.blocks_per_stage, self.num_heads,
                             self.patch, self.dtype, self.remat,
                             name='cascade')(f, train)
    h = logits.shape[2]  # (T, B, H, H, N)
    cells, probs = jax.vmap(heatmap.soft_argmax)(logits)
    out = dict(stages=heatmap.from_heatmap(cells, h, images.shape[1]),
               heatmaps=probs)
    if point_index is not None:
      index = point_index % self.num_points  # (B, N')
      out = dict(
          stages=jnp.take_along_axis(out['stages'],
                                     index[None, :, :, None], axis=2),
          heatmaps=jnp.take_along_axis(out['heatmaps'],
                                       index[None, :, :, None, None], axis=2))
    return out

  def dataset_prompts(self, name: str):
    """(N, 2) the training mean shape (one layout; fixes N only)."""
    del name
    return self.get_variable('constants', 'mean_shape')


def defaults():
  return dict(
      backbone='dinov3',  # dinov3 | heading_net (CD-ViT's own)
      variant=DINOV3_S16,  # ViT variant of the dinov3 backbone
      backbone_input=512,  # the side the ViT sees (crop resized)
      width=256, stages=8, blocks_per_stage=2, num_heads=4, patch=2,
      heatmap_weight=10.0, coord_weight=1.0,
      # 1.0: what the public code trains with (see the module docstring);
      # the document says 0.001
      smooth_l1_beta=1.0,
      stage_base=1.2,  # stage i weighted stage_base^-(T - 1 - i)
      dtype='float32',
      remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def build(c, datasets):
  """(model config, datasets) -> LensMaster of the one training layout."""
  if len(datasets) != 1:
    raise JaxlmError(f'config key data.train: {c.name} learns one landmark '
                     f'layout from one training dataset, got '
                     f'{", ".join(n for n, _ in datasets)}')
  if c.backbone not in BACKBONES:
    raise JaxlmError(f'config key model.backbone: unknown backbone '
                     f'{c.backbone!r} (known: {", ".join(BACKBONES)})')
  if c.stages < 1 or c.blocks_per_stage < 1:
    raise JaxlmError('config keys model.stages and model.blocks_per_stage: '
                     'at least 1')
  if c.width % 2 or c.width % c.num_heads:
    raise JaxlmError(f'config key model.width: {c.width} must be even and '
                     f'divisible by model.num_heads={c.num_heads}')
  if c.backbone == 'dinov3':
    try:
      p = decode_variant(c.variant)['patch']
    except ValueError as e:
      raise JaxlmError(f'config key model.variant: {e}') from None
    if c.backbone_input % (p * c.patch):
      raise JaxlmError(f'config key model.backbone_input: '
                       f'{c.backbone_input} is not a multiple of the ViT '
                       f'patch {p} x the cascade patch {c.patch}')
    # the channel-split attention's tokens are the (H / patch)^2 values of
    # one channel: their width must split into the heads
    tokens = (c.backbone_input // p // c.patch)**2
    if tokens % c.num_heads:
      raise JaxlmError(f'config key model.backbone_input: '
                       f'{c.backbone_input} gives channel tokens of width '
                       f'{tokens}, not divisible by model.num_heads='
                       f'{c.num_heads}')
  return LensMaster(num_points=int(datasets[0][1]), backbone=c.backbone,
                    variant=c.variant, backbone_input=int(c.backbone_input),
                    width=int(c.width), stages=int(c.stages),
                    blocks_per_stage=int(c.blocks_per_stage),
                    num_heads=int(c.num_heads), patch=int(c.patch),
                    heatmap_weight=float(c.heatmap_weight),
                    coord_weight=float(c.coord_weight),
                    smooth_l1_beta=float(c.smooth_l1_beta),
                    stage_base=float(c.stage_base), dtype=compute_dtype(c),
                    remat=remat_of(c))


def stage_losses(out, target, weight, image_size: int, beta: float = 1.0):
  """Per-stage (AWing, SmoothL1) terms, each (T,), of the module docstring.

  out: the model's outputs; target (B, N, 2) crop units; weight (B, N).
  """
  probs = out['heatmaps']  # (T, B, N, H, W)
  h, w = probs.shape[-2:]
  cells = heatmap.to_heatmap(target, h, image_size)
  goal = heatmap.gaussian_target(cells, h, w)
  awing = losses.adaptive_wing(probs, goal[None], **losses.AWING)
  awing = (awing * losses.heatmap_weight_map(goal)[None]).mean(axis=(-2, -1))
  denom = jnp.maximum(weight.sum(), 1.0)
  use = weight > 0  # a weight-0 point's terms may be anything, even NaN
  awing = jnp.where(use, awing * weight, 0.0).sum(axis=(1, 2)) / denom
  pred01 = heatmap.to_heatmap(out['stages'], h, image_size) / (h - 1)
  coord = losses.smooth_l1(pred01, cells[None] / (h - 1), beta).mean(-1)
  coord = jnp.where(use, coord * weight, 0.0).sum(axis=(1, 2)) / denom
  return awing, coord


def _loss(model, train_layouts):
  del train_layouts

  def cascade_loss(out, batch):
    awing, coord = stage_losses(out, batch['target'], batch['weight'],
                                batch['image'].shape[1], model.smooth_l1_beta)
    w = losses.cascade_stage_weights(awing.shape[0], model.stage_base)
    loss = (w * (model.heatmap_weight * awing + model.coord_weight * coord)
            ).sum()
    return loss, dict(awing=awing[-1], smooth_l1=coord[-1])
  return cascade_loss


def describe(outputs):
  """`predict --json` extra: each landmark's heatmap maximum (the largest
  softmax probability of the last stage, in (0, 1]) as a confidence."""
  return dict(points={}, lengths={}, values={
      'heatmap_max': outputs['heatmaps'][-1].max(axis=(-2, -1))})


FAMILY = Family(
    name='lensmaster', defaults=defaults, build=build, loss=_loss,
    landmarks=lambda outputs: outputs['stages'][-1],
    encoder=lambda c: (('encoder',), c.variant) if c.backbone == 'dinov3'
    else None,
    describe=describe)
