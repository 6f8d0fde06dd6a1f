"""Continuous landmarks from 3D queries (Chandran et al., CVPR 2023; paper 002).

One model answers any landmark of the face: each is asked for by a 3D query,
a point of a canonical 3D face, on or off its surface (head coordinates of
the reference identity, x right, y down, z towards the camera, half-width
about 1; `data/query_tables`, `data/synthetic/canonical.py`):

  images (B, S, S, 3) RGB [0, 255] -> feature extractor F -> f (B, D)
  queries (B, N, 3) -> query encoder M -> (B, N, 64)
  predictor P(concat(f, M(q_k))) -> (μ_x, μ_y) screen units [-1, 1] and the
    log-variance s of an isotropic Gaussian (σ² = e^s) per landmark (§3).

F (`model.extractor`): 'convnext' (the paper's; `convnext.py`, pooled +
LayerNorm, 768 for 'tiny'), 'mobilenet_v3' (the paper's fast one, 1280),
'vit' (jaxlm's ViT, mean of the patch tokens; `init.encoder` loads DINO) or
'resnet' (a ResNet trunk, global average pool). P (`model.predictor`):
'mlp' or 'transformer' (§4.7, `query_predictor.py`).

Training (§3): Gaussian negative log-likelihood in screen units
(`losses.isotropic_gaussian_nll`) over each example's queries, weighted by
visibility. Each training dataset has its own (N_i, 3) query table (its
layout's, `constants/queries`, filled by the trainer, in dataset order);
`point_index` gathers per example, as TUFA's alignment tables, so a batch
mixes layouts and anchor masking draws random subsets of queries.

Model API (`family.py`): `prompts` are (N, 3) or (B, N, 3) canonical
queries (any layout, any density); `point_index` (B, N) indexes the query
table. Output: dict(landmarks (B, N, 2) crop units [0, 1] (= (μ + 1) / 2),
log_var (B, N) of the screen-unit variance). `constants/mean_shape` holds
the training mean shapes (the evaluation baseline only).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm import losses
from jaxlm.errors import JaxlmError
from jaxlm.models import convnext, mobilenet_v3, resnet, vit
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.query_predictor import (PREDICTORS, QueryEncoder,
                                          make_predictor, predict_queries)
from jaxlm.models.remat import remat_of
from jaxlm.models.semantic_alignment import point_offsets

EXTRACTORS = ('convnext', 'mobilenet_v3', 'vit', 'resnet')
# the predictor widths of the paper (§4.7), `model.predictor_width` 0
PAPER_WIDTH = {'mlp': 512, 'transformer': 768}


def check_extractor(kind: str, variant: str):
  """ValueError unless `variant` names a feature extractor of `kind`."""
  if kind == 'convnext':
    convnext.decode_variant(variant)
  elif kind == 'mobilenet_v3':
    mobilenet_v3.check_variant(variant)
  elif kind == 'vit':
    vit.decode_variant(variant)
  elif kind == 'resnet':
    if not variant.isdigit():
      raise ValueError(f'ResNet variant {variant!r}: the depth, e.g. "18"')
    resnet.check_depth(int(variant))
  else:
    raise ValueError(f'unknown feature extractor {kind!r}; known: '
                     f'{", ".join(EXTRACTORS)}')


class ResNetDescriptor(nn.Module):
  """ImageNet-normalised RGB -> ResNet trunk -> global average pool (or,
  `return_map`, the C5 map)."""
  depth: int = 18
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False, return_map=False):
    x = vit.normalize_images(images, self.dtype)
    x = resnet.ResNetTrunk(self.depth, 3, 0.9, self.dtype, self.remat,
                           name='trunk')(x, train).astype(jnp.float32)
    return x if return_map else x.mean(axis=(1, 2))


class ViTDescriptor(nn.Module):
  """jaxlm's ViT -> the mean of its patch tokens after the final norm (or,
  `return_map`, the tokens (B, h * w, C))."""
  variant: str = 'S/16'
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False, return_map=False):
    del train
    tokens, _ = vit.ViT(self.variant, pos_init='sincos', dtype=self.dtype,
                        remat=self.remat, name='vit')(images)
    tokens = tokens.astype(jnp.float32)
    return tokens if return_map else tokens.mean(axis=1)


POOLS = ('mean', 'flatten')


def feature_map(module, kind: str, images, train):
  """F's last feature map (B, ..., C) before pooling, float32."""
  if kind == 'convnext':
    return module.features(images, train)
  if kind == 'mobilenet_v3':
    return module(images, train, return_feature_map=True)[1]
  return module(images, train, return_map=True)


