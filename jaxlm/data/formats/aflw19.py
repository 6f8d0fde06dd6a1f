"""AFLW-19 (19 points): `AFLWinfo_release.mat` + the AFLW `flickr/` images.

The release (Zhu et al., CVPR 2016) holds 24,386 faces: `data` (n, 38) =
19 x then 19 y (1-based), `bbox` (n, 4) = x0 x1 y0 y1, `mask_new` (n, 19)
visibility, `nameList` (n,) image paths relative to the AFLW root, and
`ra` (1, n), a 1-based permutation whose first 20,000 entries are the
training faces and the remaining 4,836 the test faces. The frontal
test subset (1,314 faces) is the test faces whose 19 points are all visible.
A file with no more than 20,000 faces (`jaxlm fake-data aflw19`, a subset)
is split in the release's proportion instead (82% train), with a warning.
"""

from __future__ import annotations

import logging
from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import parse_each
from jaxlm.data.formats.cofw import load_mat

NUM_POINTS = 19
NUM_TRAIN = 20000
NUM_FACES = 24386


def read_aflw19(root, split: str, *, on_error=None) -> Iterator[FaceRecord]:
  """Faces of AFLW-19 `split`: 'train', 'test' (full) or 'test_frontal'."""
  if split not in ('train', 'test', 'test_frontal'):
    raise FormatError(f'unknown AFLW-19 split {split!r}; known: train, test, '
                      f'test_frontal')
  root = epath.Path(root)
  path = root / 'AFLWinfo_release.mat'
  d = load_mat(path, ('data', 'bbox', 'mask_new', 'nameList', 'ra'))
  data = np.asarray(d['data'], np.float64)
  n = len(data)
  if data.shape != (n, 2 * NUM_POINTS):
    raise FormatError(f'{path}: data has shape {data.shape}, expected '
                      f'(n, {2 * NUM_POINTS})')
  ra = np.asarray(d['ra']).ravel().astype(int) - 1
  if sorted(ra.tolist()) != list(range(n)):
    raise FormatError(f'{path}: ra is not a permutation of the {n} faces')
  mask = np.asarray(d['mask_new']).astype(bool)
  names = [str(np.asarray(x).ravel()[0]) if np.asarray(x).dtype != np.uint16
           else ''.join(map(chr, np.asarray(x).ravel())) for x in d['nameList']]
  num_train = NUM_TRAIN
  if n <= NUM_TRAIN:  # not the release: keep its train/test proportion
    num_train = min(n - 1, round(n * NUM_TRAIN / NUM_FACES))
    logging.warning('%s holds %d faces, not the release\'s %d: the first %d '
                    'of `ra` are the training faces, the other %d the test '
                    'faces', path, n, NUM_FACES, num_train, n - num_train)
  order = ra[:num_train] if split == 'train' else ra[num_train:]
  if split == 'test_frontal':
    order = [i for i in order if mask[i].all()]
  boxes = np.asarray(d['bbox'], np.float64)

  def parse(i):
    x0, x1, y0, y1 = boxes[i]
    return check_record(FaceRecord(
        image_path=str(root / 'flickr' / names[i].replace('\\', '/')),
        landmarks=np.stack([data[i, :NUM_POINTS], data[i, NUM_POINTS:]],
                           axis=1) - 1.0,
        visible=mask[i], box=np.array([x0, y0, x1, y1]) - 1.0,
        layout='aflw19', dataset='aflw19', where=f'{path}#{i}'), NUM_POINTS)

  return parse_each(order, parse, on_error)
