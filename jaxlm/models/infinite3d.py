"""Infinite 3D landmarks (Chandran et al. 2024; paper 001).

The 3D-query model of paper 002 (`queries3d.py`) with the paper's three
additions (Fig. 1), each a model option so that every ablation is a config:

  I (B, S, S, 3), the un-normalised image (a loose frame: no face detector)
    -> spatial transformer S (`model.stn`, `spatial_transformer.py`): θ and
       the normalised face I' (B, s, s, 3), resampled differentiably
    -> feature extractor F (as `queries3d`) -> f (B, D), and the head pose
       and camera γ = (R, t, focal[, principal point]) (`head3d.py`)
  queries p_k of dataset j -> query deformer D_j (`model.deformer`,
    `query_deformer.py`) -> M -> P(concat(f, M(D_j(p_k))))
    -> with `model.head` '3d': an offset δ_k (`model.offset_scale` x P's
       output) and log-variance s_k; the landmark in canonical 3D is
       L_k = D_j(p_k) + δ_k, projected with γ to I' screen units; '2d': P
       gives the I' screen position directly (the paper-002 head);
    -> mapped back through θ to I: l_k (crop units of I).

Training: the Gaussian NLL of `queries3d` on l_k in I's screen units (σ of
I' scaled by S's zoom), plus `model.offset_prior` × the mean squared offset
|δ_k|² (the weak prior that keeps L_k near the queries' template frame).
Supervision is 2D only: no box for S, no pose, no depth.

`model.roi_prior` (a proposal; 0, off, by default as in the paper) adds
its weight x the mean distance of the true 2D landmarks outside S's RoI
shrunk by `model.roi_margin` (`roi_outside`, in units of the RoI's half
side): still landmark supervision only, no box, but it asks S directly for
what the RoI is for, holding every point (the CPU demo: 77-92% of the
true points inside the RoI without it, 96-98% with weight 1.0 and margin
0.1, 97-99% with margin 0.2, 99.97-100% with weight 4.0 and margin 0.2).

The offsets and the pose race to fit the same 2D error (a head rotation is
also a field of per-point offsets, and P, on the same f, learns it first):
with δ at P's full scale, even on features that know the pose (F replaced
by an MLP on the true 2D landmarks, no S, tight faces), the pose came out
12.6° (geodesic) after 1000 steps with offsets 0.63 head units rms, 8.1°
with the offsets off. `model.offset_scale` (a proposal, the paper is
silent) slows δ: at 0.1, 9.4° with a lower landmark error than either
(`benchmarks/results/infinite3d_synthetic_cpu.md`, 2026-12-06). The
default stays 1.0: the CPU demo (`configs/infinite3d_demo.py`) trains with
0.1; its small CNN learned no pose in 1200 steps and part of it in 3600
(15.7° against 25.9° for a frontal guess; 2026-12-07), not measured at 1.0.

Coordinates: crop units of I are the family API's (`family.py`); screen
units s = 2c - 1 of I and I' ([-1, 1], x right, y down); the sampler's
normalised coordinates (`affine_sampler.py`, align_corners False) put pixel
centres half a pixel inward, g = s + 1 / side, and θ maps g of I' to g of I.
Canonical 3D: the template's head frame (`head3d.py`).

Outputs: dict(landmarks (B, N, 2) crop units of I, log_var (B, N) of I's
screen units, theta (B, 2, 3), roi (B, 4, 2) I''s outer corners (pixel
edges) in crop units of I (top-left, top-right, bottom-right, bottom-left),
and with the 3D head points3d (B, N, 3) canonical, offset (B, N, 3),
rotation (B, 3, 3) in I''s camera, head_rotation (B, 3, 3) in I's (S's
in-plane rotation composed), translation (B, 3), focal (B,) screen units of
I', depth (B, N), focal_crop (B,) and principal_point_crop (B, 2): the
camera in crop units of I).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jaxlm.errors import JaxlmError
from jaxlm.models import affine_sampler, head3d, queries3d, resnet
from jaxlm.models.family import Family, compute_dtype
from jaxlm.models.query_deformer import QueryDeformer
from jaxlm.models.query_predictor import (PREDICTORS, QueryEncoder,
                                          make_predictor, predict_queries)
from jaxlm.models.remat import remat_of
from jaxlm.models.semantic_alignment import point_offsets
from jaxlm.models.spatial_transformer import SpatialTransformer

STNS = ('similarity', 'affine', 'none')
HEADS = ('3d', '2d')


def to_sampler(screen, side: int):
  """Screen units of an image of `side` pixels -> the sampler's normalised
  coordinates (pixel centres, align_corners False)."""
  return screen + 1.0 / side


def inplane_rotation(theta):
  """(B, 3, 3): the rotation about the optical axis of θ's linear part
  (its polar factor; for a similarity, the rotation by φ)."""
  a = theta[:, :, :2]
  # The closest rotation to a 2x2 matrix [[p, q], [r, s]]: angle of
  # (p + s, r - q).
  ang = jnp.arctan2(a[:, 1, 0] - a[:, 0, 1], a[:, 0, 0] + a[:, 1, 1])
  c, s = jnp.cos(ang), jnp.sin(ang)
  z, o = jnp.zeros_like(c), jnp.ones_like(c)
  return jnp.stack([jnp.stack([c, -s, z], -1), jnp.stack([s, c, z], -1),
                    jnp.stack([z, z, o], -1)], axis=-2)


class Infinite3D(nn.Module):
  """S, F with the pose/camera head, D, M and P (module docstring).

  Attributes:
    datasets: ((name, num_points), ...) training datasets (query tables in
      this order).
    crop_size: side of I' (the extractor's input); I may be any size.
    stn: 'similarity', 'affine' or 'none' (I' = I resampled to crop_size).
    stn_size, stn_depth, stn_pool, init_zoom, stn_padding: S's localiser
      input side, ResNet depth and pooling, initial zoom (θ = init_zoom · I
      at start; < 1 zooms in) and the sampler's padding.
    head: '3d' or '2d'; principal_point: the 3D head also predicts it.
    deformer: use D (else the queries go to M unchanged);
      deformer_reference: the index of the dataset D keeps fixed.
    extractor ... drop_path, remat: as `queries3d.Queries3D` (remat also
      rematerialises S's localiser blocks).
  """
  datasets: tuple[tuple[str, int], ...] = (('syn98', 98),)
  crop_size: int = 128
  stn: str = 'similarity'
  stn_size: int = 128
  stn_depth: int = 18
  stn_pool: str = 'flatten'
  init_zoom: float = 1.0
  stn_padding: str = 'zeros'
  head: str = '3d'
  principal_point: bool = False
  deformer: bool = True
  deformer_reference: int = 0
  extractor: str = 'convnext'
  variant: str = 'tiny'
  predictor: str = 'mlp'
  predictor_width: int = 512
  predictor_depth: int = 4
  predictor_heads: int = 8
  query_dim: int = 64
  drop_path: float = 0.0
  offset_prior: float = 0.01
  offset_scale: float = 1.0
  roi_prior: float = 0.0
  roi_margin: float = 0.1
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  def setup(self):
    n = sum(k for _, k in self.datasets)
    self.queries = self.variable('constants', 'queries', jnp.zeros, (n, 3),
                                 jnp.float32)
    self.mean_shape = self.variable('constants', 'mean_shape', jnp.full,
                                    (n, 2), 0.5, jnp.float32)
    if self.stn != 'none':
      self.spatial_transformer = SpatialTransformer(
          kind=self.stn, localiser_size=self.stn_size,
          out_size=self.crop_size, init_zoom=self.init_zoom,
          depth=self.stn_depth, pool=self.stn_pool,
          padding_mode=self.stn_padding,
          dtype=self.dtype, remat=self.remat)
    self.features = queries3d.extractor(self.extractor, self.variant,
                                        self.drop_path, self.dtype,
                                        self.remat)
    if self.head == '3d':
      self.pose_camera = head3d.PoseCameraHead(self.principal_point)
    if self.deformer and len(self.datasets) > 1:
      self.query_deformer = QueryDeformer(len(self.datasets),
                                          self.deformer_reference)
    self.query_encoder = QueryEncoder(self.query_dim, self.dtype)
    self.predictor_net = make_predictor(
        self.predictor, self.predictor_width, self.predictor_depth,
        self.predictor_heads, self.dtype,
        outputs=4 if self.head == '3d' else 3, remat=self.remat)

  def _dataset_ids(self, point_index):
    starts = jnp.array([point_offsets(self.datasets)[name]
                        for name, _ in self.datasets[1:]], jnp.int32)
    return (point_index[..., None] >= starts).sum(-1)

  def _deform(self, queries, dataset_ids):
    if self.deformer and len(self.datasets) > 1:
      return self.query_deformer(queries, dataset_ids)
    return queries

  def normalise(self, images, train: bool = False):
    """(I' (B, s, s, 3) float32 RGB [0, 255], θ (B, 2, 3))."""
    if self.stn == 'none':
      b = images.shape[0]
      theta = jnp.broadcast_to(jnp.eye(2, 3, dtype=jnp.float32), (b, 2, 3))
      crop = affine_sampler.resample(images.astype(jnp.float32), theta,
                                     (self.crop_size, self.crop_size),
                                     padding_mode=self.stn_padding)
      return crop, theta
    out = self.spatial_transformer(images, train)
    return out['image'], out['theta']

  def __call__(self, images, prompts=None, *, point_index=None,
               train: bool = False):
    """Outputs of the module docstring.

    Args:
      images: (B, S, S, 3) RGB in [0, 255], I.
      prompts: (N, 3) or (B, N, 3) canonical 3D queries, already in D's
        output frame (`dataset_prompts` gives a training dataset's), or None.
      point_index: (B, N) indices into the query table, used when `prompts`
        is None (training; D applies each point's dataset correction).
      train: BatchNorm batch statistics and stochastic depth.
    """
    if (prompts is None) == (point_index is None):
      raise ValueError('give exactly one of prompts and point_index')
    if prompts is None:
      q = jnp.take(self.queries.value, point_index, axis=0)
      q = self._deform(q, self._dataset_ids(point_index))
    else:
      q = jnp.asarray(prompts, jnp.float32)
      if q.shape[-1] != 3:
        raise ValueError(f'3D queries must be (N, 3) or (B, N, 3) canonical '
                         f'points, got shape {q.shape}')
      if q.ndim == 2:
        q = jnp.broadcast_to(q, (images.shape[0],) + q.shape)
    crop, theta = self.normalise(images, train)
    f = self.features(crop, train)
    raw = predict_queries(f, self.query_encoder(q), self.predictor_net)
    out = {}
    if self.head == '3d':
      cam = self.pose_camera(f)
      offset = self.offset_scale * raw[..., :3]
      points3d = q + offset
      screen, depth = head3d.project(
          points3d, cam['rotation'], cam['translation'], cam['focal'],
          cam.get('principal_point'))
      log_var = raw[..., 3]
      out.update(points3d=points3d, offset=offset, depth=depth,
                 rotation=cam['rotation'], translation=cam['translation'],
                 focal=cam['focal'],
                 head_rotation=inplane_rotation(theta) @ cam['rotation'])
      if 'principal_point' in cam:
        out['principal_point'] = cam['principal_point']
    else:
      screen, log_var = raw[..., :2], raw[..., 2]
    g = affine_sampler.transform_points(to_sampler(screen, self.crop_size),
                                        theta)
    side = jnp.array([images.shape[2], images.shape[1]], jnp.float32)
    screen_i = g - 1.0 / side
    # σ² scales with the area of θ's linear part (isotropic: |det A|).
    det = jnp.abs(theta[:, 0, 0] * theta[:, 1, 1] -
                  theta[:, 0, 1] * theta[:, 1, 0])
    corners = jnp.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    roi = affine_sampler.transform_points(
        jnp.broadcast_to(corners, (theta.shape[0], 4, 2)), theta) - 1.0 / side
    out.update(landmarks=(screen_i + 1.0) / 2.0,
               log_var=log_var + jnp.log(det + 1e-12)[:, None],
               theta=theta, roi=(roi + 1.0) / 2.0)
    if self.head == '3d':  # the camera in I: focal and principal point
      c_p = out.get('principal_point', jnp.zeros_like(theta[:, :, 2]))
      g_c = affine_sampler.transform_points(
          to_sampler(c_p, self.crop_size)[:, None], theta)[:, 0]
      out.update(focal_crop=out['focal'] * jnp.sqrt(det) / 2.0,
                 principal_point_crop=(g_c - 1.0 / side + 1.0) / 2.0)
    return out

  def dataset_prompts(self, name: str):
    """(N_i, 3): training dataset `name`'s query table through D_j."""
    start = point_offsets(self.datasets)[name]
    n = dict(self.datasets)[name]
    index = jnp.arange(start, start + n)[None]
    q = jnp.take(self.queries.value, index, axis=0)
    return self._deform(q, self._dataset_ids(index))[0]


def defaults():
  return dict(
      crop_size=128,  # side of I' (F's input); I is data.image_size
      stn='similarity',  # S: 'similarity', 'affine' or 'none'
      stn_size=128,  # S's localiser input side
      stn_depth=18,  # S's ResNet trunk
      stn_pool='flatten',  # its C5 map to the head: 'flatten' or 'mean'
      init_zoom=1.0,  # θ at start = init_zoom · identity (< 1 zooms in)
      stn_padding='zeros',  # the sampler outside I: 'zeros' or 'border'
      head='3d',  # '3d' (pose, camera, canonical 3D) or '2d' (paper 002)
      principal_point=False,  # the 3D head predicts the principal point
      deformer=True,  # D, with several training datasets
      # the dataset D keeps fixed; '': the first in table order (training
      # datasets are ordered by name)
      deformer_reference='',
      offset_prior=0.01,  # weight of mean |δ|² (3D head)
      # δ = offset_scale x P's output: an Adam step moves δ by about
      # offset_scale x lr. 0.1 let the pose win its race against the
      # offsets on pose-aware features (module docstring); the CPU demo
      # uses it, but there the pose is not learned either way
      offset_scale=1.0,
      # weight of the RoI term: the mean distance of the true landmarks
      # outside S's RoI shrunk by roi_margin (in the RoI's half side); 0:
      # off, as the paper (module docstring)
      roi_prior=0.0,
      roi_margin=0.1,
      extractor='convnext',
      variant='tiny',
      predictor='mlp',
      predictor_width=0,  # 0: the paper's, 512 (mlp) / 768 (transformer)
      predictor_depth=4,
      predictor_heads=8,
      query_dim=64,
      drop_path=0.0,
      dtype='float32',
      remat='none')  # 'blocks' | 'dots': `remat.POLICIES`


def build(c, datasets):
  for key, known in (('stn', STNS), ('head', HEADS),
                     ('predictor', PREDICTORS),
                     ('stn_padding', ('zeros', 'border')),
                     ('stn_pool', ('flatten', 'mean'))):
    if c[key] not in known:
      raise JaxlmError(f'config key model.{key}: unknown value {c[key]!r} '
                       f'(known: {", ".join(known)})')
  try:
    queries3d.check_extractor(c.extractor, c.variant)
  except ValueError as e:
    key = 'extractor' if c.extractor not in queries3d.EXTRACTORS else \
        'variant'
    raise JaxlmError(f'config key model.{key}: {e}') from None
  width = int(c.predictor_width) or queries3d.PAPER_WIDTH[c.predictor]
  if c.predictor == 'transformer' and width % c.predictor_heads:
    raise JaxlmError(f'config key model.predictor_width: {width} is not a '
                     f'multiple of model.predictor_heads {c.predictor_heads}')
  for key in ('crop_size', 'stn_size'):
    if int(c[key]) <= 0:
      raise JaxlmError(f'config key model.{key}: must be > 0, got {c[key]}')
  if c.stn != 'none':
    try:
      resnet.check_depth(int(c.stn_depth))
    except ValueError as e:
      raise JaxlmError(f'config key model.stn_depth: {e}') from None
  if not float(c.offset_scale) > 0:
    raise JaxlmError(f'config key model.offset_scale: must be > 0, got '
                     f'{c.offset_scale}')
  if not float(c.roi_prior) >= 0:
    raise JaxlmError(f'config key model.roi_prior: must be >= 0, got '
                     f'{c.roi_prior}')
  if not 0 <= float(c.roi_margin) < 1:
    raise JaxlmError(f'config key model.roi_margin: must be in [0, 1), got '
                     f'{c.roi_margin}')
  if not float(c.init_zoom) > 0:
    raise JaxlmError(f'config key model.init_zoom: must be > 0, got '
                     f'{c.init_zoom}')
  names = [name for name, _ in datasets]
  ref = c.deformer_reference or names[0]
  if ref not in names:
    raise JaxlmError(f'config key model.deformer_reference: {ref!r} is not '
                     f'a training dataset (known: {", ".join(names)})')
  return Infinite3D(
      datasets=datasets, crop_size=int(c.crop_size), stn=c.stn,
      stn_size=int(c.stn_size), stn_depth=int(c.stn_depth),
      stn_pool=c.stn_pool,
      init_zoom=float(c.init_zoom), stn_padding=c.stn_padding, head=c.head,
      principal_point=bool(c.principal_point), deformer=bool(c.deformer),
      deformer_reference=names.index(ref),
      extractor=c.extractor, variant=c.variant, predictor=c.predictor,
      predictor_width=width, predictor_depth=int(c.predictor_depth),
      predictor_heads=int(c.predictor_heads), query_dim=int(c.query_dim),
      drop_path=float(c.drop_path), offset_prior=float(c.offset_prior),
      offset_scale=float(c.offset_scale),
      roi_prior=float(c.roi_prior), roi_margin=float(c.roi_margin),
      dtype=compute_dtype(c), remat=remat_of(c))


def roi_outside(roi, points, margin: float):
  """How far each point (B, N, 2) lies outside the RoI shrunk by `margin`:
  0 inside, else the distance past the shrunk square's edge (max over x and
  y), in units of the RoI's half side. roi (B, 4, 2) are I''s outer corners
  (`Infinite3D`'s output, TL, TR, BR, BL; any parallelogram: similarity or
  affine S); points and roi in the same units (crop units of I, [0, 1])."""
  c0, c1, c3 = roi[:, 0], roi[:, 1], roi[:, 3]
  ex, ey = c1 - c0, c3 - c0  # I''s x and y edges in crop units of I
  d = points - c0[:, None]
  det = ex[:, 0] * ey[:, 1] - ex[:, 1] * ey[:, 0]
  det = jnp.where(jnp.abs(det) < 1e-12, 1e-12, det)[:, None]
  u = (d[..., 0] * ey[:, None, 1] - d[..., 1] * ey[:, None, 0]) / det
  v = (ex[:, None, 0] * d[..., 1] - ex[:, None, 1] * d[..., 0]) / det
  uv = jnp.stack([u, v], -1) * 2.0 - 1.0  # [-1, 1] across I'
  return jnp.maximum(jnp.abs(uv) - (1.0 - margin), 0.0).max(-1)


def _loss(model, train_layouts):
  """Gaussian NLL on I's screen units + offset prior, and with
  `roi_prior` the RoI term (module docstring)."""
  del train_layouts
  nll_loss = queries3d.FAMILY.loss(model, ())
  weight = model.offset_prior
  roi_weight, roi_margin = model.roi_prior, model.roi_margin

  def infinite3d_loss(out, batch):
    loss, metrics = nll_loss(out, batch)
    if 'offset' in out:
      w = batch['weight']
      sq = (out['offset'] ** 2).sum(-1)
      prior = (sq * w).sum() / jnp.maximum(w.sum(), 1e-6)
      metrics = dict(metrics, offset_rms=jnp.sqrt(prior))
      loss = loss + weight * prior
    scale = jnp.sqrt(jnp.abs(out['theta'][:, 0, 0] * out['theta'][:, 1, 1] -
                             out['theta'][:, 0, 1] * out['theta'][:, 1, 0]))
    metrics = dict(metrics, stn_scale=scale.mean())
    if roi_weight:
      outside = roi_outside(out['roi'], batch['target'], roi_margin)
      w = batch['weight']
      term = (outside * w).sum() / jnp.maximum(w.sum(), 1e-6)
      loss = loss + roi_weight * term
      metrics = dict(metrics, roi_outside=term,
                     roi_missed=((outside > roi_margin) * w).sum() /
                     jnp.maximum(w.sum(), 1e-6))
    return loss, metrics
  return infinite3d_loss


def describe(outputs):
  """What `predict --json` reports beside the landmarks (`Family.describe`):
  the RoI, and with the 3D head the pose (degrees, in I's camera), the
  camera (focal length and principal point of I) and the canonical 3D
  landmarks."""
  points = dict(roi=outputs['roi'])
  lengths, values = {}, {}
  if 'points3d' in outputs:
    pose = head3d.euler_angles(outputs['head_rotation'])
    values = {'head_pose/yaw': pose[:, 0], 'head_pose/pitch': pose[:, 1],
              'head_pose/roll': pose[:, 2],
              'rotation': outputs['head_rotation'],
              'landmarks3d': outputs['points3d']}
    points['camera/principal_point'] = outputs['principal_point_crop'][:, None]
    lengths['camera/focal'] = outputs['focal_crop']
  return dict(points=points, lengths=lengths, values=values)


FAMILY = Family(
    name='infinite3d', defaults=defaults, build=build, loss=_loss,
    landmarks=lambda outputs: outputs['landmarks'],
    uncertainty=queries3d.uncertainty,
    anchor_masking=True, any_prompts=True, prompt_dim=3,
    query_table_path=('queries',), pad_anchors=True,
    mean_shape_path=('mean_shape',),
    encoder=lambda c: queries3d.FAMILY.encoder(c), describe=describe)