def extractor(kind: str, variant: str, drop_path: float, dtype,
              remat: str = 'none'):
  """The feature extractor F: images -> f (B, D), float32; `remat`
  rematerialises its blocks (`remat.POLICIES`)."""
  check_extractor(kind, variant)
  if kind == 'convnext':
    return convnext.ConvNeXt(variant, drop_path, dtype, remat)
  if kind == 'mobilenet_v3':
    return mobilenet_v3.MobileNetV3(variant, dtype=dtype, remat=remat)
  if kind == 'vit':
    return ViTDescriptor(variant, dtype, remat)
  return ResNetDescriptor(int(variant), dtype, remat)


class Queries3D(nn.Module):
  """F, M and P of paper 002 (see the module docstring).

  Attributes:
    datasets: ((name, num_points), ...) training datasets, one query table
      each, concatenated in this order.
    extractor, variant: F ('convnext' 'tiny', ...).
    predictor: 'mlp' or 'transformer'; predictor_width (512 / 768 in the
      paper), predictor_depth (4), predictor_heads (8, transformer only).
    query_dim: M's embedding width (64).
    pool: how F's last map becomes f: 'mean' (the paper: F's own pooled
      descriptor; for ConvNeXt mean then LayerNorm), or 'flatten' (the map
      flattened, LayerNorm, Dense(descriptor_dim): keeps where things are;
      an option beside the paper, not measured against 'mean').
    descriptor_dim: the width of f with pool 'flatten' (768, the paper's).
    drop_path: ConvNeXt's stochastic depth rate.
    dtype: compute dtype (parameters and outputs float32).
    remat: rematerialisation of F's blocks and P's transformer blocks
      (`remat.POLICIES`).
  """
  datasets: tuple[tuple[str, int], ...] = (('syn98', 98),)
  extractor: str = 'convnext'
  variant: str = 'tiny'
  predictor: str = 'mlp'
  predictor_width: int = 512
  predictor_depth: int = 4
  predictor_heads: int = 8
  query_dim: int = 64
  pool: str = 'mean'
  descriptor_dim: int = 768
  drop_path: float = 0.0
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def setup(self):
    n = sum(k for _, k in self.datasets)
    self.queries = self.variable('constants', 'queries', jnp.zeros, (n, 3),
                                 jnp.float32)
    self.mean_shape = self.variable('constants', 'mean_shape', jnp.full,
                                    (n, 2), 0.5, jnp.float32)
    self.features = extractor(self.extractor, self.variant,
                              self.drop_path, self.dtype, self.remat)
    if self.pool == 'flatten':
      self.flat_norm = nn.LayerNorm(1e-6)
      self.flat_proj = nn.Dense(self.descriptor_dim, dtype=self.dtype,
                                kernel_init=nn.initializers.xavier_uniform())
    elif self.pool != 'mean':
      raise ValueError(f'unknown pool {self.pool!r}; known: '
                       f'{", ".join(POOLS)}')
    self.query_encoder = QueryEncoder(self.query_dim, self.dtype)
    self.head = make_predictor(self.predictor, self.predictor_width,
                               self.predictor_depth, self.predictor_heads,
                               self.dtype, remat=self.remat)

  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    """dict(landmarks (B, N, 2) crop units, log_var (B, N)).

    Args:
      images: (B, H, W, 3) RGB in [0, 255].
      prompts: (N, 3) or (B, N, 3) canonical 3D queries, or None.
      point_index: (B, N) indices into the query table (training datasets'
        layouts), used when `prompts` is None.
      train: BatchNorm batch statistics and stochastic depth.
    """
    if (prompts is None) == (point_index is None):
      raise ValueError('give exactly one of prompts and point_index')
    if prompts is None:
      q = jnp.take(self.queries.value, point_index, axis=0)
    else:
      q = jnp.asarray(prompts, jnp.float32)
      if q.shape[-1] != 3:
        raise ValueError(f'3D queries must be (N, 3) or (B, N, 3) canonical '
                         f'points, got shape {q.shape}')
      if q.ndim == 2:
        q = jnp.broadcast_to(q, (images.shape[0],) + q.shape)
    if self.pool == 'flatten':
      fmap = feature_map(self.features, self.extractor, images, train)
      f = self.flat_proj(self.flat_norm(fmap.reshape(fmap.shape[0], -1)))
      f = f.astype(jnp.float32)
    else:
      f = self.features(images, train)
    out = predict_queries(f, self.query_encoder(q), self.head)
    return dict(landmarks=(out[..., :2] + 1.0) / 2.0, log_var=out[..., 2])

  def dataset_prompts(self, name: str):
    """(N_i, 3) query table of training dataset `name`."""
    start = point_offsets(self.datasets)[name]
    return self.queries.value[start:start + dict(self.datasets)[name]]


