"""The spatial transformer S of "Infinite 3D Landmarks" (Chandran et al.,
2024): a learned localiser that normalises the face before the landmark
model sees it.

  images I (B, H, W, 3) RGB [0, 255]
    -> resized (bilinear, antialiased) to localiser_size^2, ImageNet-
       normalised (`vit.normalize_images`)
    -> ResNet trunk (`resnet.ResNetTrunk`) -> its C5 map flattened
       (`pool` 'flatten'; or 'mean', a global average)
    -> Dense `head` -> transform parameters -> theta (B, 2, 3)
  I' (B, out_size, out_size, 3) = I resampled through theta
    (`affine_sampler.resample`, bilinear, align_corners=False), read from the
    full-resolution I.

theta maps normalised [-1, 1] coordinates of I' (x right, y down) to those
of I (`affine_sampler`'s module docstring). The RoI is the square I' covers
in I: its corners (-1, -1), (1, -1), (1, 1), (-1, 1) of I' (top-left,
top-right, bottom-right, bottom-left; with align_corners=False the outer
edges of I') mapped through theta. Landmarks predicted in I' go back to I
with `affine_sampler.transform_points(points, theta)`, those of I into I'
with `invert_affine(theta)`, both in the sampler's normalised coordinates
(jaxlm's screen units are half a pixel off them: `infinite3d.to_sampler`).

Transforms (`kind`):
  'similarity': 4 parameters (log s, phi, t_x, t_y),
    theta = [[s cos phi, -s sin phi, t_x], [s sin phi, s cos phi, t_y]].
  'affine': 6 parameters, theta row-major.

From the paper: a spatial transformer in front of the landmark model,
trained jointly with it end to end (no box supervision: the gradient of the
landmark loss reaches the transform through the differentiable sampler),
predicting a similarity or an affine transform, i.e. an RoI of the
un-normalised image.

Proposals of jaxlm (the paper leaves them open here): the localiser is a
ResNet-18 trunk (`depth`) on the image resized to 128 px
(`localiser_size`); its C5 map is flattened, not averaged, for the head
(`pool`): a global average all but forgets where the face is, and a first
CPU run with it did not learn to find faces (its zoom fell to the mean face
size within 20 steps and stayed; the landmark error did not fall in 280
steps); the head's kernel starts at zero and its bias at the
initial transform, so S starts exactly at a fixed transform, identity
scaled by `init_zoom` (< 1 zooms in on the centre, s = init_zoom);
zero padding outside the image (`padding_mode`).
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxlm.models import affine_sampler, vit
from jaxlm.models.resnet import ResNetTrunk, check_depth

# number of parameters of each kind of transform
KINDS = {'similarity': 4, 'affine': 6}
# corners of I' in its own normalised coordinates: TL, TR, BR, BL
CORNERS = ((-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0))


def check_kind(kind: str):
  if kind not in KINDS:
    raise ValueError(f'unknown spatial transformer kind {kind!r}; known: '
                     f'{", ".join(KINDS)}')


def initial_parameters(kind: str, init_zoom: float) -> np.ndarray:
  """(KINDS[kind],) float32 parameters of the identity scaled by init_zoom
  (the head's initial bias)."""
  check_kind(kind)
  if not init_zoom > 0:
    raise ValueError(f'spatial transformer init_zoom must be > 0, got '
                     f'{init_zoom}')
  if kind == 'similarity':
    return np.array([math.log(init_zoom), 0, 0, 0], np.float32)
  return np.array([init_zoom, 0, 0, 0, init_zoom, 0], np.float32)


def parameters_to_theta(kind: str, params, init_zoom: float = 1.0):
  """(B, KINDS[kind]) transform parameters -> theta (B, 2, 3).

  A similarity's scale is s = exp(log s), computed as
  init_zoom * exp(log s - log init_zoom) (the float32 log of
  `initial_parameters`) so that the initial parameters give s = init_zoom
  exactly; `init_zoom` changes nothing else.
  """
  check_kind(kind)
  params = params.astype(jnp.promote_types(params.dtype, jnp.float32))
  if kind == 'affine':
    return params.reshape(params.shape[0], 2, 3)
  log_ref = jnp.asarray(initial_parameters(kind, init_zoom)[0], params.dtype)
  s = init_zoom * jnp.exp(params[:, 0] - log_ref)
  phi, tx, ty = params[:, 1], params[:, 2], params[:, 3]
  sc, ss = s * jnp.cos(phi), s * jnp.sin(phi)
  return jnp.stack([jnp.stack([sc, -ss, tx], axis=-1),
                    jnp.stack([ss, sc, ty], axis=-1)], axis=1)


def roi_corners(theta):
  """(B, 4, 2) corners of I' (TL, TR, BR, BL) in I's normalised
  coordinates."""
  corners = jnp.broadcast_to(jnp.asarray(CORNERS, theta.dtype),
                             (theta.shape[0], 4, 2))
  return affine_sampler.transform_points(corners, theta)


class SpatialTransformer(nn.Module):
  """S: images (B, H, W, 3) -> the normalised face I' and its transform.

  Attributes:
    out_size: side of I'.
    kind: 'similarity' or 'affine' (see the module docstring).
    localiser_size: side the localiser sees the image at.
    pool: 'flatten' (the C5 map, keeps position) or 'mean' (global average).
    init_zoom: scale of the initial transform (< 1 zooms in).
    depth: the localiser's ResNet depth (18, 34 or 50).
    padding_mode: 'zeros' or 'border', of the sampler.
    dtype: compute dtype of the localiser's trunk (the head, theta and the
      sampler are float32).
    remat: rematerialisation of the trunk's blocks (`remat.POLICIES`).
  """
  out_size: int
  kind: str = 'similarity'
  localiser_size: int = 128
  pool: str = 'flatten'
  init_zoom: float = 1.0
  depth: int = 18
  padding_mode: str = 'zeros'
  dtype: jnp.dtype = jnp.float32
  remat: str = 'none'

  @nn.compact
  def __call__(self, images, train=False):
    """images (B, H, W, 3) RGB [0, 255] (uint8 or float) -> dict(
    image=I' (B, out_size, out_size, 3) float32 RGB [0, 255],
    theta (B, 2, 3) I' -> I normalised coordinates, roi (B, 4, 2) the
    corners of I' in I (TL, TR, BR, BL))."""
    check_depth(self.depth)
    affine_sampler.check_padding_mode(self.padding_mode)
    bias = initial_parameters(self.kind, self.init_zoom)
    x = images.astype(jnp.float32)
    b, _, _, c = x.shape
    small = jax.image.resize(
        x, (b, self.localiser_size, self.localiser_size, c), 'bilinear')
    f = ResNetTrunk(self.depth, 3, 0.9, self.dtype, self.remat,
                    name='trunk')(
        vit.normalize_images(small, self.dtype), train)
    f = f.astype(jnp.float32)
    if self.pool == 'flatten':
      f = f.reshape(b, -1)
    elif self.pool == 'mean':
      f = f.mean(axis=(1, 2))
    else:
      raise ValueError(f'unknown localiser pool {self.pool!r}; known: '
                       f'flatten, mean')
    # Normalised, then scaled by 1 / sqrt(width): the head starts at zero,
    # and an Adam step moves each of its weights by about the learning
    # rate, so on raw features θ would move by lr x (sum of |f|) per step
    # (a first CPU run's zoom fell from 1 to 0.3 in 10 steps, and the
    # localiser's gradient dominated the clipped global norm).
    f = nn.LayerNorm(1e-6, use_scale=False, use_bias=False,
                     name='norm')(f) / jnp.sqrt(float(f.shape[-1]))
    params = nn.Dense(len(bias), kernel_init=nn.initializers.zeros,
                      bias_init=lambda *_: jnp.asarray(bias),
                      name='head')(f)
    theta = parameters_to_theta(self.kind, params, self.init_zoom)
    out = affine_sampler.resample(x, theta, (self.out_size, self.out_size),
                                  self.padding_mode, align_corners=False)
    return dict(image=out, theta=theta, roi=roi_corners(theta))
