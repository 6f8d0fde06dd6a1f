"""The face-crop rules and their affines (image pixels <-> crop pixels).

Official TUFA/SLPT rule (the default, `square_crop_affine`): a square of side
`factor` x the longer side of the face box (1.2 for a ground-truth landmark
box; 1.32 for 29-point COFW), centred on the box, warped to `out_size` pixels
with OpenCV. Crop units are crop pixels / out_size.

4-point alignment (the option, `four_point_affine`; Chandran et al., CVPR
2023, §3.1, normalising faces "in the FFHQ manner"): a square fitted to the
two eye centres and the two mouth corners (`four_points` picks them from a
layout's landmarks). It is rotated so that its x axis follows both the eye
line and the eye-mouth line, has side max(4 |eye to eye|, 3.6 |eye to
mouth|) and is centred 0.1 of the way from the eye midpoint to the mouth
midpoint. Unlike the box rule it is a similarity, not only scale + shift.

Conventions, shared by both rules: points are (x, y) pixels, x to the right,
y down, as in OpenCV (`warp` uses cv2.warpAffine, so integer coordinates are
pixel centres in both the image and the crop). Each rule returns a 2x3 affine
m with crop = m[:, :2] @ image + m[:, 2]; the crop square spans crop pixels
[0, out_size] x [0, out_size], its centre at (out_size / 2, out_size / 2).
"""

from __future__ import annotations

import cv2
import numpy as np

from jaxlm import layouts as layouts_lib
from jaxlm.errors import JaxlmError

# Stored faces (data/tfds): a square crop of STORE_MARGIN reference squares
# around the face, STORE_SIZE pixels, whose central REFERENCE_SIZE pixels are
# the reference square (the evaluation crop of the rule above).
REFERENCE_SIZE = 256
STORE_MARGIN = 1.75
STORE_SIZE = int(round(REFERENCE_SIZE * STORE_MARGIN))  # 448


SQUARE_CROP_FACTOR = 1.2  # the crop side / the face box's longer side


def square_crop_affine(box, out_size: int = 256,
                       factor: float = SQUARE_CROP_FACTOR):
  """2x3 affine mapping image pixels to crop pixels for box (x0, y0, x1, y1)."""
  x0, y0, x1, y1 = [float(v) for v in box]
  side = factor * max(x1 - x0, y1 - y0)
  if not side > 0:
    raise JaxlmError(f'face box {tuple(box)} is empty')
  cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
  s = out_size / side
  return np.array([[s, 0, out_size / 2 - s * cx],
                   [0, s, out_size / 2 - s * cy]], np.float64)


def invert_affine(m):
  return cv2.invertAffineTransform(np.asarray(m, np.float64))


def apply_affine(m, points):
  """(N, 2) points through a 2x3 affine."""
  p = np.asarray(points, np.float64)
  return p @ np.asarray(m)[:, :2].T + np.asarray(m)[:, 2]


