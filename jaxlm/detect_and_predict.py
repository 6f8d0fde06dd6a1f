"""Faces and their landmarks in one jitted call: detection, the crop rule,
the landmark model and the map back to image pixels, for batches of
same-size images (video frames, camera streams, a server that takes whole
images).

`make_detect_and_predict(predict, detect_fn, size, max_faces)` returns

  fn(variables, images (B, H, W, 3) uint8 RGB, prompts (N, D)) -> dict:
    boxes        (B, K, 4) x0, y0, x1, y1 image pixels, the K largest of
                 the detector's faces, largest first (the host path's
                 order, `inference.detect_faces`)
    scores       (B, K) the detector's, 0 in an empty slot (its box 0)
    affines      (B, K, 2, 3) image pixels -> crop pixels of each face
    landmarks    (B, K, N, 2) image pixels (NaN in an empty slot)
    crop_landmarks (B, K, N, 2) [0, 1] crop units
    uncertainty  (B, K, N, 2) standard deviation in image pixels (NaN in
                 an empty slot), and crop_uncertainty (crop units), for
                 families that predict one
    described    the family's `describe` per face (crop units; leading
                 axes B, K), for families that have one

with `predict` the family's `inference.make_predict(..., with_description=
True)` and `detect_fn(images) -> (boxes (B, D, 4), scores (B, D), ...)` a
jittable detector with D >= K slots (`face_detector.BlazeFaceDetector.
detect_fn`). Every shape is static: one compile per (B, H, W).

The crop is the host path's (`data.crop.square_crop_affine`: a square of
1.2x the box's longer side, centred on it, resized to S), sampled
bilinearly on the device with zeros outside the image and rounded to
integer levels as the host's uint8 crops are; OpenCV's warpAffine weights
its neighbours in 1/32 steps, so the crops differ from the host's by a
grey level or so, no more. Coordinates: image and crop pixels have their
centres at integers (OpenCV's and `data.crop`'s convention); crop units are
crop pixels / S.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxlm.data.crop import SQUARE_CROP_FACTOR


def crop_affines(boxes, size: int, factor: float = SQUARE_CROP_FACTOR):
  """Image pixels -> crop pixels (..., 2, 3) of boxes (..., 4), the square
  crop rule of `data.crop.square_crop_affine` (an empty box gets the
  identity scale, to be masked by the caller)."""
  x0, y0, x1, y1 = jnp.moveaxis(boxes, -1, 0)
  side = factor * jnp.maximum(x1 - x0, y1 - y0)
  s = size / jnp.where(side > 0, side, size)
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  zero = jnp.zeros_like(s)
  return jnp.stack([jnp.stack([s, zero, size / 2 - s * cx], -1),
                    jnp.stack([zero, s, size / 2 - s * cy], -1)], -2)


def invert_affines(m):
  """The inverses of affines (..., 2, 3)."""
  a = jnp.linalg.inv(m[..., :2])
  return jnp.concatenate([a, -(a @ m[..., 2:])], -1)


def warp_crop(image, m, size: int):
  """image (H, W, C) -> (size, size, C) float32: crop pixel p reads image
  point m^-1 p, bilinear, zero outside (cv2.warpAffine with INTER_LINEAR
  and BORDER_CONSTANT)."""
  inv = invert_affines(m)
  g = jnp.arange(size, dtype=jnp.float32)
  gx, gy = jnp.meshgrid(g, g)
  sx = inv[0, 0] * gx + inv[0, 1] * gy + inv[0, 2]
  sy = inv[1, 0] * gx + inv[1, 1] * gy + inv[1, 2]
  image = image.astype(jnp.float32)
  return jax.vmap(lambda ch: jax.scipy.ndimage.map_coordinates(
      ch, (sy, sx), order=1, mode='constant', cval=0.0), -1, -1)(image)


def largest_faces(boxes, scores, max_faces: int):
  """The `max_faces` largest found faces (score > 0) of (B, D, 4) boxes and
  (B, D) scores, largest first, empty slots last (score 0, box 0)."""
  area = jnp.prod(boxes[..., 2:] - boxes[..., :2], -1)
  order = jnp.argsort(jnp.where(scores > 0, -area, jnp.inf), -1)
  order = order[:, :max_faces]
  take = lambda a: jnp.take_along_axis(
      a, order.reshape(order.shape + (1,) * (a.ndim - 2)), 1)
  return take(boxes), take(scores)


def make_detect_and_predict(predict, detect_fn, size: int, max_faces: int):
  """The one jitted function of the module docstring."""

  def fn(variables, images, prompts):
    boxes, scores = largest_faces(*detect_fn(images)[:2], max_faces)
    b, k = scores.shape
    found = (scores > 0)[:, :, None, None]
    m = crop_affines(boxes, size)  # (B, K, 2, 3)
    crops = jax.vmap(jax.vmap(lambda m_, img: warp_crop(img, m_, size),
                              (0, None)))(m, images)
    crops = jnp.clip(jnp.round(crops), 0, 255)  # the host's uint8 levels
    pts, std, described = predict(
        variables, crops.reshape((b * k,) + crops.shape[2:]), prompts)
    unflat = lambda a: a.reshape((b, k) + a.shape[1:])
    pts = unflat(pts)
    inv = invert_affines(m)
    image_pts = (jnp.einsum('bkij,bknj->bkni', inv[..., :2], pts * size)
                 + inv[:, :, None, :, 2])
    out = dict(boxes=boxes, scores=scores, affines=m,
               landmarks=jnp.where(found, image_pts, jnp.nan),
               crop_landmarks=pts)
    if std is not None:  # independent x/y variances through the linear map
      std = unflat(std)
      var = (std * size) ** 2
      out['uncertainty'] = jnp.where(found, jnp.sqrt(jnp.einsum(
          'bkni,bkji->bknj', var, inv[..., :2] ** 2)), jnp.nan)
      out['crop_uncertainty'] = std
    if described:
      out['described'] = jax.tree_util.tree_map(unflat, described)
    return out

  return fn
