"""A differentiable affine resampler: torch's `affine_grid` + `grid_sample`
(bilinear) in NHWC, for the spatial transformer of paper "Infinite 3D
Landmarks" (`spatial_transformer.py`).

Coordinates are normalised "screen" coordinates (x, y) in [-1, 1]: x to
the right, y down, x first; (-1, -1) is the top-left of the image and
(1, 1) its bottom-right, whatever its size (a non-square image is stretched
onto the square). Their relation to pixel column u of an image W wide
(rows likewise with H), pixel centres at integers u = 0 .. W - 1:

  align_corners=False: x = (2u + 1) / W - 1, u = ((x + 1) W - 1) / 2. -1 and
    1 are the outer edges of the border pixels. jaxlm's crop units c =
    u / W (pixel centres at integers) are c = (x + 1) / 2 - 1 / (2W), i.e.
    its screen units s = 2c - 1 are x - 1 / W (`infinite3d.to_sampler`).
  align_corners=True: x = 2u / (W - 1) - 1. -1 and 1 are the centres of the
    corner pixels.

theta (B, 2, 3) maps a point of the output (x, y, 1) to the point of the
input it is read from, (x', y') = theta @ (x, y, 1), as in torch: identity
theta and the same size read the image back unchanged (either
align_corners), a theta with scale < 1 zooms in. `transform_points` applies
theta to points, `invert_affine` gives the map from input to output, so
landmarks of the input are mapped into the resampled image and back.

Unlike `patch_gather.bilinear_sample`, which stops the gradient at its
sample points on purpose (SLPT's official code detaches them), this sampler
is differentiable with respect to the sample grid, hence theta, as well as
the image: a spatial transformer learns its transform through it. The
gradient with respect to the grid is torch's: that of the bilinear weights,
the neighbours outside the image not counting (they are zero, or, with
'border' padding, the coordinates are clamped into the image first and carry
no gradient where clamped).

Sampling is one gather of the four neighbours of every output pixel from
the flattened image (no loop over the batch or the pixels).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

PADDING_MODES = ('zeros', 'border')


def check_padding_mode(padding_mode: str):
  if padding_mode not in PADDING_MODES:
    raise ValueError(f'unknown padding_mode {padding_mode!r}; known: '
                     f'{", ".join(PADDING_MODES)}')


def _coord_dtype(dtype):
  """Float32 at least: sample positions in bfloat16 would be off by pixels."""
  return jnp.promote_types(dtype, jnp.float32)


def pixel_centres(size: int, align_corners: bool = False) -> np.ndarray:
  """(size,) normalised coordinates of the pixel centres along one axis."""
  if size == 1:
    return np.zeros(1)
  u = np.arange(size, dtype=np.float64)
  if align_corners:
    return 2.0 * u / (size - 1) - 1.0
  return (2.0 * u + 1.0) / size - 1.0


def _apply(theta, x, y):
  """theta (B, 2, 3) applied to coordinates x, y broadcasting against
  (B, ...); elementwise, so exact float32 on any backend (no matmul)."""
  t = theta.reshape(theta.shape[:1] + (1,) * (x.ndim - 1) + (2, 3))
  return (t[..., 0, 0] * x + t[..., 0, 1] * y + t[..., 0, 2],
          t[..., 1, 0] * x + t[..., 1, 1] * y + t[..., 1, 2])


def affine_grid(theta, out_hw, align_corners: bool = False):
  """The sample grid of torch.nn.functional.affine_grid, NHWC.

  Args:
    theta: (B, 2, 3) output -> input normalised coordinates.
    out_hw: (Ho, Wo) of the output.
    align_corners: pixel convention (see the module docstring).

  Returns:
    (B, Ho, Wo, 2) input coordinates (x, y) of each output pixel centre.
  """
  ho, wo = out_hw
  dtype = _coord_dtype(theta.dtype)
  theta = theta.astype(dtype)
  xs = jnp.asarray(pixel_centres(wo, align_corners), dtype)[None, None, :]
  ys = jnp.asarray(pixel_centres(ho, align_corners), dtype)[None, :, None]
  gx, gy = _apply(theta, xs, ys)  # (B, Ho, Wo) each
  shape = theta.shape[:1] + (ho, wo)
  return jnp.stack([jnp.broadcast_to(gx, shape), jnp.broadcast_to(gy, shape)],
                   axis=-1)


def _unnormalise(coord, size: int, align_corners: bool):
  """Normalised coordinate -> pixel coordinate (centres at integers)."""
  if align_corners:
    return (coord + 1.0) * 0.5 * (size - 1)
  return ((coord + 1.0) * size - 1.0) * 0.5


def _clamp(coord, high: int):
  """coord clamped to [0, high]; gradient 1 inside (bounds included), 0
  where clamped, as torch's border padding."""
  return jnp.where(coord < 0, 0.0, jnp.where(coord > high, float(high),
                                             coord)).astype(coord.dtype)


