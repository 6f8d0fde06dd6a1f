"""The face-crop rule and its affines (image pixels <-> crop pixels).

Official TUFA/SLPT rule: a square of side `factor` x the longer side of the
face box (1.2 for a ground-truth landmark box; 1.32 for 29-point COFW),
centred on the box, warped to `out_size` pixels with OpenCV. Crop units are
crop pixels / out_size.
"""

from __future__ import annotations

import cv2
import numpy as np

from jaxlm.errors import JaxlmError

# Stored faces (data/tfds): a square crop of STORE_MARGIN reference squares
# around the face, STORE_SIZE pixels, whose central REFERENCE_SIZE pixels are
# the reference square (the evaluation crop of the rule above).
REFERENCE_SIZE = 256
STORE_MARGIN = 1.75
STORE_SIZE = int(round(REFERENCE_SIZE * STORE_MARGIN))  # 448


def square_crop_affine(box, out_size: int = 256, factor: float = 1.2):
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
