"""CelebA-aligned / MAFL (5 points) for the zero-shot protocol (thesis §6.3.7).

`Anno/list_landmarks_align_celeba.txt`: a count line, a header line, then
`<image> lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y
leftmouth_x leftmouth_y rightmouth_x rightmouth_y` (0-based pixels of the
aligned 178x218 images in `img_align_celeba/`). MAFL's `training.txt`
(19,000) and `testing.txt` (1,000) list the image names of its subsets.
The aligned images are already centred face crops, so the face box is the
whole image.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import parse_each, parse_floats

NUM_POINTS = 5
IMAGE_SIZE = (178, 218)  # width, height of img_align_celeba


def read_celeba(root, split: str, *, on_error=None) -> Iterator[FaceRecord]:
  """MAFL `split` ('train' | 'test') faces of CelebA-aligned, list order."""
  if split not in ('train', 'test'):
    raise FormatError(f'unknown MAFL split {split!r}; known: train, test')
  root = epath.Path(root)
  lst = root / 'MAFL' / ('training.txt' if split == 'train' else 'testing.txt')
  anno = root / 'Anno' / 'list_landmarks_align_celeba.txt'
  for f in (lst, anno):
    if not f.exists():
      raise FormatError(f'{f}: file not found')
  wanted = [s.strip() for s in lst.read_text().splitlines() if s.strip()]
  table = {}  # name -> (line number, fields); lines 1-2: count and header
  for lineno, line in enumerate(anno.read_text().splitlines(), 1):
    fields = line.split()
    if lineno > 2 and fields:
      table[fields[0]] = (lineno, fields[1:])
  w, h = IMAGE_SIZE

  def parse(name):
    if name not in table:
      raise FormatError(f'{lst}: image {name} has no landmarks in {anno}')
    lineno, fields = table[name]
    if len(fields) != 2 * NUM_POINTS:
      raise FormatError(f'{anno}:{lineno}: {len(fields) + 1} fields, expected '
                        f'{1 + 2 * NUM_POINTS} (image name, 5 x y pairs)')
    values = parse_floats(fields, f'{anno}:{lineno}')
    return check_record(FaceRecord(
        image_path=str(root / 'img_align_celeba' / name),
        landmarks=values.reshape(NUM_POINTS, 2),
        visible=np.ones(NUM_POINTS, bool),
        box=np.array([0.0, 0.0, w - 1.0, h - 1.0]), layout='celeba5',
        dataset='mafl', where=f'{anno}:{lineno}'), NUM_POINTS)

  return parse_each(wanted, parse, on_error)
