"""iBUG `.pts` (300W, 300W-private, Masked 300W, MERL-RAV) and menpo `.ljson`.

`.pts`: a `version: 1` line, `n_points: N`, `{`, N lines `x y`, `}`.
Coordinates are 1-based (the iBUG/MATLAB convention): the readers subtract 1.
`.ljson` (menpo's JSON landmarks) stores points as (y, x), 0-based.

300W splits (the standard protocol): train = LFPW train + HELEN train + AFW
(3,148); common = LFPW test + HELEN test (554); challenging = iBUG (135);
full = common + challenging (689); 300W-private: `300W/01_Indoor` and
`300W/02_Outdoor` (300 each); Masked 300W: the same 300W test folders
under `masked_300w/` with masks painted on the faces.
"""

from __future__ import annotations

from typing import Iterator, Sequence

import numpy as np
from etils import epath

from jaxlm import layouts
from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import read_json
from jaxlm.data.formats import parse_each, parse_floats, tight_box

IMAGE_SUFFIXES = ('.jpg', '.png', '.jpeg', '.JPG', '.PNG', '.bmp', '.ppm')

SPLITS_300W: dict[str, tuple[str, ...]] = {
    'train': ('lfpw/trainset', 'helen/trainset', 'afw'),
    'common': ('lfpw/testset', 'helen/testset'),
    'challenging': ('ibug',),
    'full': ('lfpw/testset', 'helen/testset', 'ibug'),
    'private_indoor': ('300W/01_Indoor',),
    'private_outdoor': ('300W/02_Outdoor',),
    'private': ('300W/01_Indoor', '300W/02_Outdoor'),
}


def read_pts(path, *, one_based: bool = True) -> np.ndarray:
  """(N, 2) float64 (x, y) 0-based pixels of a `.pts` file."""
  path = epath.Path(path)
  try:
    lines = path.read_text().splitlines()
  except FileNotFoundError:
    raise FormatError(f'{path}: landmark file not found') from None
  except UnicodeDecodeError:
    raise FormatError(f'{path}: not a text .pts file') from None
  header, n, start = {}, None, None
  for i, line in enumerate(lines):
    s = line.strip()
    if s == '{':
      start = i + 1
      break
    if ':' in s:
      key, value = s.split(':', 1)
      header[key.strip()] = value.strip()
  if start is None or 'n_points' not in header:
    raise FormatError(f'{path}: not a .pts file (expected "n_points: N" and '
                      f'"{{")')
  try:
    n = int(header['n_points'])
  except ValueError:
    raise FormatError(f'{path}:2: n_points {header["n_points"]!r} is not an '
                      f'integer') from None
  points = []
  for lineno in range(start + 1, len(lines) + 1):
    s = lines[lineno - 1].strip()
    if s == '}':
      break
    if not s:
      continue
    fields = s.split()
    if len(fields) != 2:
      raise FormatError(f'{path}:{lineno}: expected "x y", got {s!r}')
    points.append(parse_floats(fields, f'{path}:{lineno}'))
  else:
    raise FormatError(f'{path}: missing the closing "}}"')
  if len(points) != n:
    raise FormatError(f'{path}: header says n_points {n}, file has '
                      f'{len(points)} points')
  p = np.asarray(points, np.float64).reshape(n, 2)
  return p - 1.0 if one_based else p


def read_ljson(path) -> np.ndarray:
  """(N, 2) float64 (x, y) pixels of a menpo `.ljson` file ((y, x) inside)."""
  path = epath.Path(path)
  d = read_json(path)
  if 'groups' in d:  # version 3: {"groups": {name: {"landmarks": ...}}}
    if not d['groups']:
      raise FormatError(f'{path}: no landmark group')
    d = next(iter(d['groups'].values()))
  try:
    yx = d['landmarks']['points']
  except (KeyError, TypeError):
    raise FormatError(f'{path}: no landmarks.points entry') from None
  yx = np.asarray([[np.nan if v is None else v for v in p] for p in yx],
                  np.float64)
  if yx.ndim != 2 or yx.shape[1] != 2:
    raise FormatError(f'{path}: points of shape {yx.shape}, expected (N, 2)')
  return yx[:, ::-1].copy()


def image_for(annotation: epath.Path) -> epath.Path:
  """The image next to an annotation file (same stem, any image suffix)."""
  for suffix in IMAGE_SUFFIXES:
    candidate = annotation.with_suffix(suffix)
    if candidate.exists():
      return candidate
  raise FormatError(f'{annotation}: no image next to it (looked for '
                    f'{", ".join(IMAGE_SUFFIXES)})')


def pts_record(pts_file, *, layout: str = '300w68', dataset: str = '300w',
               attributes=None) -> FaceRecord:
  pts_file = epath.Path(pts_file)
  landmarks = read_pts(pts_file)
  return check_record(FaceRecord(
      image_path=str(image_for(pts_file)), landmarks=landmarks,
      visible=np.ones(len(landmarks), bool), box=tight_box(landmarks),
      layout=layout, dataset=dataset, attributes=dict(attributes or {}),
      where=str(pts_file)), layouts.get(layout).num_points)


def read_pts_folders(root, folders: Sequence[str], *, on_error=None,
                     **kw) -> Iterator[FaceRecord]:
  """Faces of every `.pts` file under root/<folder>, sorted by path."""
  root = epath.Path(root)
  for folder in folders:
    d = root / folder
    if not d.is_dir():
      raise FormatError(f'{d}: folder not found (expected the 300W layout '
                        f'described in the builder instructions)')
    files = sorted(d.glob('*.pts'))
    if not files:
      raise FormatError(f'{d}: no .pts files')
    yield from parse_each(
        files, lambda f: pts_record(f, attributes=dict(folder=folder), **kw),
        on_error)


def read_300w(root, split: str, *, on_error=None) -> Iterator[FaceRecord]:
  """Faces of one 300W split (see SPLITS_300W) under the 300W root."""
  if split not in SPLITS_300W:
    raise FormatError(f'unknown 300W split {split!r}; known: '
                      f'{", ".join(SPLITS_300W)}')
  return read_pts_folders(root, SPLITS_300W[split], on_error=on_error)