def screen_sigma(log_var):
  """σ in screen units of the predicted log-variance (clamped as the loss)."""
  return jnp.sqrt(jnp.maximum(jnp.exp(log_var), losses.MIN_VARIANCE))


def uncertainty(outputs):
  """(B, N, 2) standard deviation in crop units (isotropic: σ / 2 on both
  axes, one crop unit spanning 2 screen units)."""
  s = screen_sigma(outputs['log_var'])[..., None] / 2.0
  return jnp.broadcast_to(s, outputs['landmarks'].shape)


def defaults():
  return dict(
      extractor='convnext',  # F: EXTRACTORS
      variant='tiny',  # F's size (convnext 'tiny', vit 'S/16', ..)
      predictor='mlp',  # P: 'mlp' or 'transformer'
      predictor_width=0,  # 0: the paper's, 512 (mlp) / 768 (transformer)
      predictor_depth=4,
      predictor_heads=8,
      query_dim=64,  # M's embedding width
      pool='mean',  # f from F's map: 'mean' (the paper's) or 'flatten'
      descriptor_dim=768,  # width of f with pool 'flatten'
      drop_path=0.0,
      dtype='float32',
      remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def build(c, datasets):
  try:
    check_extractor(c.extractor, c.variant)
  except ValueError as e:
    key = 'extractor' if c.extractor not in EXTRACTORS else \
        'variant'
    raise JaxlmError(f'config key model.{key}: {e}') from None
  if c.predictor not in PREDICTORS:
    raise JaxlmError(f'config key model.predictor: unknown predictor '
                     f'{c.predictor!r} (known: {", ".join(PREDICTORS)})')
  if c.pool not in POOLS:
    raise JaxlmError(f'config key model.pool: unknown pool {c.pool!r} '
                     f'(known: {", ".join(POOLS)})')
  width = int(c.predictor_width) or PAPER_WIDTH[c.predictor]
  if c.predictor == 'transformer' and width % c.predictor_heads:
    raise JaxlmError(f'config key model.predictor_width: {width} is not a '
                     f'multiple of model.predictor_heads {c.predictor_heads}')
  return Queries3D(
      datasets=datasets, extractor=c.extractor,
      variant=c.variant, predictor=c.predictor,
      predictor_width=width,
      predictor_depth=int(c.predictor_depth),
      predictor_heads=int(c.predictor_heads), query_dim=int(c.query_dim),
      pool=c.pool, descriptor_dim=int(c.descriptor_dim),
      drop_path=float(c.drop_path), dtype=compute_dtype(c),
      remat=remat_of(c))


def _loss(model, train_layouts):
  """Gaussian NLL in screen units (paper 002 §3); also reports the mean
  landmark error and σ in screen units."""
  del model, train_layouts

  def queries3d_loss(out, batch):
    mean = 2.0 * out['landmarks'] - 1.0
    target = 2.0 * batch['target'] - 1.0
    w = batch['weight']
    nll = losses.isotropic_gaussian_nll(mean, target, out['log_var'], w)
    denom = jnp.maximum(w.sum(), 1e-6)
    err = jnp.sqrt(((mean - target) ** 2).sum(-1) + 1e-12)
    sigma = screen_sigma(out['log_var'])
    return nll, {'error_screen': (err * w).sum() / denom,
                 'sigma_screen': (sigma * w).sum() / denom}
  return queries3d_loss


# F's params path that `init.encoder` fills: a converted DINO ViT or
# ConvNeXt (ImageNet) checkpoint (`jaxlm convert dino|convnext`).
_ENCODER_PATHS = {'vit': ('features', 'vit'), 'convnext': ('features',)}

FAMILY = Family(
    name='queries3d', defaults=defaults, build=build, loss=_loss,
    landmarks=lambda outputs: outputs['landmarks'], uncertainty=uncertainty,
    anchor_masking=True, any_prompts=True, prompt_dim=3,
    query_table_path=('queries',), pad_anchors=True,
    mean_shape_path=('mean_shape',),
    encoder=lambda c: _ENCODER_PATHS.get(c.extractor) and (
        _ENCODER_PATHS[c.extractor], c.variant))
