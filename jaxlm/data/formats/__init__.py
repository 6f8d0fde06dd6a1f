"""Readers of the datasets' original annotation files.

Every reader yields `FaceRecord`s in *image space*: original photo pixels,
0-based, with pixel centres at integer coordinates (OpenCV's convention).
Readers convert each format's own convention (1-based MATLAB and iBUG `.pts`
coordinates, (y, x) order in `.ljson`, negative coordinates for occluded
MERL-RAV points) so that nothing downstream has to know it.

A point without a position (a self-occluded MERL-RAV point, an unlabelled
COCO keypoint) has NaN coordinates and must get loss weight 0; it is never
replaced by zeros. Any malformed input raises `FormatError` naming the file
and, for text formats, the line.

| module | dataset | files |
|---|---|---|
| `wflw` | WFLW (98) | `list_98pt_rect_attr_{train,test}.txt` + `WFLW_images/` |
| `ibug` | 300W (68), 300W-private, Masked 300W, menpo | `.pts` (1-based), `.ljson` ((y, x)) |
| `cofw` | COFW (29), COFW68 | `COFW_{train,test}_color.mat`, `COFW68_Data/` |
| `merlrav` | MERL-RAV (68) | `merl_rav_organized/<pose>/<split>set/*.pts` |
| `aflw19` | AFLW-19 | `AFLWinfo_release.mat` + `flickr/` |
| `celeba` | CelebA-aligned / MAFL (5) | `list_landmarks_align_celeba.txt`, MAFL lists |
| `coco` | COCO-style keypoint JSON (mmpose's samples) | `*.json` |
"""

from __future__ import annotations

import dataclasses
from typing import Any

import cv2
import numpy as np
from etils import epath

from jaxlm.errors import JaxlmError


class FormatError(JaxlmError):
  """A malformed annotation or image; the message names file (and line)."""


@dataclasses.dataclass
class FaceRecord:
  """One annotated face, in image space (see module docstring).

  Attributes:
    image_path: the photo (for images embedded in a .mat file:
      'file.mat#<i>', with the pixels in `image`).
    landmarks: (N, 2) float64 (x, y) pixels; NaN where a point has no
      position.
    visible: (N,) bool, False for occluded points (with or without position).
    box: (4,) float64 face box x0, y0, x1, y1 in pixels: the dataset's own box
      where it has one, else the tight box of the landmarks.
    layout: registry name of the landmark layout (jaxlm.layouts).
    dataset: dataset name.
    attributes: dataset-specific labels (WFLW flags, MERL-RAV pose, ...).
    where: 'file:line' of the annotation, for error messages.
    image: decoded RGB pixels when they are embedded in the annotation file.
  """
  image_path: str
  landmarks: np.ndarray
  visible: np.ndarray
  box: np.ndarray
  layout: str
  dataset: str
  attributes: dict[str, Any] = dataclasses.field(default_factory=dict)
  where: str = ''
  image: np.ndarray | None = None

  @property
  def has_position(self) -> np.ndarray:
    return np.isfinite(self.landmarks).all(axis=1)

  def load_image(self) -> np.ndarray:
    """(H, W, 3) uint8 RGB; FormatError if missing or not decodable."""
    if self.image is not None:
      return as_rgb(self.image, self.image_path)
    return read_image(self.image_path)


def as_rgb(image: np.ndarray, where: str) -> np.ndarray:
  image = np.asarray(image)
  if image.dtype != np.uint8:
    raise FormatError(f'{where}: image dtype {image.dtype}, expected uint8')
  if image.ndim == 2:
    return np.repeat(image[:, :, None], 3, axis=2)
  if image.ndim == 3 and image.shape[2] == 3:
    return image
  if image.ndim == 3 and image.shape[2] == 4:
    return np.ascontiguousarray(image[:, :, :3])
  raise FormatError(f'{where}: image of shape {image.shape} is not grey, RGB '
                    f'or RGBA')


def read_image(path) -> np.ndarray:
  """Decodes an image file (local or bucket path) to (H, W, 3) uint8 RGB."""
  path = epath.Path(path)
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    raise FormatError(f'{path}: image file not found') from None
  if not data:
    raise FormatError(f'{path}: empty image file (0 bytes)')
  image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
  if image is None:
    raise FormatError(f'{path}: corrupt or unsupported image '
                      f'({len(data)} bytes)')
  return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_json(path):
  """A JSON file's contents; FormatError naming the file (and line)."""
  import json  # pylint: disable=g-import-not-at-top
  path = epath.Path(path)
  try:
    return json.loads(path.read_text())
  except FileNotFoundError:
    raise FormatError(f'{path}: file not found') from None
  except json.JSONDecodeError as e:
    raise FormatError(f'{path}:{e.lineno}: invalid JSON ({e.msg})') from None


def tight_box(landmarks: np.ndarray) -> np.ndarray:
  """x0, y0, x1, y1 of the points that have a position."""
  p = np.asarray(landmarks, np.float64)
  p = p[np.isfinite(p).all(axis=1)]
  if len(p) == 0:
    return np.full(4, np.nan)
  return np.concatenate([p.min(axis=0), p.max(axis=0)])


def parse_floats(fields, where: str) -> np.ndarray:
  """Finite numbers of a line's fields; FormatError naming `where` for a
  field that is not a number, or is NaN or infinite (formats that encode a
  missing point do it with finite values, converted by their reader)."""
  try:
    values = np.asarray([float(f) for f in fields], np.float64)
  except ValueError:
    bad = next(f for f in fields if not _is_float(f))
    raise FormatError(f'{where}: {bad!r} is not a number') from None
  if not np.isfinite(values).all():
    bad = fields[int(np.flatnonzero(~np.isfinite(values))[0])]
    raise FormatError(f'{where}: {bad!r} is not a finite coordinate')
  return values


def _is_float(s) -> bool:
  try:
    float(s)
    return True
  except ValueError:
    return False


def check_record(rec: FaceRecord, num_points: int) -> FaceRecord:
  """Shape checks shared by every reader."""
  if rec.landmarks.shape != (num_points, 2):
    raise FormatError(f'{rec.where}: {rec.landmarks.shape[0]} points, the '
                      f'{rec.layout} layout has {num_points}')
  if not rec.has_position.any():
    raise FormatError(f'{rec.where}: no landmark has a position')
  bad = np.isinf(rec.landmarks).any(axis=1) | (
      ~rec.has_position & np.asarray(rec.visible, bool))
  if bad.any():
    i = int(np.flatnonzero(bad)[0])
    raise FormatError(f'{rec.where}: landmark {i} has non-finite coordinates '
                      f'{tuple(rec.landmarks[i])} but is not marked as '
                      f'missing')
  x0, y0, x1, y1 = rec.box
  if not (x1 > x0 and y1 > y0):
    raise FormatError(f'{rec.where}: empty face box {tuple(rec.box)}')
  return rec


def parse_each(items, parse, on_error=None):
  """Yields parse(item) for each item; a FormatError stops the iteration,
  or, with `on_error`, is passed to it and the item skipped."""
  for item in items:
    try:
      rec = parse(item)
    except FormatError as e:
      if on_error is None:
        raise
      on_error(e)
      continue
    yield rec