def grid_sample(images, grid, padding_mode: str = 'zeros',
                align_corners: bool = False):
  """torch.nn.functional.grid_sample (bilinear), NHWC.

  Args:
    images: (B, H, W, C); an integer dtype (uint8 RGB) is read as float32.
    grid: (B, Ho, Wo, 2) normalised input coordinates (x, y).
    padding_mode: 'zeros' (outside the image reads 0) or 'border' (the
      coordinates are clamped to the border pixels' centres).
    align_corners: pixel convention (see the module docstring).

  Returns:
    (B, Ho, Wo, C), differentiable with respect to `images` and `grid`.
  """
  check_padding_mode(padding_mode)
  if not jnp.issubdtype(images.dtype, jnp.floating):
    images = images.astype(jnp.float32)
  b, h, w, c = images.shape
  _, ho, wo, _ = grid.shape
  grid = grid.astype(_coord_dtype(grid.dtype)).reshape(b, ho * wo, 2)
  ix = _unnormalise(grid[..., 0], w, align_corners)
  iy = _unnormalise(grid[..., 1], h, align_corners)
  if padding_mode == 'border':
    ix, iy = _clamp(ix, w - 1), _clamp(iy, h - 1)
  x0, y0 = jnp.floor(ix), jnp.floor(iy)
  fx, fy = ix - x0, iy - y0
  # the four neighbours, (B, 4, P): x0y0, x1y0, x0y1, x1y1
  xs = jnp.stack([x0, x0 + 1.0, x0, x0 + 1.0], axis=1)
  ys = jnp.stack([y0, y0, y0 + 1.0, y0 + 1.0], axis=1)
  wx = jnp.stack([1.0 - fx, fx, 1.0 - fx, fx], axis=1)
  wy = jnp.stack([1.0 - fy, 1.0 - fy, fy, fy], axis=1)
  inside = (xs >= 0) & (xs <= w - 1) & (ys >= 0) & (ys <= h - 1)
  weights = jnp.where(inside, wx * wy, 0.0)
  # clip before the integer cast: far-away points must not overflow int32
  idx = (jnp.clip(ys, 0, h - 1).astype(jnp.int32) * w
         + jnp.clip(xs, 0, w - 1).astype(jnp.int32))
  flat = images.reshape(b, h * w, c)
  vals = jnp.take_along_axis(flat, idx.reshape(b, 4 * ho * wo, 1), axis=1,
                             mode='clip').reshape(b, 4, ho * wo, c)
  dtype = jnp.promote_types(images.dtype, weights.dtype)
  out = (vals.astype(dtype) * weights[..., None].astype(dtype)).sum(axis=1)
  return out.astype(images.dtype).reshape(b, ho, wo, c)


def resample(images, theta, out_hw, padding_mode: str = 'zeros',
             align_corners: bool = False):
  """(B, Ho, Wo, C) image read from `images` (B, H, W, C) through theta
  (B, 2, 3): `grid_sample(images, affine_grid(theta, out_hw))`."""
  return grid_sample(images, affine_grid(theta, out_hw, align_corners),
                     padding_mode, align_corners)


def transform_points(points, theta):
  """Points (B, N, 2) (x, y) -> theta applied, (B, N, 2).

  With the theta of `resample`, output (resampled image) coordinates go to
  input coordinates; with `invert_affine(theta)`, the other way.
  """
  dtype = jnp.promote_types(points.dtype, theta.dtype)
  points, theta = points.astype(dtype), theta.astype(dtype)
  x, y = _apply(theta, points[..., 0], points[..., 1])
  return jnp.stack([x, y], axis=-1)


def invert_affine(theta):
  """(B, 2, 3) inverse affine maps: A x + t -> A^-1 x - A^-1 t.

  No check of invertibility (it runs under jit): a singular A gives
  infinities / NaNs.
  """
  a, b, tx = theta[:, 0, 0], theta[:, 0, 1], theta[:, 0, 2]
  c, d, ty = theta[:, 1, 0], theta[:, 1, 1], theta[:, 1, 2]
  det = a * d - b * c
  ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
  return jnp.stack([
      jnp.stack([ia, ib, -(ia * tx + ib * ty)], axis=-1),
      jnp.stack([ic, id_, -(ic * tx + id_ * ty)], axis=-1)], axis=1)
