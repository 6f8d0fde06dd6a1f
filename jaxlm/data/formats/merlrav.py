"""MERL-RAV (68 points, 300W scheme) with per-point visibility labels.

`merl_rav_organized/<pose>/<split>set/<name>.{jpg,pts}` with pose in frontal,
left, lefthalf, right, righthalf and split train | test. In the `.pts` files
(1-based like iBUG): an unoccluded point has positive coordinates, an
externally occluded one has both coordinates negated, a self-occluded one is
`-1 -1` and has no position (NaN here, loss weight 0).
Subsets: frontal; half-profile = lefthalf + righthalf; profile = left + right.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import parse_each, tight_box
from jaxlm.data.formats.ibug import image_for, read_pts

POSES = ('frontal', 'lefthalf', 'righthalf', 'left', 'right')
SUBSET = dict(frontal='frontal', lefthalf='half_profile',
              righthalf='half_profile', left='profile', right='profile')
SUBSETS = ('frontal', 'half_profile', 'profile')


def merlrav_points(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Raw 1-based .pts values -> (0-based points, NaN if self-occluded;
  visible; points with exactly one negative coordinate, which is malformed)."""
  self_occluded = (raw == -1).all(axis=1)
  external = (raw < 0).all(axis=1) & ~self_occluded
  mixed = ((raw < 0).any(axis=1) & ~(raw < 0).all(axis=1))
  points = np.abs(raw) - 1.0
  points[self_occluded] = np.nan
  return points, ~(self_occluded | external), mixed


def read_merlrav(root, split: str, *, on_error=None) -> Iterator[FaceRecord]:
  """Faces of MERL-RAV `split` ('train' | 'test'), all poses, sorted."""
  if split not in ('train', 'test'):
    raise FormatError(f'unknown MERL-RAV split {split!r}; known: train, test')
  root = epath.Path(root) / 'merl_rav_organized'
  if not root.is_dir():
    raise FormatError(f'{root}: folder not found')
  for pose in POSES:
    d = root / pose / f'{split}set'
    if not d.is_dir():
      raise FormatError(f'{d}: folder not found')
    yield from parse_each(sorted(d.glob('*.pts')),
                          lambda f, pose=pose: _record(f, pose), on_error)


def _record(f, pose: str) -> FaceRecord:
  points, visible, mixed = merlrav_points(read_pts(f, one_based=False))
  if mixed.any():
    raise FormatError(f'{f}: point {int(np.argmax(mixed))} has one negative '
                      f'coordinate (occluded points negate both)')
  return check_record(FaceRecord(
      image_path=str(image_for(f)), landmarks=points, visible=visible,
      box=tight_box(points), layout='merlrav68', dataset='merlrav',
      attributes=dict(pose=pose, subset=SUBSET[pose]), where=str(f)), 68)
