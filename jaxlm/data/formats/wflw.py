"""WFLW (98 points): `list_98pt_rect_attr_{train,test}.txt`.

One face per line: 196 coordinates x0 y0 ... x97 y97 (0-based pixels), the
face box x_min y_min x_max y_max, six 0/1 attribute flags (pose, expression,
illumination, make-up, occlusion, blur) and the image path relative to
`WFLW_images/`. The attribute subsets of the test set are the faces whose
flag is 1.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
from etils import epath

from jaxlm.data.formats import FaceRecord, FormatError, check_record
from jaxlm.data.formats import parse_each, parse_floats

NUM_POINTS = 98
ATTRIBUTES = ('pose', 'expression', 'illumination', 'makeup', 'occlusion',
              'blur')
_FIELDS = 2 * NUM_POINTS + 4 + len(ATTRIBUTES) + 1


def annotation_file(root, split: str) -> epath.Path:
  """The annotation list of `split` ('train' | 'test') under the WFLW root."""
  return (epath.Path(root) / 'WFLW_annotations' /
          'list_98pt_rect_attr_train_test' / f'list_98pt_rect_attr_{split}.txt')


def read_wflw(annotations, images_dir, *,
              on_error=None) -> Iterator[FaceRecord]:
  """Yields the faces of one WFLW annotation list, in file order.

  A malformed line raises FormatError naming file and line, or, with
  `on_error`, is passed to it and skipped.
  """
  annotations, images_dir = epath.Path(annotations), epath.Path(images_dir)
  try:
    text = annotations.read_text()
  except FileNotFoundError:
    raise FormatError(f'{annotations}: annotation file not found') from None
  lines = [(n, line) for n, line in enumerate(text.splitlines(), 1)
           if line.strip()]

  def parse(item):
    lineno, line = item
    fields = line.split()
    where = f'{annotations}:{lineno}'
    if len(fields) != _FIELDS:
      raise FormatError(
          f'{where}: {len(fields)} fields, expected {_FIELDS} (196 '
          f'coordinates, 4 box values, 6 attribute flags, image path)')
    values = parse_floats(fields[:-1], where)
    flags = values[2 * NUM_POINTS + 4:]
    if not np.isin(flags, (0, 1)).all():
      raise FormatError(f'{where}: attribute flags {flags.tolist()} are not '
                        f'0/1')
    return check_record(FaceRecord(
        image_path=str(images_dir / fields[-1]),
        landmarks=values[:2 * NUM_POINTS].reshape(NUM_POINTS, 2),
        visible=np.ones(NUM_POINTS, bool),
        box=values[2 * NUM_POINTS:2 * NUM_POINTS + 4],
        layout='wflw98', dataset='wflw',
        attributes=dict(zip(ATTRIBUTES, flags.astype(int).tolist())),
        where=where), NUM_POINTS)

  return parse_each(lines, parse, on_error)