def warp(image, m, out_size: int = 256):
  """The crop: image warped by m to out_size x out_size (bilinear)."""
  return cv2.warpAffine(image, np.asarray(m, np.float64), (out_size, out_size),
                        flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def check_box(box, width: int, height: int, where: str = '--box'):
  """Raises JaxlmError unless box is a non-empty box overlapping the image."""
  x0, y0, x1, y1 = [float(v) for v in box]
  text = f'{where} {x0:g},{y0:g},{x1:g},{y1:g}'
  if not np.isfinite([x0, y0, x1, y1]).all():
    raise JaxlmError(f'{text}: coordinates must be finite')
  if not (x1 > x0 and y1 > y0):
    raise JaxlmError(f'{text}: need x0 < x1 and y0 < y1')
  if x1 - x0 < 1 or y1 - y0 < 1:
    raise JaxlmError(f'{text}: smaller than one pixel')
  if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
    raise JaxlmError(f'{text} lies outside the {width}x{height} image')
  if x0 < -width or y0 < -height or x1 > 2 * width or y1 > 2 * height:
    raise JaxlmError(f'{text} reaches more than the image size beyond the '
                     f'{width}x{height} image')


# Outer mouth corners (image-left, image-right of an upright face) per layout,
# 0-based as in jaxlm.layouts; the synthetic layouts share their real twin's.
MOUTH_CORNERS: dict[str, tuple[int, int]] = {
    'wflw98': (76, 82), 'syn98': (76, 82),
    '300w68': (48, 54), 'merlrav68': (48, 54), 'syn68': (48, 54),
    'cofw29': (22, 23), 'syn29': (22, 23),
    'aflw19': (15, 17), 'syn19': (15, 17),
    'celeba5': (3, 4),
}


def four_points(landmarks, layout) -> np.ndarray:
  """The (..., 4, 2) points of the 4-point alignment from layout landmarks.

  Chandran et al., CVPR 2023, §3.1. `landmarks` is (..., N, 2) in pixels of
  the layout `layout` (a name in jaxlm.layouts.LAYOUTS or a Layout). Rows are,
  in this order: the image-left eye centre, the image-right eye centre, the
  image-left mouth corner, the image-right mouth corner, where left/right
  are as seen in an upright face (the layouts' anatomical order, so a face
  turned upside down keeps its order). An eye centre is the mean of the
  layout's `pupils` indices (the pupil point, or the eye contour for 300W);
  the mouth corners are the outer ones (`MOUTH_CORNERS`).
  """
  name = layout if isinstance(layout, str) else getattr(layout, 'name', None)
  if name not in layouts_lib.LAYOUTS or name not in MOUTH_CORNERS:
    raise JaxlmError(f'4-point alignment: unknown layout {name!r}; known '
                     f'layouts: {", ".join(sorted(MOUTH_CORNERS))}')
  spec = layouts_lib.get(name)
  p = np.asarray(landmarks, np.float64)
  if p.ndim < 2 or p.shape[-2:] != (spec.num_points, 2):
    raise JaxlmError(f'4-point alignment: layout {name!r} needs (..., '
                     f'{spec.num_points}, 2) landmarks, got shape {p.shape}')
  left, right = (p[..., list(idx), :].mean(-2) for idx in spec.pupils)
  ml, mr = MOUTH_CORNERS[name]
  return np.stack([left, right, p[..., ml, :], p[..., mr, :]], -2)


def four_point_affine(points, out_size: int = 256):
  """2x3 affine image pixels -> crop pixels of the FFHQ-style 4-point crop.

  Chandran et al., CVPR 2023, §3.1. `points` is (4, 2) image pixels (x, y),
  in the order of `four_points`: e_l, e_r (image-left and image-right eye
  centres of an upright face), m_l, m_r (the mouth corners likewise). Keep
  that anatomical order for rotated faces; do not re-sort the points by x.

  With e2e = e_r - e_l, e2m = (m_l + m_r) / 2 - (e_l + e_r) / 2 and
  rot90(a, b) = (-b, a) (a quarter turn, image coordinates):
    crop x axis (unit u) along e2e - rot90(e2m), crop y axis rot90(u)
    (pointing from the eyes towards the mouth);
    side = max(4 |e2e|, 3.6 |e2m|);
    centre c = (e_l + e_r) / 2 + 0.1 e2m.
  The result is a similarity (rotation, uniform scale, translation) mapping
  c to (out_size / 2, out_size / 2), the square's corners c - h u - h v,
  c - h u + h v, c + h u + h v, c + h u - h v (h = side / 2, v = rot90(u);
  FFHQ's quad in its order) to (0, 0), (0, out_size), (out_size, out_size)
  and (out_size, 0): top-left, bottom-left, bottom-right, top-right of the
  crop. Same pixel convention as `square_crop_affine` (module docstring).

  Raises JaxlmError for a wrong shape, non-finite points, all four points
  coinciding (no size), or a mirrored face whose x axis vanishes.
  """
  p = np.asarray(points, np.float64)
  if p.shape != (4, 2):
    raise JaxlmError(f'4-point alignment needs (4, 2) points (eyes, mouth '
                     f'corners), got shape {p.shape}')
  if not np.isfinite(p).all():
    raise JaxlmError(f'4-point alignment: points must be finite, got '
                     f'{p.tolist()}')
  eye_mean = (p[0] + p[1]) / 2
  e2e = p[1] - p[0]
  e2m = (p[2] + p[3]) / 2 - eye_mean
  side = max(4 * np.hypot(*e2e), 3.6 * np.hypot(*e2m))
  if not side > 0:
    raise JaxlmError(f'4-point alignment: eyes and mouth corners coincide '
                     f'({p.tolist()}); the crop has no size')
  x = e2e - np.array([-e2m[1], e2m[0]])
  norm = np.hypot(*x)
  if not norm > 1e-9 * side:
    raise JaxlmError(f'4-point alignment: no crop direction for '
                     f'{p.tolist()} (eye-to-eye = quarter turn of '
                     f'eye-to-mouth: a mirrored face or wrong point order)')
  ux, uy = x / norm
  s = out_size / side
  lin = s * np.array([[ux, uy], [-uy, ux]])
  centre = eye_mean + 0.1 * e2m
  shift = out_size / 2 - lin @ centre
  return np.concatenate([lin, shift[:, None]], 1)
